"""``elastogan evaluate``: synthetic elastograms of a split against the real ones, written up.

For each case of the split every model predicts from the B-mode (inside the case's ROI), and
:func:`elastogan.eval.evaluate.compare_case` compares. Output folder::

    metrics.json      one checkpoint: the flat summary (ncc_mean, ncc_sd, …, n_cases);
                      several: {checkpoint name: that summary}, where each checkpoint after
                      the first also has ``paired``: its case-by-case comparison with the
                      first (``elastogan.eval.paired``) on NCC, E-mode NCC, SSIM, MAE and lesion NCC
    report.md         the summaries side by side, with the reference paper's NCC
    per_case.csv      one row per case (columns of elastogan.eval.evaluate.COLUMNS;
                      `elastogan stats report` reads its ncc, ssim, psnr, mae)
    ncc_histogram.png, gallery.png (real | synthetic | difference), strain_ratio.png

With several checkpoints the per-checkpoint files go into one sub-folder each (named after
the checkpoint), and ``metrics.json`` and ``report.md`` stay at the top. Every file is
written atomically.

A model is anything that maps a :class:`~elastogan.eval.evaluate.RealCase` to a synthetic
``(emode, strain)`` pair: a trained checkpoint's ``Predictor``, or (in tests) the real images
of another manifest.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from elastogan.atomic import atomic_write_bytes, atomic_write_text
from elastogan.data.images import read_gray, read_mask, read_rgb, read_strain
from elastogan.data.manifest import SPLITS, Case, read_manifest
from elastogan.errors import UserError
from elastogan.eval.evaluate import COLUMNS, RealCase, compare_case, gallery_picks, summarise
from elastogan.eval.gallery_figure import GalleryRow, gallery_png
from elastogan.eval.histogram_figure import histogram_png
from elastogan.eval.paired import paired_comparison
from elastogan.eval.paper_report import REFERENCE_PAPER
from elastogan.eval.scatter_figure import scatter_png
from elastogan.eval.stats_format import num, pval, to_json
from elastogan.eval.tsukuba_report import confusion_markdown

PredictFn = Callable[[RealCase], tuple[np.ndarray, np.ndarray]]
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
)
# compared case by case between checkpoints: (label, per-case column, higher is better)
PAIRED_METRICS = (
    ("NCC, mapped strain in the ROI", "ncc", True),
    ("NCC, E-mode luminance in the ROI", "ncc_emode", True),
    ("SSIM, strain in the ROI", "ssim", True),
    ("MAE, strain in the ROI", "mae", False),
    ("NCC, strain in the lesion", "ncc_lesion", True),
)


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
        listed = ", ".join(bare[:5]) + (f" and {len(bare) - 5} more" if len(bare) > 5 else "")
        raise UserError(f"{m.path}: {len(bare)} case(s) of split {split!r} have no real strain map (and ROI) to "
                        f"compare with: {listed}")
    return cases


def load_real_case(case: Case) -> RealCase:
    """The real images of a manifest case."""
    return RealCase(
        id=case.id,
        bmode=read_gray(case.bmode),
        strain=read_strain(case.strain),
        roi=case.roi,
        emode=read_rgb(case.emode) if case.emode is not None else None,
        lesion=read_mask(case.lesion) if case.lesion is not None else None,
        tsukuba=case.tsukuba,
        alpha=float(case.source.get("display_alpha", 0.5)),
    )


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
    models: Mapping[str, PredictFn],
    cases: Sequence[Case],
    out: str | Path,
    *,
    info: Mapping[str, Mapping[str, Any]] | None = None,
    source: Mapping[str, Any] | None = None,
    gallery: int = 4,
    progress: bool = False,
) -> list[Path]:
    """Compare every model with the real cases; write metrics.json, report.md, CSV and figures.

    Args:
        models: name → predict function (ordered; the report's columns follow it).
        cases: the manifest cases (with strain and ROI, see :func:`split_cases`).
        out: output folder.
        info: name → provenance shown in metrics.json and report.md (checkpoint path, step, …).
        source: what was evaluated (manifest, split), for metrics.json and report.md.
        gallery: cases in the gallery figure.
        progress: a progress bar over the cases.

    Returns:
        The files written.
    """
    if not models:
        raise ValueError("no model to evaluate")
    if not cases:
        raise ValueError("no case to evaluate")
    info = info or {}
    source = dict(source or {})
    out = Path(out)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    iterator: Iterable[Case] = cases
    if progress:
        from tqdm import tqdm

        iterator = tqdm(cases, desc="evaluate", unit="case")
    for case in iterator:  # cases outside, models inside: each real case is read once
        real = load_real_case(case)
        for name, predict in models.items():
            rows[name].append(compare_case(real, *predict(real)))

    single = len(models) == 1
    written: list[Path] = []
    summaries: dict[str, dict[str, Any]] = {}
    folders: dict[str, str] = {}
    for name, predict in models.items():
        folder = "" if single else _slug(name)
        folders[name] = folder
        d = out / folder if folder else out
        summaries[name] = {**source, **info.get(name, {}), **summarise(rows[name])}
        written += _write_checkpoint_files(d, rows[name], predict, cases, gallery)
    names = list(models)
    for name in names[1:]:  # each later checkpoint against the first, on the same cases
        summaries[name]["paired"] = paired_against(rows[name], rows[names[0]], names[0])
    metrics = next(iter(summaries.values())) if single else summaries
    js, md = out / "metrics.json", out / "report.md"
    atomic_write_text(js, to_json(metrics))
    atomic_write_text(md, markdown(summaries, rows, folders, {p.relative_to(out).as_posix() for p in written}, source))
    return [js, md, *written]


def paired_against(rows: Sequence[dict[str, Any]], reference_rows: Sequence[dict[str, Any]],
                   reference: str) -> dict[str, Any]:
    """One checkpoint's per-case metrics against the reference checkpoint's (same cases, same order):
    ``{"reference": name, metric: paired_comparison(this, reference)}``; differences are this − reference."""
    out: dict[str, Any] = {"reference": reference}
    for _, col, _ in PAIRED_METRICS:
        out[col] = paired_comparison([r[col] for r in rows], [r[col] for r in reference_rows])
    return out


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
                            gallery: int) -> list[Path]:
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
            grows.append(GalleryRow(
                label=f"{real.id}  NCC {ncc_text}",
                real_emode=real.emode if real.emode is not None else _grey(real.bmode),
                synthetic_emode=emode, bmode=real.bmode, real_strain=real.strain, synthetic_strain=strain,
                roi=real.roi))
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
    return written


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
             folders: Mapping[str, str], figures: set[str], source: Mapping[str, Any]) -> str:
    """report.md: one column per checkpoint, the reference paper's NCC beside them."""
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
    info_keys = [k for k in ("checkpoint", "model", "step") if any(k in s for s in summaries.values())]
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
    lines += _paired_markdown(summaries)
    for n in names:
        folder = folders[n]
        prefix = f"{folder}/" if folder else ""
        lines += [f"## {n}", ""]
        t = summaries[n]["tsukuba"]
        if t is not None:
            lines += ["Tsukuba rule scores, real (rows) vs synthetic (columns):", ""]
            lines += confusion_markdown(t["confusion"], "real", "synthetic")
            lines.append("")
        for fig, alt in (("ncc_histogram.png", "NCC per case"), ("gallery.png", "real | synthetic | difference"),
                         ("strain_ratio.png", "strain ratio, real vs synthetic")):
            if prefix + fig in figures:
                lines += [f"![{alt}]({prefix}{fig})", ""]
        noted = [r for r in rows[n] if r["note"]]
        if noted:
            lines += [f"Missing values in {len(noted)} case(s) (see `{prefix}per_case.csv`, column note):", ""]
            lines += [f"- {r['case']}: {r['note']}" for r in noted[:10]]
            if len(noted) > 10:
                lines.append(f"- … and {len(noted) - 10} more")
            lines.append("")
        lines += [f"Per case: `{prefix}per_case.csv`.", ""]
    return "\n".join(lines)
