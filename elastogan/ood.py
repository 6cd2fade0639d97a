"""Is this B-mode like the training data? The out-of-distribution fingerprint of a checkpoint.

A generator trained on phantoms still draws a confident, coloured elastogram for a cardiac or
kidney scan. The fingerprint says when it has never seen anything like its input:

1. **Features**: the generator's encoder (``encoder_features``: the TransUNet's stem, every
   down-sampling level and the transformer's output tokens; the pix2pix U-Net's levels down to
   its innermost code), computed from the B-mode exactly as ``elastogan.predict.Predictor``
   feeds it to the network (:func:`network_input`), each map pooled over positions to its
   channels' mean and standard deviation (:func:`pool`): one vector per level.
2. **Fingerprint**: per level, the mean and a shrinkage covariance of the training split's
   vectors (Ledoit & Wolf 2004, :func:`ledoit_wolf`: with a few hundred cases and a few hundred
   features the sample covariance is singular; shrinking it towards a scaled identity makes it
   well conditioned, with the shrinkage that minimises the expected squared error).
3. **Score**: the Mahalanobis distance of an image's features from the training mean under the
   block-diagonal covariance of the levels, ``sqrt(Σ_level d²_level)`` (Lee et al. 2018, NeurIPS,
   score inputs by Mahalanobis distance on a network's features and combine several layers).
   All levels, not the transformer's tokens alone: on the shipped model the tokens (after their
   LayerNorm) flagged 4 of pydicom's 11 non-breast ultrasound images, the levels together all 11
   with the nearest 2.4× beyond the threshold (``docs/preview_trust.md``).
4. **Threshold**: the ``level`` (99th) percentile of the validation split's scores, so about 1 %
   of in-distribution images are flagged by construction; an image's **percentile** is the
   share of validation scores at or below its own.

The fingerprint is plain data (lists and floats, :meth:`OodFingerprint.to_dict`) stored under
``"ood"`` in a checkpoint (``elastogan fingerprint``, and ``elastogan train`` at the end of a
run); ``Predictor.ood_score`` reads it.

Example:
    >>> rng = np.random.default_rng(0)
    >>> train, val = [rng.normal(size=(200, 3))], [rng.normal(size=(100, 3))]  # one level, 3 features
    >>> fp = fit_fingerprint(train, val, source={"data": "toy"})
    >>> [r["in_distribution"] for r in fp.assess([np.array([[0.1, -0.2, 0.3], [9.0, 9.0, 9.0]])])]
    [True, False]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:  # predict imports this module; the type alone is needed here
    from elastogan.predict import Predictor

FORMAT_VERSION = 1
POOLING = "levels:mean+std"  # how the encoder's maps become vectors (stored, checked on load)
DEFAULT_LEVEL = 0.99
# Cases fitted by default: 500 training images pin a few hundred features' covariance (with the
# shrinkage) and keep the end of a training run to about a minute on a CPU.
DEFAULT_MAX_TRAIN = 500
DEFAULT_MAX_VAL = 500
MIN_TRAIN_CASES = 2
MIN_VAL_CASES = 2
# Added to each covariance's diagonal, relative to its mean variance: a level whose maps are
# 1×1 (a deep pix2pix code) has an identically zero sd and, were the shrinkage 0, a singular
# covariance; 1e-6 changes no score of a well-conditioned one in its printed digits.
RIDGE = 1e-6

Features = list[np.ndarray]  # one (n, p_level) array per encoder level


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf shrinkage covariance of the rows of ``x`` (n samples × p features).

    ``Σ̂ = (1 − δ) S + δ μ I`` with ``S`` the maximum-likelihood covariance (divisor n), ``μ =
    tr(S)/p``, and ``δ = min(b̄², d²) / d²`` where ``d² = ‖S − μI‖²_F`` and ``b̄² = (1/n²) Σ_k
    ‖x_k x_kᵀ − S‖²_F`` over the centred rows (Ledoit & Wolf 2004, J Multivar Anal 88:365, Lemmas
    3.2–3.4, with the Frobenius norms not divided by p, which leaves δ unchanged).

    Returns:
        ``(covariance p×p, shrinkage δ in [0, 1])``.

    Raises:
        ValueError: ``x`` is not a finite 2-D array with at least 2 rows.

    Example:
        >>> cov, delta = ledoit_wolf(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]))
        >>> delta, cov.tolist()
        (0.0, [[1.0, 0.0], [0.0, 1.0]])
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"expected an n×p array with n >= 2, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features hold NaN or infinite values")
    n, p = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    mu = float(np.trace(s)) / p
    d2 = float(((s - mu * np.eye(p)) ** 2).sum())
    # Σ_k ‖x_k x_kᵀ − S‖² = Σ_k ‖x_k‖⁴ − n ‖S‖², without forming the n outer products
    b2 = float(((xc**2).sum(axis=1) ** 2).sum() - n * (s**2).sum()) / n**2
    delta = 0.0 if d2 == 0.0 else min(max(b2, 0.0), d2) / d2
    return (1.0 - delta) * s + delta * mu * np.eye(p), delta


def pool(features: Tensor) -> Tensor:
    """``(B, C, h, w)`` map → ``(B, 2C)``: each channel's mean and (biased) sd over positions."""
    flat = features.flatten(2).float()  # (b, c, h·w)
    return torch.cat([flat.mean(dim=2), flat.std(dim=2, correction=0)], dim=1)


