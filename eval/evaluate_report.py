"""``elastogan evaluate``: synthetic elastograms of a split against the real ones, written up.

For each case of the split every model predicts from the B-mode (inside the case's ROI), and
:func:`elastogan.eval.evaluate.compare_case` compares. Output folder::

    metrics.json      one checkpoint: the flat summary (ncc_mean, ncc_sd, …, n_cases; the
                      ceilings ncc_oracle_mean and ncc_retest_mean; the K-sample mean's
                      ncc_mean_of_samples_mean; calibration coverage_90, sd_error_spearman,
                      sd_ncc_spearman; authenticity without readers c2st_*, fd_texture,
                      memorisation_ratio); several: {checkpoint name: that summary}, where each
                      checkpoint after the first also has ``paired``: its case-by-case
                      comparison with the first (``elastogan.eval.paired``) on NCC, E-mode NCC,
                      SSIM, MAE, lesion NCC and the NCC of the K-sample mean (ROI and lesion)
    report.md         the summaries side by side, with the reference paper's NCC, each NCC
                      beside its ceiling, the observers' accuracies and the issue's goals
    per_case.csv      one row per case (columns of elastogan.eval.evaluate.COLUMNS;
                      `elastogan stats report` reads its ncc, ssim, psnr, mae)
    ncc_histogram.png, gallery.png (real | synthetic | difference; | explanation with
    ``explain``), strain_ratio.png, bland_altman.png (strain ratio and EI/B, synthetic vs real),
    spectrum.png (radially averaged power spectrum, real vs synthetic), memorisation.png

The radiologist's measurements (issue 14 §3, ``elastogan.eval.measurements.report``): each case's
row gets the EI/B of the real and the synthetic elastogram (``measure_case``); per checkpoint,
``measurement_report`` (Bland–Altman, Tsukuba κ, AUC for malignancy with the paired DeLong
test) goes into metrics.json under ``measurements`` and into report.md.

With several checkpoints the per-checkpoint files go into one sub-folder each (named after
the checkpoint), and ``metrics.json`` and ``report.md`` stay at the top. Every file is
written atomically.

A model is a :class:`Model`: one draw (``RealCase`` → synthetic ``(emode, strain)``, what a
reader is shown) and, for a generator that samples, K draws of the strain — a trained
checkpoint's ``Predictor`` (:func:`predictor_model`), or (in tests) the real images of a
manifest. A plain callable is a model that draws one output.

The ceilings come from the manifest: a phantom case's ``source.true_strain`` (the simulator's
FEM strain: the oracle) and ``source.retest_strain`` (a re-scan, ``elastogan simulate
--retest``), paths relative to the manifest like its images.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from elastogan.atomic import atomic_write_bytes, atomic_write_text
from elastogan.bmode_input import load_bmode
from elastogan.data.images import read_mask, read_rgb, read_strain
from elastogan.data.manifest import SPLITS, Case, read_manifest
from elastogan.display import Box
from elastogan.errors import UserError
from elastogan.data.resize import resize_box, resize_strain
from elastogan.eval.evaluate import (COLUMNS, INTERVAL_LEVEL, RealCase, compare_case, gallery_picks, resize_real_case,
                                     summarise)
from elastogan.eval.gallery_figure import GalleryRow, explanation_rgb, gallery_png
from elastogan.eval.histogram_figure import histogram_png
from elastogan.eval.measurements.report import case_labels, measure_case, measurement_report
from elastogan.eval.paired import paired_comparison
from elastogan.eval.paper_report import REFERENCE_PAPER
from elastogan.eval.scatter_figure import scatter_png
from elastogan.eval.stats_format import interval, num, pval, to_json
from elastogan.eval.tsukuba_report import confusion_markdown

PredictFn = Callable[[RealCase], tuple[np.ndarray, np.ndarray]]
SampleFn = Callable[[RealCase, int], np.ndarray]
ExplainFn = Callable[[RealCase, Box], np.ndarray]
# Source fields of a phantom case: the simulator's reference maps, relative to the manifest.
REFERENCE_MAPS = ("true_strain", "retest_strain")
TRAIN_CAP = 500  # training maps read for the memorisation check (evenly spread over the split)
_NUMERIC = tuple(c for c in COLUMNS if c not in ("case", "tsukuba_label", "tsukuba_real", "tsukuba_synthetic", "note"))
# report.md rows: (label, metrics.json prefix)
_TABLE_ROWS = (
    ("NCC, mapped strain in the ROI", "ncc"),
    ("NCC, E-mode luminance in the ROI", "ncc_emode"),
    ("SSIM, strain in the ROI", "ssim"),
    ("PSNR (dB), strain in the ROI", "psnr"),
    ("MAE, strain in the ROI", "mae"),
    ("NCC, strain in the lesion", "ncc_lesion"),
    ("SSIM, strain in the lesion", "ssim_lesion"),
    ("PSNR (dB), strain in the lesion", "psnr_lesion"),
    ("MAE, strain in the lesion", "mae_lesion"),
    ("strain ratio error, synthetic − real", "strain_ratio_error_abs"),
    ("strain ratio relative error", "strain_ratio_error_rel"),
    ("fraction of the ROI at an end of the display (≤ 0.01 or ≥ 0.99), real", "saturated_real"),
    ("fraction of the ROI at an end of the display, synthetic", "saturated_synthetic"),
    ("NCC of the mean of K draws, strain in the ROI", "ncc_mean_of_samples"),
    ("NCC of the mean of K draws, strain in the lesion", "ncc_lesion_mean_of_samples"),
    ("ceiling of the mean: NCC true FEM strain vs scanner (oracle)", "ncc_oracle"),
    ("ceiling of a draw: NCC scanner re-scan vs scan (test–retest)", "ncc_retest"),
    ("mean per-pixel sd of the K draws in the ROI", "sd_mean"),
    ("Spearman of per-pixel sd with the mean's error", "sd_error_spearman"),
    ("coverage of the 90 % predictive interval", "coverage_90"),
    ("coverage of the 90 % interval before calibration", "coverage_90_raw"),
)
# compared case by case between checkpoints: (label, per-case column, higher is better)
PAIRED_METRICS = (
    ("NCC, mapped strain in the ROI", "ncc", True),
    ("NCC, E-mode luminance in the ROI", "ncc_emode", True),
    ("SSIM, strain in the ROI", "ssim", True),
    ("MAE, strain in the ROI", "mae", False),
    ("NCC, strain in the lesion", "ncc_lesion", True),
    ("NCC of the mean of K draws, strain in the ROI", "ncc_mean_of_samples", True),
    ("NCC of the mean of K draws, strain in the lesion", "ncc_lesion_mean_of_samples", True),
)


@dataclasses.dataclass(frozen=True)
class Model:
    """A model as ``evaluate`` sees it.

    Attributes:
        one: ``RealCase`` → ``(emode, strain)``: one draw, what a reader is shown (H×W×3 uint8
            and H×W float32, NaN outside the ROI).
        samples: ``(RealCase, K)`` → K×H×W strain draws whose draw 0 is ``one``'s strain, or
            ``None`` for a model that draws one output only (deterministic): its "mean of K
            draws" is that output and it has no spread to calibrate.
        interval_scale: the conformal factor of the draws' 90 % interval (``elastogan
            calibrate``); 1 uncalibrated.
        explain: ``(RealCase, box)`` → H×W attribution map of the mean predicted strain in the
            box (``elastogan.explain.integrated_gradients``), for the gallery's explanation
            panel; ``None``: the model cannot be explained.
    """

    one: PredictFn
    samples: SampleFn | None = None
    interval_scale: float = 1.0
    explain: ExplainFn | None = None


def predictor_model(predictor: Any, *, seed: int = 0) -> Model:
    """A trained ``elastogan.predict.Predictor`` as a :class:`Model`: each case drawn with its own
    seed, ``case_seed(seed, case id)`` (drawn with the scanner's opacity), and K draws when the
    generator samples. One seed for every case would give every case the same noise, and a
    texture stage's frame-wide code the same value in all of them: the synthetic set would vary
    from case to case less than the scans, and the observers would measure that, not the model."""
    from elastogan.predict import case_seed

    def one(real: RealCase) -> tuple[np.ndarray, np.ndarray]:
        return predictor.predict(real.bmode, roi=real.roi, alpha=real.alpha, seed=case_seed(seed, real.id))

    def draws(real: RealCase, k: int) -> np.ndarray:
        return predictor.sample(real.bmode, samples=k, seed=case_seed(seed, real.id), roi=real.roi)

    def explain(real: RealCase, box: Box) -> np.ndarray:
        from elastogan.explain import integrated_gradients

        return integrated_gradients(predictor, real.bmode, box, seed=case_seed(seed, real.id)).attribution

    c = predictor.calibration
    scale = c.pixel_scale if c is not None and c.level == INTERVAL_LEVEL else 1.0
    return Model(one=one, samples=draws if predictor.stochastic else None, interval_scale=scale, explain=explain)


def _as_model(m: Model | PredictFn) -> Model:
    return m if isinstance(m, Model) else Model(one=m)


def split_cases(manifest: str | Path, split: str) -> list[Case]:
    """The cases of ``split``, each with strain and ROI (checked at the door).

    Raises:
        UserError: unknown split, no case in it, or cases without strain (named).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    m = read_manifest(manifest)
    cases = m.split(split)
    if not cases:
        present = ", ".join(s for s in SPLITS if m.split(s)) or "none"
        raise UserError(f"{m.path}: no case in split {split!r} (splits present: {present})")
    bare = [c.id for c in cases if c.strain is None or c.roi is None]
    if bare:
        raise UserError(f"{m.path}: {len(bare)} case(s) of split {split!r} have no real strain map (and ROI) to "
                        f"compare with: {_listed(bare)}")
    cases = [_resolve_reference_maps(c, m.root) for c in cases]
    lost = [f"{c.id} ({k})" for c in cases for k in REFERENCE_MAPS if k in c.source and not Path(c.source[k]).is_file()]
    if lost:
        raise UserError(f"{m.path}: {len(lost)} reference map(s) named in source are missing: {_listed(lost)}")
    return cases


def train_cases(manifest: str | Path, cap: int = TRAIN_CAP) -> list[Case]:
    """Up to ``cap`` cases of the manifest's train split with a strain map, evenly spread over
    it (for the memorisation check); ``[]`` when it has none."""
    cases = [c for c in read_manifest(manifest).split("train") if c.strain is not None and c.roi is not None]
    if len(cases) <= cap:
        return cases
    return [cases[int(i)] for i in np.linspace(0, len(cases) - 1, cap).round()]


def _listed(items: Sequence[str]) -> str:
    return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def _resolve_reference_maps(case: Case, root: Path) -> Case:
    """The case with its source's reference map paths resolved against the manifest folder."""
    # absolute, whatever the working folder: a manifest named by a relative path has a relative root
    found = {k: str((root / case.source[k]).resolve()) for k in REFERENCE_MAPS if isinstance(case.source.get(k), str)}
    return dataclasses.replace(case, source={**case.source, **found}) if found else case


def load_real_case(case: Case) -> RealCase:
    """The real images of a manifest case (from :func:`split_cases`: the reference maps in its
    source, the phantoms' true and re-scan strain, are resolved there)."""
    return RealCase(
        id=case.id,
        bmode=load_bmode(case.bmode),
        strain=read_strain(case.strain),
        roi=case.roi,
        emode=read_rgb(case.emode) if case.emode is not None else None,
        lesion=read_mask(case.lesion) if case.lesion is not None else None,
        tsukuba=case.tsukuba,
        alpha=float(case.source.get("display_alpha", 0.5)),
        true_strain=_reference_map(case, "true_strain"),
        retest_strain=_reference_map(case, "retest_strain"),
    )


def _reference_map(case: Case, key: str) -> np.ndarray | None:
    """``source[key]``'s map, or ``None`` when the case has none."""
    if key not in case.source:
        return None
    path = Path(case.source[key])
    if not path.is_absolute():
        raise ValueError(f"case {case.id}: source.{key} {path} is relative to its manifest; read the cases with "
                         "split_cases, which resolves it")
    return read_strain(path)


def checkpoint_names(paths: Sequence[str | Path]) -> list[str]:
    """Short unique names: the shortest trailing parts of the paths (no suffix) that differ,
    leaving out the ``checkpoints`` folder of a run.

    ``runs/a/checkpoints/best.pt`` and ``runs/b/checkpoints/best.pt`` → ``a/best`` and
    ``b/best``; a single path → its stem.
    """
    resolved = [Path(p).resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise UserError(f"checkpoint {paths[i]} is given twice")
    full = [Path(p).with_suffix("").parts for p in paths]
    short = [tuple(x for x in p[:-1] if x != "checkpoints") + p[-1:] for p in full]
    for parts in (short, full):
        for k in range(1, max(map(len, parts)) + 1):
            names = ["/".join(p[-k:]) for p in parts]
            if len(set(names)) == len(names):
                return names
    return [str(p) for p in paths]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "checkpoint"


def _cell(column: str, v: Any) -> str:
    if v is None:
        return "nan" if column in _NUMERIC else ""
    if isinstance(v, float):
        return "inf" if v == math.inf else f"{v:.6g}"
    return str(v)


def per_case_csv(rows: Iterable[dict[str, Any]]) -> str:
    """``per_case.csv`` text: :data:`~elastogan.eval.evaluate.COLUMNS`; an undefined number is ``nan``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(c, r[c]) for c in COLUMNS])
    return buf.getvalue()


def evaluate(
    models: Mapping[str, Model | PredictFn],
    cases: Sequence[Case],
    out: str | Path,
    *,
    info: Mapping[str, Mapping[str, Any]] | None = None,
    source: Mapping[str, Any] | None = None,
    gallery: int = 4,
    progress: bool = False,
    samples: int = 8,
    train: Sequence[Case] = (),
    authenticity: bool = True,
    cnn: bool = True,
    size: int | None = None,
    explain: bool = False,
) -> list[Path]:
    """Compare every model with the real cases; write metrics.json, report.md, CSV and figures.

    Args:
        models: name → :class:`Model` (or a plain one-draw callable), ordered; the report's
            columns follow it.
        cases: the manifest cases (with strain and ROI, see :func:`split_cases`).
        out: output folder.
        info: name → provenance shown in metrics.json and report.md (checkpoint path, step, …).
        source: what was evaluated (manifest, split), for metrics.json and report.md.
        gallery: cases in the gallery figure.
        progress: a progress bar over the cases.
        samples: K, draws per case of a model that samples (1: the single draw only).
        train: training cases (:func:`train_cases`) for the memorisation check.
        authenticity: run the observers without readers (``elastogan.eval.authenticity``):
            classifier two-sample tests, Fréchet distance, memorisation, power spectrum.
        cnn: with ``authenticity``, also the CNN observer (the slow part).
        size: compare at ``size × size``: every real case (and training map) is resampled as
            training resamples its frames (:func:`~elastogan.eval.evaluate.resize_real_case`)
            and the models predict from the resampled B-mode; ``None``: the frames' own size.
        explain: add the explanation panel to each gallery (models with ``explain``): the
            integrated gradients of the mean predicted strain in the lesion's bounding box.

    Returns:
        The files written.
    """
    if not models:
        raise ValueError("no model to evaluate")
    if not cases:
        raise ValueError("no case to evaluate")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    models = {name: _as_model(m) for name, m in models.items()}
    info = info or {}
    source = dict(source or {})
    if size is not None:
        if size < 8:
            raise UserError(f"--size must be at least 8, got {size}")
        source["size"] = size
    out = Path(out)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    real_maps = _Maps()
    synthetic_maps = {name: _Maps() for name in models}
    iterator: Iterable[Case] = cases
    if progress:
        from tqdm import tqdm

        iterator = tqdm(cases, desc="evaluate", unit="case")
    for case in iterator:  # cases outside, models inside: each real case is read once
        real = load_real_case(case)
        if size is not None:
            real = resize_real_case(real, size)
        box = finite_box(real.strain, real.roi)  # the observers' crop, the same on both sides
        real_maps.add(real.strain, real.emode, box)
        for name, model in models.items():
            emode, strain = model.one(real)
            draws = model.samples(real, samples) if model.samples is not None and samples > 1 else None
            row = compare_case(real, emode, strain, draws, model.interval_scale)
            rows[name].append(row | measure_case(real.strain, strain, real.lesion, real.roi))
            synthetic_maps[name].add(strain, emode, box)

    groups = [c.patient_id for c in cases]
    train_maps = []
    for c in train if authenticity else []:
        m, roi = read_strain(c.strain), c.roi
        if size is not None:
            m, roi = resize_strain(m, size), resize_box(roi, m.shape, size)
        train_maps.append(_crop(m, finite_box(m, roi)))
    single = len(models) == 1
    written: list[Path] = []
    summaries: dict[str, dict[str, Any]] = {}
    folders: dict[str, str] = {}
    extras: dict[str, dict[str, Any]] = {}
    measured: dict[str, list[str]] = {}
    labels = case_labels(cases)
    for name, model in models.items():
        folder = "" if single else _slug(name)
        folders[name] = folder
        d = out / folder if folder else out
        summary = summarise(rows[name])
        summary["samples"] = samples if model.samples is not None else 1
        summary["interval_scale"] = model.interval_scale
        if model.samples is None and samples > 1:
            summary["notes"].append("samples: the model draws one output; its mean of K draws is that output")
        if authenticity:
            found, extras[name] = _authenticity(real_maps, synthetic_maps[name], groups, train_maps, cnn)
            summary["notes"] += [f"authenticity: {n}" for n in found.pop("notes", [])]
            summary.update(found)
        summary["measurements"], measured[name], figure = measurement_report(rows[name], labels)
        summaries[name] = {**source, **info.get(name, {}), **summary}
        written += _write_checkpoint_files(d, rows[name], model.one, cases, gallery, extras.get(name),
                                           model.explain if explain else None)
        if figure is not None:
            atomic_write_bytes(d / "bland_altman.png", figure)
            written.append(d / "bland_altman.png")
    names = list(models)
    for name in names[1:]:  # each later checkpoint against the first, on the same cases
        summaries[name]["paired"] = paired_against(rows[name], rows[names[0]], names[0])
    metrics = next(iter(summaries.values())) if single else summaries
    js, md = out / "metrics.json", out / "report.md"
    atomic_write_text(js, to_json(metrics))
    atomic_write_text(md, markdown(summaries, rows, folders, {p.relative_to(out).as_posix() for p in written}, source,
                                   extras, measured))
    return [js, md, *written]


def _crop(a: np.ndarray, roi: Box) -> np.ndarray:
    x0, y0, x1, y1 = roi
    return a[y0:y1, x0:x1]


def finite_box(strain: np.ndarray, roi: Box) -> Box:
    """``roi`` shrunk, edge by edge, until the strain map is finite inside it.

    A map resized from another resolution (training's ``data.image_size`` cache, a clinical
    export) is NaN along the rim of its ROI box, where less than half a resampled pixel was
    inside; the observers need finite maps, and the real and the synthetic crop of a case the
    same box. Returns ``roi`` itself when the map is finite there.
    """
    box = list(roi)
    bad = ~np.isfinite(strain)
    while box[2] - box[0] > 1 and box[3] - box[1] > 1:
        x0, y0, x1, y1 = box
        # non-finite pixels on each edge, and the move that drops that edge
        edges = [(bad[y0, x0:x1].sum(), 1, +1), (bad[y1 - 1, x0:x1].sum(), 3, -1),
                 (bad[y0:y1, x0].sum(), 0, +1), (bad[y0:y1, x1 - 1].sum(), 2, -1)]
        count, side, move = max(edges, key=lambda e: e[0])
        if count == 0:  # finite along every edge (NaN only inside, if any: the observers' check names it)
            break
        box[side] += move
    x0, y0, x1, y1 = box
    return (x0, y0, x1, y1)


@dataclasses.dataclass
class _Maps:
    """ROI crops of one side's maps, case by case (the observers' input)."""

    strain: list[np.ndarray] = dataclasses.field(default_factory=list)
    emode: list[np.ndarray | None] = dataclasses.field(default_factory=list)

    def add(self, strain: np.ndarray, emode: np.ndarray | None, roi: Box) -> None:
        self.strain.append(_crop(strain, roi))
        self.emode.append(None if emode is None else _crop(emode, roi))


# Keys of authenticity_metrics' result that are figure or table data, not metrics.json numbers
# (its n_cases is the summary's own).
_AUTHENTICITY_DATA = ("texture_table", "texture_diagnosis", "texture_table_emode", "texture_diagnosis_emode",
                      "spectrum", "memorisation", "n_cases")


def _authenticity(real: _Maps, synthetic: _Maps, groups: list[str], train: list[np.ndarray],
                  cnn: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The observers' numbers for metrics.json and the full result (figures, texture table).

    The E-mode observers run when every case has a real E-mode. Data the observers cannot
    use (fewer than 4 cases, a ROI under 8×8 pixels) leave every observer key ``None`` with a
    note instead of failing the whole evaluation.
    """
    from elastogan.eval.authenticity.maps import MapError
    from elastogan.eval.authenticity.report import C2ST_FIELDS, authenticity_metrics

    with_emode = all(e is not None for e in real.emode)
    try:
        result = authenticity_metrics(
            real=real.strain, synthetic=synthetic.strain, groups=groups,
            real_emode=real.emode if with_emode else None, synthetic_emode=synthetic.emode if with_emode else None,
            train=train, folds=5, seed=0, cnn=cnn)
    except MapError as e:
        keys = [f"c2st_{o}{m}_{f}" for o in ("texture", "cnn") for m in ("", "_emode") for f in C2ST_FIELDS]
        return {**dict.fromkeys([*keys, "fd_texture", "memorisation_ratio", "c2st_folds"]), "notes": [str(e)]}, {}
    scalars = {k: v for k, v in result.items() if k not in _AUTHENTICITY_DATA}
    if not with_emode:
        scalars["notes"] = [*scalars.get("notes", []), "E-mode observers: not every case has a real E-mode"]
    scalars["c2st_folds"] = scalars.pop("folds", None)
    return scalars, result


def paired_against(rows: Sequence[dict[str, Any]], reference_rows: Sequence[dict[str, Any]],
                   reference: str) -> dict[str, Any]:
    """One checkpoint's per-case metrics against the reference checkpoint's (same cases, same order):
    ``{"reference": name, metric: paired_comparison(this, reference)}``; differences are this − reference."""
    out: dict[str, Any] = {"reference": reference}
    for _, col, _ in PAIRED_METRICS:
        out[col] = paired_comparison([r[col] for r in rows], [r[col] for r in reference_rows])
    return out


def _ratio_cell(s: Mapping[str, Any], key: str, value: str, ceiling: str) -> str:
    """The ratio ``s[key]`` with the two means it divides, e.g. ``0.833 (0.700 / 0.840)``."""
    ratio = s.get(key)
    if ratio is None:
        return "—"
    return f"{num(ratio)} ({num(s[value + '_mean'])} / {num(s[ceiling + '_mean'])})"


def _c2st_cell(s: Mapping[str, Any], observer: str, emode: bool) -> str:
    k = _c2st_key(observer, emode)
    acc = s.get(f"{k}_accuracy")
    if acc is None:
        return "—"
    text = f"{num(acc)} {interval(s.get(f'{k}_ci'))}; p {pval(s.get(f'{k}_p'))}"
    return text + (f"; AUC {num(s[f'{k}_auc'])}" if s.get(f"{k}_auc") is not None else "")


def _c2st_key(observer: str, emode: bool) -> str:
    """metrics.json prefix of an observer's C2ST: ``c2st_texture``, ``c2st_cnn_emode``…"""
    return f"c2st_{observer}" + ("_emode" if emode else "")


# The perception–distortion table of issue 11: (label, cell, goal).
_CEILING_ROWS: tuple[tuple[str, Callable[[Mapping[str, Any]], str], str], ...] = (
    ("one draw (what a reader is shown): NCC in the ROI", lambda s: num(s.get("ncc_mean")), ""),
    ("its ceiling: the scanner's test–retest NCC", lambda s: num(s.get("ncc_retest_mean")), ""),
    ("one draw / test–retest", lambda s: _ratio_cell(s, "ncc_over_retest", "ncc", "ncc_retest"), "≥ 0.85"),
    ("mean of K draws (the best estimate): NCC in the ROI", lambda s: num(s.get("ncc_mean_of_samples_mean")), ""),
    ("its ceiling: the oracle, true FEM strain vs scanner", lambda s: num(s.get("ncc_oracle_mean")), ""),
    ("mean of K draws / oracle",
     lambda s: _ratio_cell(s, "ncc_mean_of_samples_over_oracle", "ncc_mean_of_samples", "ncc_oracle"), "≥ 0.95"),
    ("one draw / oracle", lambda s: _ratio_cell(s, "ncc_over_oracle", "ncc", "ncc_oracle"), ""),
    ("mean of K draws: NCC in the lesion", lambda s: num(s.get("ncc_lesion_mean_of_samples_mean")), "≥ 0.55"),
    ("texture observer C2ST accuracy [95 % CI], mapped strain", lambda s: _c2st_cell(s, "texture", False), "≤ 0.60"),
    ("texture observer C2ST accuracy, E-mode", lambda s: _c2st_cell(s, "texture", True), "≤ 0.60"),
    ("CNN observer C2ST accuracy, mapped strain", lambda s: _c2st_cell(s, "cnn", False), "≤ 0.75"),
    ("CNN observer C2ST accuracy, E-mode", lambda s: _c2st_cell(s, "cnn", True), "≤ 0.75"),
    ("Fréchet distance, texture features", lambda s: num(s.get("fd_texture")), "lower is better"),
    ("memorisation ratio (nearest training map: synthetic / real)", lambda s: num(s.get("memorisation_ratio")),
     "≈ 1; ≪ 1 copies"),
    ("K draws per case", lambda s: str(s.get("samples", "")), ""),
    ("coverage of the 90 % predictive interval", lambda s: num(s.get("coverage_90")), "0.85–0.95"),
    ("its conformal factor (elastogan calibrate; 1: uncalibrated) / coverage before",
     lambda s: f"{num(s.get('interval_scale'))} / {num(s.get('coverage_90_raw'))}", ""),
    ("Spearman of per-pixel sd with the mean's absolute error (mean over cases)",
     lambda s: num(s.get("sd_error_spearman")), "> 0.3"),
    ("Spearman mean sd vs 1 − NCC, across cases", lambda s: num(s.get("sd_ncc_spearman")), ""),
)


def _ceiling_markdown(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names = list(summaries)
    lines = ["## Each NCC against its ceiling; realism without readers; uncertainty", "",
             "A realistic *draw* cannot also be the best average guess (Blau & Michaeli 2018), so each is "
             "judged against its own ceiling. One draw is what a reader is shown: its NCC is set beside the "
             "scanner's own agreement between two scans of the same phantom (other compression, independent "
             "noise; `elastogan simulate --retest`), and observers try to tell it from real scans "
             "(classifier two-sample tests cross-fitted by patient: accuracy 0.5 = indistinguishable). The "
             "mean of K draws is the best estimate: its NCC is set beside the oracle, the true FEM strain "
             "against the scanner's elastogram. Coverage: the fraction of ROI pixels whose real value lies "
             "in the draws' 90 % predictive interval (mean ± t·sd·√(1 + 1/K)). Goals: issue 11.", "",
             "| | " + " | ".join(names) + " | goal |", "|---|" + "---|" * (len(names) + 1)]
    lines += [f"| {label} | " + " | ".join(cell(summaries[n]) for n in names) + f" | {goal} |"
              for label, cell, goal in _CEILING_ROWS]
    return [*lines, ""]


def _texture_markdown(table: Mapping[str, Mapping[str, float]], diagnosis: Mapping[str, Any] | None = None) -> list[str]:
    """``authenticity_metrics``' texture table: {feature: {real_mean, real_sd, synthetic_mean, synthetic_sd}},
    with its ``texture_diagnosis`` (per-feature d, sd ratio and accuracy alone; the most telling
    pair; the whole mean shift) where there is one."""
    header = ["feature", "real, mean ± sd", "synthetic, mean ± sd"] + (
        ["d", "sd ratio", "observer on it alone"] if diagnosis else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, v in table.items():
        cells = [name, f"{v['real_mean']:.4g} ± {v['real_sd']:.3g}", f"{v['synthetic_mean']:.4g} ± {v['synthetic_sd']:.3g}"]
        if diagnosis:
            f = diagnosis["features"][name]
            cells += [f"{f['d']:+.2f}", num(f["sd_ratio"]), f"{f['accuracy_alone']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if not diagnosis:
        return lines
    lines += ["", "- d: synthetic − real mean, in the pooled sd. A feature that tells the sets apart alone is a "
                  "level problem (too much or too little texture)."]
    pair = diagnosis.get("pair")
    if pair:
        d = [abs(diagnosis["features"][f]["d"]) for f in pair["features"]]
        lines.append(f"- Most telling pair: {pair['features'][0]} with {pair['features'][1]}, accuracy "
                     f"{pair['accuracy']:.3f}; their joint mean shift is {pair['mahalanobis']:.2f} sd in the pooled "
                     f"covariance against |d| {d[0]:.2f} and {d[1]:.2f} apart "
                     + ("(well above both: the two break a relation the real maps keep — the texture's kind is wrong)."
                        if pair["mahalanobis"] > 2 * max(d) else "(no more than the larger alone: a level, not a relation)."))
    if diagnosis["mahalanobis"] is not None:
        lines.append(f"- Whole mean shift: {diagnosis['mahalanobis']:.2f} sd (Mahalanobis); between two Gaussians that far "
                     f"apart the best linear rule scores {diagnosis['mahalanobis_accuracy']:.3f} (an upper reference: "
                     "the features are not Gaussian and the observer learns its rule from fewer cases).")
    else:
        lines.append(f"- Whole mean shift: not measured (no more cases than the {len(table)} features + 1: their "
                     "covariance is singular).")
    return lines


def _paired_cell(c: Mapping[str, Any], higher_is_better: bool) -> str:
    if c["diff"] is None:
        return f"— ({c.get('note', 'no case')})"
    text = f"{c['diff']:+.3f}"
    if c["ci"] is not None:
        text += f" [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]; p {pval(c['p_t'])}"
    w = c["wilcoxon"]
    if w is not None and w["p"] is not None:
        text += f"; Wilcoxon p {pval(w['p'])}"
    better = c["wins_a"] if higher_is_better else c["wins_b"]
    return text + f"; better in {better} of {c['n']}"


def _paired_markdown(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    others = [n for n, s in summaries.items() if "paired" in s]
    if not others:
        return []
    reference = summaries[others[0]]["paired"]["reference"]
    level = summaries[others[0]]["paired"]["ncc"]["level"]
    lines = [f"## Case by case against {reference}", "",
             f"Mean difference (column − {reference}) over the cases where both have a value, its "
             f"{level:.0%} paired-t interval and p, the two-sided Wilcoxon signed-rank p "
             "(`elastogan.eval.paired`), and the cases where the column's model is better.", "",
             "| metric | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
    for label, col, higher in PAIRED_METRICS:
        lines.append(f"| {label} ({'higher' if higher else 'lower'} is better) | "
                     + " | ".join(_paired_cell(summaries[n]["paired"][col], higher) for n in others) + " |")
    return [*lines, ""]


def _write_checkpoint_files(d: Path, rows: list[dict[str, Any]], predict: PredictFn, cases: Sequence[Case],
                            gallery: int, authenticity: Mapping[str, Any] | None,
                            explain: ExplainFn | None = None) -> list[Path]:
    written = [d / "per_case.csv"]
    atomic_write_text(written[0], per_case_csv(rows))
    ncc = [r["ncc"] for r in rows if r["ncc"] is not None]
    if ncc:
        path = d / "ncc_histogram.png"
        atomic_write_bytes(path, histogram_png(
            ncc, bins=20, value_range=(-1.0, 1.0) if min(ncc) < 0 else (0.0, 1.0),
            title="NCC of mapped strain in the ROI, real vs synthetic, per case", xlabel="NCC",
            marker=REFERENCE_PAPER["ncc"]["mean"], marker_label="paper mean 0.70"))
        written.append(path)
    picks = gallery_picks(rows, gallery)
    if picks:
        grows = []
        for i in picks:
            real = load_real_case(cases[i])
            emode, strain = predict(real)
            ncc_text = "undefined" if rows[i]["ncc"] is None else f"{rows[i]['ncc']:.3f}"
            panel = None
            if explain is not None:
                box = lesion_box(real)
                panel = explanation_rgb(real.bmode, explain(real, box), box)
            grows.append(GalleryRow(
                label=f"{real.id}  NCC {ncc_text}",
                real_emode=real.emode if real.emode is not None else _grey(real.bmode),
                synthetic_emode=emode, bmode=real.bmode, real_strain=real.strain, synthetic_strain=strain,
                roi=real.roi, explanation=panel))
        path = d / "gallery.png"
        atomic_write_bytes(path, gallery_png(grows))
        written.append(path)
    pairs = [(r["strain_ratio_real"], r["strain_ratio_synthetic"]) for r in rows
             if r["strain_ratio_real"] is not None and r["strain_ratio_synthetic"] is not None]
    if pairs:
        path = d / "strain_ratio.png"
        atomic_write_bytes(path, scatter_png(
            [a for a, _ in pairs], [b for _, b in pairs], title="Strain ratio (reference / lesion), per case",
            xlabel="real strain ratio", ylabel="synthetic strain ratio"))
        written.append(path)
    if authenticity is not None:
        from elastogan.eval.authenticity.figures import memorisation_png, spectrum_png

        for name, draw, key in (("spectrum.png", spectrum_png, "spectrum"), ("memorisation.png", memorisation_png,
                                                                              "memorisation")):
            if authenticity.get(key) is not None:
                atomic_write_bytes(d / name, draw(authenticity))
                written.append(d / name)
    return written


def lesion_box(real: RealCase) -> Box:
    """The box the gallery's explanation explains: the lesion mask's bounding box, the ROI
    without a lesion."""
    if real.lesion is None or not real.lesion.any():
        return real.roi
    ys, xs = np.nonzero(real.lesion)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _grey(bmode: np.ndarray) -> np.ndarray:
    return np.repeat(bmode[..., None], 3, axis=-1)


def _stat_cell(s: Mapping[str, Any], key: str) -> str:
    if s.get(f"{key}_n", 0) == 0:
        why = []
        if s.get(f"{key}_n_undefined"):
            why.append(f"{s[f'{key}_n_undefined']} undefined")
        if s.get(f"{key}_n_infinite"):
            why.append(f"{s[f'{key}_n_infinite']} infinite")
        return "— (" + ", ".join(why) + ")" if why else "—"
    text = (f"{num(s[f'{key}_mean'])} ± {num(s[f'{key}_sd'])}; median {num(s[f'{key}_median'])}; "
            f"{num(s[f'{key}_min'])} to {num(s[f'{key}_max'])}; n {s[f'{key}_n']}")
    for extra in ("undefined", "infinite"):
        if s.get(f"{key}_n_{extra}"):
            text += f" ({s[f'{key}_n_{extra}']} {extra})"
    return text


def _kappa_cell(s: Mapping[str, Any], which: str) -> str:
    t = s.get("tsukuba")
    if t is None:
        return "—"
    k = t[f"kappa_{which}"]
    if k["value"] is None:
        return f"— ({k['note']})"
    return f"{num(k['value'])} [{k['ci'][0]:.3f}, {k['ci'][1]:.3f}]; n {k['n_cases']}"


def markdown(summaries: Mapping[str, Mapping[str, Any]], rows: Mapping[str, Sequence[dict[str, Any]]],
             folders: Mapping[str, str], figures: set[str], source: Mapping[str, Any],
             authenticity: Mapping[str, Mapping[str, Any]] | None = None,
             measurements: Mapping[str, Sequence[str]] | None = None) -> str:
    """report.md: one column per checkpoint, the reference paper's NCC beside them; each NCC
    beside its ceiling, the observers and the calibration against the goals of issue 11;
    ``authenticity``: name → the full ``authenticity_metrics`` result (texture tables of the strain and
    the E-mode);
    ``measurements``: name → ``measurement_report``'s Markdown lines (in that checkpoint's section)."""
    names = list(summaries)
    first = next(iter(summaries.values()))
    what = ", ".join(f"{k} {v}" for k, v in source.items())
    lines = ["# Synthetic vs real elastograms", "",
             f"{first['n_cases']} cases ({what})." if what else f"{first['n_cases']} cases.", "",
             "Each metric compares the real and the synthetic elastogram of a case; mean ± sd; median; "
             "range; n cases with a value. NCC is the reference paper's zero-mean normalised "
             "cross-correlation (DESIGN §5). Strain ratio: reference tissue / lesion "
             "(`elastogan.tsukuba.strain_ratio`); its errors are signed (positive: the synthetic "
             "lesion looks harder). Tsukuba: the rule scorer on the real and on the synthetic strain; κ "
             "unweighted over all cases (cyst a category of its own), linear-weighted over the cases "
             "scored 1–5 on both sides.", ""]
    info_keys = [k for k in ("checkpoint", "model", "step", "stochastic") if any(k in s for s in summaries.values())]
    if info_keys:
        lines += ["| name | " + " | ".join(info_keys) + " |", "|---|" + "---|" * len(info_keys)]
        lines += [f"| {n} | " + " | ".join(str(summaries[n].get(k, "")) for k in info_keys) + " |" for n in names]
        lines.append("")
    p = REFERENCE_PAPER["ncc"]
    paper_ncc = f"{p['mean']:.2f} ± {p['sd']:.2f}; median {p['median']:.2f}; {p['min']:.2f} to {p['max']:.2f}"
    lines += ["| metric | " + " | ".join(names) + " | paper |", "|---|" + "---|" * (len(names) + 1)]
    for label, key in _TABLE_ROWS:
        paper = paper_ncc if key == "ncc" else ""
        lines.append(f"| {label} | " + " | ".join(_stat_cell(summaries[n], key) for n in names) + f" | {paper} |")
    lines.append("| strain ratio, mean absolute relative error | "
                 + " | ".join(num(summaries[n]["strain_ratio_mare"]) for n in names) + " | |")
    lines.append("| strain ratio of the mean of K draws, mean absolute relative error | "
                 + " | ".join(num(summaries[n].get("strain_ratio_mare_mean_of_samples")) for n in names) + " | |")
    lines.append("| Tsukuba agreement, real vs synthetic | " + " | ".join(
        "—" if summaries[n]["tsukuba"] is None else f"{num(summaries[n]['tsukuba_agreement'])}; n {summaries[n]['tsukuba']['n']}"
        for n in names) + " | |")
    lines.append("| Tsukuba κ unweighted | " + " | ".join(_kappa_cell(summaries[n], "unweighted") for n in names) + " | |")
    lines.append("| Tsukuba κ linear (1–5) | " + " | ".join(_kappa_cell(summaries[n], "linear") for n in names) + " | |")
    if any(summaries[n]["tsukuba_vs_label"]["synthetic"] for n in names):
        lines.append("| Tsukuba agreement with the manifest's labels, real / synthetic | " + " | ".join(
            " / ".join("—" if t is None else f"{num(t['agreement'])} (κ linear {num(t['kappa_linear']['value'])})"
                       for t in (summaries[n]["tsukuba_vs_label"][side] for side in ("real", "synthetic")))
            for n in names) + " | |")
    lines += ["", f"Paper: {REFERENCE_PAPER['source']}.", ""]
    lines += _ceiling_markdown(summaries)
    lines += _paired_markdown(summaries)
    for n in names:
        folder = folders[n]
        prefix = f"{folder}/" if folder else ""
        lines += [f"## {n}", ""]
        if summaries[n].get("notes"):
            lines += [f"- {note}" for note in summaries[n]["notes"]] + [""]
        found = (authenticity or {}).get(n, {})
        for suffix, what in (("", "Texture statistics of the mapped strain in the ROI, real vs synthetic "
                                  "(the texture observer's features):"),
                             ("_emode", "Texture statistics of the E-mode in the ROI as a reader sees it (the colour "
                                        "overlay's luminance, `emode_maps`), real vs synthetic (the E-mode texture "
                                        "observer's features; what tells the E-modes apart need not be what tells "
                                        "the strain maps apart):")):
            if found.get(f"texture_table{suffix}"):
                lines += [what, "", *_texture_markdown(found[f"texture_table{suffix}"],
                                                       found.get(f"texture_diagnosis{suffix}")), ""]
        t = summaries[n]["tsukuba"]
        if t is not None:
            lines += ["Tsukuba rule scores, real (rows) vs synthetic (columns):", ""]
            lines += confusion_markdown(t["confusion"], "real", "synthetic")
            lines.append("")
        for fig, alt in (("ncc_histogram.png", "NCC per case"), ("gallery.png", "real | synthetic | difference"),
                         ("strain_ratio.png", "strain ratio, real vs synthetic"),
                         ("spectrum.png", "radially averaged power spectrum, real vs synthetic"),
                         ("memorisation.png", "distance to the nearest training map, synthetic vs real")):
            if prefix + fig in figures:
                lines += [f"![{alt}]({prefix}{fig})", ""]
        # one level below the checkpoint's own section
        lines += ["#" + line if line.startswith("## ") else line for line in (measurements or {}).get(n, [])]
        if prefix + "bland_altman.png" in figures:
            lines += [f"![Bland–Altman, synthetic vs real]({prefix}bland_altman.png)", ""]
        noted = [r for r in rows[n] if r["note"]]
        if noted:
            lines += [f"Missing values in {len(noted)} case(s) (see `{prefix}per_case.csv`, column note):", ""]
            lines += [f"- {r['case']}: {r['note']}" for r in noted[:10]]
            if len(noted) > 10:
                lines.append(f"- … and {len(noted) - 10} more")
            lines.append("")
        lines += [f"Per case: `{prefix}per_case.csv`.", ""]
    return "\n".join(lines)
