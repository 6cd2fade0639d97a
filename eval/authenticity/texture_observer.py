"""Texture observer: L2-regularised logistic regression on the texture features.

The observer a reader could argue with: each coefficient belongs to one named feature of
:mod:`~elastogan.eval.authenticity.texture`. Features are standardised with the mean and sd of
the training part only (a held-out map never informs its own scaling), then

    minimise  Σ_i log(1 + exp(−s_i z_i)) + (λ/2)‖w‖²,   z_i = x_i·w + b,   s_i = ±1,

the intercept unpenalised; λ = 1 matches scikit-learn's default ``C = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize
from scipy.special import expit


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Weights and intercept of L2-regularised logistic regression (formula in the module docstring).

    Args:
        x: (n, d) features.
        y: (n,) labels 0/1.
        l2: λ, the penalty on ``‖w‖²/2``; > 0 keeps separable data finite.

    Returns:
        ``(w, b)``: (d,) weights and the intercept.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"expected x (n, d) and y (n,), got {x.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    s = np.where(y == 1, 1.0, -1.0)
    d = x.shape[1]

    x1 = np.hstack([x, np.ones((len(x), 1))])  # (n, d + 1): the intercept as a last column
    penalty = np.r_[np.full(d, float(l2)), 0.0]  # (d + 1,)

    def loss(theta: np.ndarray) -> float:
        return float(np.logaddexp(0.0, -s * (x1 @ theta)).sum() + 0.5 * (penalty * theta) @ theta)

    def grad(theta: np.ndarray) -> np.ndarray:
        # d/dz log(1 + e^{−sz}) = −s·σ(−sz)
        return x1.T @ (-s * expit(-s * (x1 @ theta))) + penalty * theta

    def hess(theta: np.ndarray) -> np.ndarray:
        p = expit(x1 @ theta)
        return (x1 * (p * (1 - p))[:, None]).T @ x1 + np.diag(penalty)

    # Newton steps in a trust region: the objective is smooth and strictly convex in w, so this
    # converges to the optimum to machine precision in a few steps.
    res = optimize.minimize(loss, np.zeros(d + 1), jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-10})
    return res.x[:d], float(res.x[d])


@dataclass(frozen=True)
class TextureObserver:
    """C2ST observer on texture-feature vectors (the samples are rows of ``feature_matrix``).

    Args:
        l2: ridge penalty λ of the logistic regression.
    """

    l2: float = 1.0

    def __post_init__(self) -> None:
        if not self.l2 > 0:
            raise ValueError(f"l2 must be > 0, got {self.l2}")

    def __call__(self, train: Sequence[np.ndarray], labels: np.ndarray, test: Sequence[np.ndarray], seed: int) -> np.ndarray:
        """P(label 1) of each test vector; ``seed`` is unused (the fit is deterministic)."""
        x_train, x_test = np.stack(train), np.stack(test)  # (n, d), (m, d)
        mean = x_train.mean(axis=0)
        sd = x_train.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)  # a feature constant in training carries no information
        w, b = fit_logistic((x_train - mean) / sd, labels, self.l2)
        return expit((x_test - mean) / sd @ w + b)