def to_network(x: Tensor, *, input_size: int | None, divisor: int) -> Tensor:
    """``(B, 1, H, W)`` B-mode in [−1, 1] → the generator's input (``Predictor._forward``, the
    fingerprint and the explanation all feed the network through it): resized to ``input_size``² (antialiased bilinear) for a model trained at a fixed
    size, else padded with −1 (black) at the bottom and right to a multiple of ``divisor``.
    Differentiable (``elastogan.explain`` takes gradients through it)."""
    if input_size is not None:
        return F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False, antialias=True)
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % divisor, 0, -h % divisor), value=-1.0)


def network_input(bmodes: np.ndarray, *, input_size: int | None, divisor: int) -> Tensor:
    """``(B, H, W)`` uint8 → the generator's input ``(B, 1, H', W')`` (:func:`to_network`);
    ``tests/test_ood.py`` pins it to what ``Predictor.predict`` feeds the generator."""
    x = torch.from_numpy(np.ascontiguousarray(bmodes)).float()[:, None] / 127.5 - 1.0
    return to_network(x, input_size=input_size, divisor=divisor)


@torch.no_grad()
def image_features(predictor: Predictor, bmodes: Sequence[np.ndarray], *, batch_size: int = 16) -> Features:
    """Pooled encoder features of H×W uint8 B-modes (any sizes): one ``(n, 2·C_level)`` float64
    array per level.

    Raises:
        ValueError: the generator has no ``encoder_features`` (a model this module does not
            know), no frames, or a frame that is not H×W uint8.
    """
    g = predictor.generator
    if not hasattr(g, "encoder_features"):
        raise ValueError(f"a {type(g).__name__} generator exposes no encoder features: no fingerprint for it")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not bmodes:
        raise ValueError("no B-mode frames to take features of")
    for i, b in enumerate(bmodes):
        if not isinstance(b, np.ndarray) or b.ndim != 2 or b.dtype != np.uint8 or min(b.shape) < 2:
            got = f"{b.dtype} {b.shape}" if isinstance(b, np.ndarray) else type(b).__name__
            raise ValueError(f"frame {i}: expected an H×W uint8 B-mode of at least 2×2, got {got}")
    rows: list[list[np.ndarray] | None] = [None] * len(bmodes)
    from elastogan.predict import same_shape_batches  # predict imports this module

    for chunk in same_shape_batches(bmodes, batch_size):
        x = network_input(np.stack([bmodes[i] for i in chunk]), input_size=predictor.input_size,
                          divisor=predictor.divisor).to(predictor.device)
        pooled = [pool(m).cpu().numpy().astype(np.float64) for m in g.encoder_features(x)]
        for j, i in enumerate(chunk):
            rows[i] = [level[j] for level in pooled]
    return [np.stack(level) for level in zip(*rows)]


@dataclass(frozen=True)
class Gaussian:
    """One level's training features: mean ``(p,)``, Ledoit–Wolf covariance ``(p, p)``, shrinkage δ."""

    mean: np.ndarray
    covariance: np.ndarray
    shrinkage: float

    @cached_property
    def _cholesky(self) -> np.ndarray:
        return np.linalg.cholesky(self.covariance)

    def squared_distances(self, x: np.ndarray) -> np.ndarray:
        """``(f − m)ᵀ Σ̂⁻¹ (f − m)`` for each row of ``(n, p)`` ``x``."""
        from scipy.linalg import solve_triangular

        z = solve_triangular(self._cholesky, (x - self.mean).T, lower=True)  # Σ̂ = L Lᵀ
        return (z**2).sum(axis=0)


def fit_gaussian(x: np.ndarray) -> Gaussian:
    """Mean and Ledoit–Wolf covariance (plus ``RIDGE``) of one level's training features.

    Raises:
        ValueError: as ``ledoit_wolf``, or features that do not vary at all.
    """
    cov, delta = ledoit_wolf(x)
    mu = float(np.trace(cov)) / cov.shape[0]
    if not mu > 0.0:
        raise ValueError("the training features do not vary: no fingerprint can be fitted")
    return Gaussian(np.asarray(x, dtype=np.float64).mean(axis=0), cov + RIDGE * mu * np.eye(cov.shape[0]), delta)


