"""Why does the model think the lesion is hard? Integrated gradients of the predicted stiffness.

The explained quantity is ``F(x)``: the mean predicted strain inside a box (the lesion box, or
the whole frame), as a function of the B-mode ``x``. Integrated gradients (Sundararajan et al.
2017, ICML) attribute ``F(x) − F(x₀)`` to the B-mode's pixels along the straight path from a
baseline ``x₀`` (a black frame: no echo)::

    IG_i(x) = (x_i − x₀_i) · (1/m) Σ_{k=1..m} ∂F/∂x_i (x₀ + α_k (x − x₀)),   α_k = (k − ½)/m

and the attributions add up to ``F(x) − F(x₀)`` (completeness; the midpoint rule's error falls
as 1/m²). Strain is 0 hard … 1 soft, so a **negative** attribution marks a pixel that makes the
box look **harder** than over a black frame. The gradient flows through the same input path
``predict`` uses (resize or pad, ``elastogan.ood.to_network``), so the map is in the B-mode's
own pixels; a sampling generator is explained for one fixed noise draw (``seed``). A checkpoint
with a scanner-texture stage (``elastogan.models.texture``) is explained through its generator:
the stiffness is the generator's prediction, the stage adds the scanner's local texture to it.

Two sanity checks (Adebayo et al. 2018, NeurIPS, "Sanity checks for saliency maps"):
:func:`randomized_predictor` gives the same architecture with re-initialised weights — a map
that barely changes (high :func:`rank_correlation` with the trained model's) explains the
input, not the model; and :func:`edge_correlation` says how far the map is merely an edge
detector of the B-mode (rank correlation of ``|IG|`` with the B-mode's gradient magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage, stats


if TYPE_CHECKING:  # predict imports nothing from here; the type alone is needed
    from elastogan.predict import Predictor

Box = tuple[int, int, int, int]
DEFAULT_STEPS = 32


@dataclass(frozen=True)
class Explanation:
    """An integrated-gradients map of the mean predicted strain in ``box``.

    Attributes:
        attribution: H×W float32, in strain units; sums to ``value − baseline_value`` up to
            the path integral's discretisation.
        value: ``F(x)``, the mean predicted strain in the box for the B-mode.
        baseline_value: ``F(x₀)``, the same for the black baseline.
        box: ``(x0, y0, x1, y1)``, end-exclusive.
        steps: the path's steps ``m``.
    """

    attribution: np.ndarray
    value: float
    baseline_value: float
    box: Box
    steps: int

    @property
    def completeness_gap(self) -> float:
        """``Σ attribution − (value − baseline_value)``: near 0 when ``steps`` suffice."""
        return float(self.attribution.sum(dtype=np.float64)) - (self.value - self.baseline_value)


def _box_mean(predictor: Predictor, x: torch.Tensor, box: Box, seed: int) -> torch.Tensor:
    """``F``: the mean predicted strain in ``box`` for each B-mode of ``x`` ``(B, 1, H, W)`` in [−1, 1]."""
    from elastogan.predict import noise_seed

    strain = predictor.generator_strain(x, [noise_seed(seed, 0)] * x.shape[0])
    x0, y0, x1, y1 = box
    return strain[:, 0, y0:y1, x0:x1].mean(dim=(1, 2))


def integrated_gradients(predictor: Predictor, bmode: np.ndarray, box: Box | None = None, *,
                         steps: int = DEFAULT_STEPS, seed: int = 0, batch_size: int = 8) -> Explanation:
    """Integrated gradients of the mean predicted strain in ``box`` with respect to ``bmode``.

    Args:
        predictor: the trained model (``elastogan.predict.Predictor``).
        bmode: H×W uint8 B-mode.
        box: lesion box ``(x0, y0, x1, y1)`` end-exclusive; ``None``: the whole frame.
        steps: points on the path from the black baseline (default 32).
        seed: the noise draw explained (a sampling generator; ignored otherwise).
        batch_size: path points per forward pass.

    Raises:
        ValueError: a frame that is not H×W uint8, a box outside it, or steps/batch_size < 1.
    """
    from elastogan.predict import check_frame, check_roi

    check_frame(bmode)
    h, w = bmode.shape
    box = tuple(int(v) for v in box) if box is not None else (0, 0, w, h)
    check_roi(box, (h, w))
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    g = predictor.generator
    device = predictor.device
    x = torch.from_numpy(bmode).to(device, torch.float32)[None, None] / 127.5 - 1.0
    base = torch.full_like(x, -1.0)  # black: no echo anywhere
    alphas = (torch.arange(steps, dtype=torch.float32, device=device) + 0.5) / steps
    total = torch.zeros_like(x)
    was_training = g.training
    g.eval()
    try:
        for k in range(0, steps, batch_size):
            a = alphas[k : k + batch_size].view(-1, 1, 1, 1)
            path = (base + a * (x - base)).requires_grad_(True)  # (k, 1, H, W)
            (grad,) = torch.autograd.grad(_box_mean(predictor, path, box, seed).sum(), path)
            total += grad.sum(dim=0, keepdim=True)
        with torch.no_grad():
            ends = _box_mean(predictor, torch.cat([x, base]), box, seed)
    finally:
        g.train(was_training)
    attribution = ((x - base) * total / steps)[0, 0].detach().cpu().numpy().astype(np.float32)
    return Explanation(attribution, float(ends[0]), float(ends[1]), box, steps)


def randomized_predictor(predictor: Predictor, seed: int = 0) -> Predictor:
    """The same model with every weight re-initialised (``torch.manual_seed(seed)``): Adebayo et
    al.'s model-randomisation test compares a saliency map with this model's."""
    from elastogan.models.registry import build_generator
    from elastogan.predict import Predictor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = build_generator(predictor.model)
    return Predictor(generator, predictor.model, input_size=predictor.input_size, device=predictor.device,
                     step=0)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of ``|a|`` and ``|b|`` over all pixels (Adebayo et al. compare
    absolute maps: a sign flip is the same explanation)."""
    a, b = np.abs(np.asarray(a, dtype=np.float64)).ravel(), np.abs(np.asarray(b, dtype=np.float64)).ravel()
    if a.shape != b.shape:
        raise ValueError(f"expected two maps of one size, got {a.size} and {b.size} pixels")
    return float(stats.spearmanr(a, b).statistic)


def edge_correlation(attribution: np.ndarray, bmode: np.ndarray) -> float:
    """Spearman correlation of ``|attribution|`` with the B-mode's Sobel gradient magnitude: near
    1 for a map that is only an edge detector of the input."""
    b = np.asarray(bmode, dtype=np.float64)
    if b.shape != np.shape(attribution):
        raise ValueError(f"expected a map of the B-mode's size {b.shape}, got {np.shape(attribution)}")
    return rank_correlation(attribution, np.hypot(ndimage.sobel(b, axis=0), ndimage.sobel(b, axis=1)))
