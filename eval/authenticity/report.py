"""Authenticity without readers: every measurement of ``elastogan evaluate`` in one call.

Keys of the returned dict (JSON-ready; a value that cannot be computed is None, and ``notes``
says why):

* ``c2st_texture_{accuracy,ci,p,auc}``: classifier two-sample test of real against synthetic
  strain maps with the texture observer (:mod:`.c2st`, :mod:`.texture_observer`): held-out
  accuracy, its exact 95 % CI ``[lo, hi]``, the exact binomial p against 0.5, the AUC.
* ``c2st_cnn_{…}``: the same with the CNN observer (:mod:`.cnn_observer`); None with
  ``cnn=False``.
* ``c2st_texture_emode_{…}``, ``c2st_cnn_emode_{…}``: the same on the E-mode luminance, what a
  reader sees; None when no E-modes are given (the keys are always present).
* ``fd_texture``: Fréchet distance of the texture features, standardised by the real set.
* ``memorisation_ratio``, ``memorisation`` (``{"synthetic": [...], "real": [...]}``, each case's
  nearest-neighbour distance to the training maps): None without training maps.
* ``texture_table``: ``{feature: {real_mean, real_sd, synthetic_mean, synthetic_sd}}`` (sd with
  n − 1), features as :data:`.texture.FEATURES` describes them.
* ``texture_diagnosis`` (:mod:`.diagnosis`): why the texture observer separates the strain
  maps — per feature the standardised difference, sd ratio and accuracy alone; the most
  telling pair of features with its joint (Mahalanobis) shift; the whole mean shift's
  Mahalanobis distance. None without folds.
* ``texture_table_emode``, ``texture_diagnosis_emode``: the same two for the E-mode luminance
  (the colour overlay a reader sees, through :func:`.maps.emode_maps`), from the features the
  E-mode texture observer uses: why that observer separates the E-modes, which need not be why
  the strain observer separates the strain maps. None when no E-modes are given (the diagnosis
  also without folds).
* ``spectrum``: ``{"frequency", "real", "synthetic"}``: bin centres in cycles/pixel and the
  radially averaged power spectrum averaged over each set.
* ``n_cases``; ``folds`` (the folds used: fewer than asked when there are fewer patients);
  ``notes``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from elastogan.eval.authenticity.c2st import C2STResult, two_sample_test
from elastogan.eval.authenticity.cnn_observer import CNNObserver
from elastogan.eval.authenticity.diagnosis import texture_diagnosis
from elastogan.eval.authenticity.frechet import fd_texture
from elastogan.eval.authenticity.maps import MapError, check_maps, emode_maps
from elastogan.eval.authenticity.memorisation import memorisation_ratio, nearest_distances
from elastogan.eval.authenticity.spectrum import mean_spectrum
from elastogan.eval.authenticity.texture import FEATURE_NAMES, feature_matrix
from elastogan.eval.authenticity.texture_observer import TextureObserver

MIN_CASES = 4
C2ST_FIELDS = ("accuracy", "ci", "p", "auc")


def authenticity_metrics(real: Sequence[np.ndarray], synthetic: Sequence[np.ndarray], groups: Sequence[str], *,
                         real_emode: Sequence[np.ndarray] | None = None,
                         synthetic_emode: Sequence[np.ndarray] | None = None,
                         train: Sequence[np.ndarray] = (), folds: int = 5, seed: int = 0, cnn: bool = True) -> dict:
    """Classifier two-sample tests, Fréchet distance, memorisation, texture table and spectrum.

    Args:
        real, synthetic: case i's real and synthetic mapped strain, cropped to its ROI box
            (2-D, finite, at least 8×8; sizes may differ between cases).
        groups: case i's patient; a patient's cases are held out together.
        real_emode, synthetic_emode: ROI crops of the RGB E-modes (H×W×3 uint8), both or neither.
        train: ROI crops of the training split's real strain maps (memorisation check).
        folds: cross-fitting folds (≥ 2; fewer when there are fewer patients).
        seed: folds and observers.
        cnn: run the CNN observer (the slow part).

    Returns:
        The dict described in the module docstring.

    Raises:
        MapError (a ValueError): mismatched lengths, fewer than 4 cases, a bad ``folds``, or a
            map that is not 2-D, smaller than 8×8 or not finite (named by set and index).
    """
    n = len(real)
    if len(synthetic) != n or len(groups) != n:
        raise MapError(f"expected one synthetic map and one group per real map, got {n} real, {len(synthetic)} "
                       f"synthetic, {len(groups)} groups")
    if n < MIN_CASES:
        raise MapError(f"authenticity metrics need at least {MIN_CASES} cases, got {n}")
    if (real_emode is None) != (synthetic_emode is None):
        raise MapError("give real_emode and synthetic_emode together, or neither")
    if real_emode is not None and (len(real_emode) != n or len(synthetic_emode) != n):
        raise MapError(f"expected {n} real and {n} synthetic E-modes, got {len(real_emode)} and {len(synthetic_emode)}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise MapError(f"folds must be an integer >= 2, got {folds!r}")
    real_maps, synthetic_maps = check_maps(real, "real"), check_maps(synthetic, "synthetic")
    train_maps = check_maps(train, "train")
    emodes = None if real_emode is None else (emode_maps(real_emode, "real_emode"), emode_maps(synthetic_emode, "synthetic_emode"))
    groups = [str(g) for g in groups]
    notes: list[str] = []
    out: dict = {}

    features = feature_matrix(real_maps, "real"), feature_matrix(synthetic_maps, "synthetic")
    emode_features = None if emodes is None else (feature_matrix(emodes[0], "real_emode"),
                                                  feature_matrix(emodes[1], "synthetic_emode"))
    n_groups = len(set(groups))
    used_folds = min(folds, n_groups) if n_groups >= 2 else None
    if used_folds is None:
        notes.append(f"classifier two-sample tests need at least 2 patients to cross-fit, got {n_groups}")
    if emodes is None:
        notes.append("no E-modes given: the c2st_*_emode and texture_*_emode keys are None")
    if not cnn:
        notes.append("CNN observer not run (cnn=False): the c2st_cnn_* keys are None")
    for suffix, pair, feats in (("", (real_maps, synthetic_maps), features), ("_emode", emodes, emode_features)):
        tex = cnn_res = diagnosis = None
        if pair is not None and used_folds is not None:
            tex = two_sample_test(list(feats[0]), list(feats[1]), groups, groups, TextureObserver(), folds=folds, seed=seed)
            if cnn:
                cnn_res = two_sample_test(pair[0], pair[1], groups, groups, CNNObserver(), folds=folds, seed=seed)
            diagnosis = texture_diagnosis(*feats, groups, FEATURE_NAMES, folds=folds, seed=seed)
        out.update(_c2st_keys(f"c2st_texture{suffix}", tex))
        out.update(_c2st_keys(f"c2st_cnn{suffix}", cnn_res))
        out[f"texture_diagnosis{suffix}"] = diagnosis
        out[f"texture_table{suffix}"] = None if feats is None else _texture_table(*feats)

    out["fd_texture"] = fd_texture(*features)
    if train_maps:
        distances = {"synthetic": nearest_distances(synthetic_maps, train_maps).tolist(),
                     "real": nearest_distances(real_maps, train_maps).tolist()}
        out["memorisation_ratio"] = memorisation_ratio(distances["synthetic"], distances["real"])
        if out["memorisation_ratio"] is None:
            notes.append("memorisation_ratio undefined: the real test maps' median distance to the training maps is 0")
        out["memorisation"] = distances
    else:
        notes.append("no training maps given: memorisation keys are None")
        out["memorisation_ratio"] = out["memorisation"] = None

    frequency, real_power = mean_spectrum(real_maps)
    out["spectrum"] = {"frequency": frequency.tolist(), "real": real_power.tolist(),
                       "synthetic": mean_spectrum(synthetic_maps)[1].tolist()}
    out["n_cases"] = n
    out["folds"] = used_folds
    out["notes"] = notes
    return out


def _texture_table(real: np.ndarray, synthetic: np.ndarray) -> dict:
    """``{feature: {real_mean, real_sd, synthetic_mean, synthetic_sd}}`` of two ``(n, d)`` feature matrices."""
    return {name: {"real_mean": float(real[:, j].mean()), "real_sd": float(real[:, j].std(ddof=1)),
                   "synthetic_mean": float(synthetic[:, j].mean()), "synthetic_sd": float(synthetic[:, j].std(ddof=1))}
            for j, name in enumerate(FEATURE_NAMES)}


def _c2st_keys(prefix: str, res: C2STResult | None) -> dict:
    if res is None:
        return {f"{prefix}_{f}": None for f in C2ST_FIELDS}
    return {f"{prefix}_accuracy": float(res.accuracy), f"{prefix}_ci": [float(v) for v in res.ci],
            f"{prefix}_p": float(res.p), f"{prefix}_auc": float(res.auc)}