@dataclass(frozen=True)
class OodFingerprint:
    """The training data's fingerprint and the validation split's calibration.

    Attributes:
        levels: one ``Gaussian`` per encoder level.
        val_scores: the validation split's scores, ascending (for percentiles).
        threshold: the ``level`` quantile of ``val_scores``; a score above it is out of distribution.
        level: that quantile (0.99).
        train_cases: how many training images were fitted.
        pooling: how features were pooled (``POOLING``).
        source: provenance (manifest, splits, caps).
    """

    levels: tuple[Gaussian, ...]
    val_scores: np.ndarray
    threshold: float
    level: float
    train_cases: int
    pooling: str = POOLING
    source: dict[str, Any] = field(default_factory=dict)

    def scores(self, features: Features) -> np.ndarray:
        """Mahalanobis distances ``sqrt(Σ_level (f − m)ᵀ Σ̂⁻¹ (f − m))`` of n images, ``(n,)``.

        Raises:
            ValueError: features of another number of levels or widths (another model's).
        """
        widths = [g.mean.shape[0] for g in self.levels]
        got = [np.atleast_2d(f).shape[1] for f in features]
        if got != widths:
            raise ValueError(f"expected features of widths {widths} (one per level), got {got}: "
                             "the fingerprint of another model?")
        return np.sqrt(sum(g.squared_distances(np.atleast_2d(np.asarray(f, dtype=np.float64)))
                           for g, f in zip(self.levels, features)))

    def percentile(self, score: float) -> float:
        """Percentage of validation scores at or below ``score`` (0–100)."""
        return 100.0 * float(np.searchsorted(self.val_scores, score, side="right")) / len(self.val_scores)

    def assess(self, features: Features) -> list[dict[str, Any]]:
        """Per image: ``{"score", "percentile", "in_distribution"}`` (score at or below the threshold)."""
        return [{"score": float(s), "percentile": self.percentile(float(s)), "in_distribution": bool(s <= self.threshold)}
                for s in self.scores(features)]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for a checkpoint (``torch.load(weights_only=True)`` reads them)."""
        return {"format_version": FORMAT_VERSION, "pooling": self.pooling,
                "levels": [{"mean": g.mean.tolist(), "covariance": g.covariance.tolist(), "shrinkage": float(g.shrinkage)}
                           for g in self.levels],
                "val_scores": self.val_scores.tolist(), "threshold": float(self.threshold), "level": float(self.level),
                "train_cases": int(self.train_cases), "source": dict(self.source)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OodFingerprint:
        """The inverse of ``to_dict``.

        Raises:
            ValueError: another format version or pooling, missing fields, or arrays of
                inconsistent shapes.
        """
        if not isinstance(d, dict) or d.get("format_version") != FORMAT_VERSION:
            got = d.get("format_version") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"ood fingerprint of format version {got!r}; this code reads {FORMAT_VERSION}")
        if d.get("pooling") != POOLING:
            raise ValueError(f"ood fingerprint pooled as {d.get('pooling')!r}; this code pools as {POOLING!r}")
        levels = []
        for i, g in enumerate(d["levels"]):
            mean, cov = np.asarray(g["mean"], dtype=np.float64), np.asarray(g["covariance"], dtype=np.float64)
            if mean.ndim != 1 or cov.shape != (mean.size, mean.size):
                raise ValueError(f"ood fingerprint level {i}: mean {mean.shape} and covariance {cov.shape} do not match")
            levels.append(Gaussian(mean, cov, float(g["shrinkage"])))
        val = np.asarray(d["val_scores"], dtype=np.float64)
        if not levels or val.ndim != 1 or val.size < MIN_VAL_CASES:
            raise ValueError(f"ood fingerprint with {len(levels)} level(s) and {val.size} validation score(s)")
        return cls(levels=tuple(levels), val_scores=np.sort(val), threshold=float(d["threshold"]),
                   level=float(d["level"]), train_cases=int(d["train_cases"]), pooling=d["pooling"],
                   source=dict(d.get("source", {})))


def fit_fingerprint(train: Features, val: Features, *, level: float = DEFAULT_LEVEL,
                    source: dict[str, Any] | None = None) -> OodFingerprint:
    """Fit the fingerprint on training features and its threshold on validation features.

    Args:
        train: per level, ``(n_train, p_level)`` features of the training split.
        val: per level, ``(n_val, p_level)`` features of the validation split: images the fit
            never saw, whose scores are what new in-distribution images score.
        level: the threshold's quantile of the validation scores (default 0.99).
        source: provenance stored with the fingerprint.

    Raises:
        ValueError: too few cases, mismatched levels or widths, features that are not finite
            or do not vary, or a level outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    train = [np.asarray(f, dtype=np.float64) for f in train]
    val = [np.asarray(f, dtype=np.float64) for f in val]
    if not train or len(val) != len(train):
        raise ValueError(f"expected the same levels of features for train and val, got {len(train)} and {len(val)}")
    n_train = train[0].shape[0] if train[0].ndim == 2 else 0
    if n_train < MIN_TRAIN_CASES:
        raise ValueError(f"expected at least {MIN_TRAIN_CASES} training images, got {n_train}")
    n_val = val[0].shape[0] if val[0].ndim == 2 else 0
    if n_val < MIN_VAL_CASES:
        raise ValueError(f"expected at least {MIN_VAL_CASES} validation images, got {n_val}")
    for i, (t, v) in enumerate(zip(train, val)):
        if t.ndim != 2 or v.ndim != 2 or t.shape[0] != n_train or v.shape[0] != n_val or t.shape[1] != v.shape[1]:
            raise ValueError(f"level {i}: train features {t.shape} and val features {v.shape} do not match")
    levels = tuple(fit_gaussian(t) for t in train)
    draft = OodFingerprint(levels=levels, val_scores=np.zeros(MIN_VAL_CASES), threshold=math.inf, level=level,
                           train_cases=n_train)
    val_scores = np.sort(draft.scores(val))
    return OodFingerprint(levels=levels, val_scores=val_scores, threshold=float(np.quantile(val_scores, level)),
                          level=level, train_cases=n_train, source=dict(source or {}))


def spread(items: Sequence, cap: int) -> list:
    """At most ``cap`` of ``items``, evenly spaced (all of them when there are fewer): a fixed,
    reproducible subset that covers the whole list rather than its head."""
    if cap < 1:
        raise ValueError(f"cap must be positive, got {cap}")
    if len(items) <= cap:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, cap).round().astype(int)]


def fingerprint_predictor(predictor: Predictor, train_bmodes: Sequence[np.ndarray], val_bmodes: Sequence[np.ndarray],
                          *, level: float = DEFAULT_LEVEL, source: dict[str, Any] | None = None,
                          batch_size: int = 16) -> OodFingerprint:
    """:func:`fit_fingerprint` on the features ``predictor``'s generator gives these B-modes."""
    return fit_fingerprint(image_features(predictor, train_bmodes, batch_size=batch_size),
                           image_features(predictor, val_bmodes, batch_size=batch_size), level=level, source=source)


def fingerprint_manifest(predictor: Predictor, manifest: str | Path, *, max_train: int = DEFAULT_MAX_TRAIN,
                         max_val: int = DEFAULT_MAX_VAL,
                         level: float = DEFAULT_LEVEL, batch_size: int = 16) -> OodFingerprint:
    """The fingerprint of a manifest's ``train`` split (at most ``max_train`` cases, evenly
    spread) with its threshold on the ``val`` split (at most ``max_val``), each B-mode read by
    ``elastogan.bmode_input.load_bmode`` as ``predict`` reads a file.

    Raises:
        UserError: no train or too few val cases (named with the manifest); an unreadable B-mode
            (``InputFileError`` naming it).
    """
    from elastogan.bmode_input import load_bmode
    from elastogan.data.manifest import read_manifest
    from elastogan.errors import UserError

    m = read_manifest(manifest)
    train, val = spread(m.split("train"), max_train), spread(m.split("val"), max_val)
    if len(train) < MIN_TRAIN_CASES or len(val) < MIN_VAL_CASES:
        raise UserError(f"{manifest}: a fingerprint needs at least {MIN_TRAIN_CASES} train and {MIN_VAL_CASES} val "
                        f"cases, got {len(train)} and {len(val)}")
    source = {"manifest": str(manifest), "train_split": "train", "val_split": "val", "val_cases": len(val),
              "max_train": max_train, "max_val": max_val}
    try:
        return fingerprint_predictor(predictor, [load_bmode(c.bmode) for c in train], [load_bmode(c.bmode) for c in val],
                                     level=level, source=source, batch_size=batch_size)
    except ValueError as e:
        raise UserError(f"{manifest}: no fingerprint: {e}") from None


def store_fingerprint(src: str | Path, fingerprint: OodFingerprint, dst: str | Path | None = None) -> Path:
    """Write checkpoint ``src`` with ``fingerprint`` under ``"ood"`` to ``dst`` (default: ``src``,
    replaced atomically); everything else in it is kept as it is."""
    from elastogan.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(src)
    ckpt = {k: v for k, v in ckpt.items() if k not in ("format", "format_version", "versions")}
    ckpt["ood"] = fingerprint.to_dict()
    out = Path(dst) if dst is not None else Path(src)
    save_checkpoint(out, ckpt)
    return out
