"""The measurements a radiologist reads, real against synthetic, over a split (issue 14 §3).

Per case, beside ``elastogan.eval.evaluate.compare_case``'s row (which has the strain ratios and
the automatic Tsukuba scores), :func:`measure_case` adds the EI/B ratio of the real and of the
synthetic elastogram (``elastogan.measurements``). Over the split, :func:`measurement_report`
gives:

* **Bland–Altman** (bias, 95 % limits of agreement) of the strain ratio and of EI/B, synthetic
  against real, and of each strain ratio against the phantoms' true (FEM) strain ratio;
* **weighted κ** (linear, scores 1–5; ``elastogan.eval.tsukuba_report``) of the automatic Tsukuba
  scores, synthetic against real, and each against the design labels;
* **equal diagnostic value, automated**: the AUC for malignancy of the strain ratio, of EI/B and
  of the automatic Tsukuba score (cyst below 1) from the real and from the synthetic
  elastogram, compared by the paired DeLong test (``elastogan.eval.reader_stats.roc``). The
  strain ratio is read twice on the synthetic side: on the one draw a reader is shown
  (``strain_ratio_synthetic``) and on the mean of the K draws (``strain_ratio_mean_of_samples``,
  what ``elastogan predict --samples K`` reports): a realistic draw carries texture inside the
  lesion that moves its ratio, the mean does not — the two AUCs separate "a realistic
  picture" from "a useful measurement". A model that draws one output has the same value in both.

Cases without a value on both sides are left out of that statistic and counted; a statistic
that cannot be computed (too few cases, one class only) is ``None`` with a note, never NaN.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from elastogan.errors import UserError
from elastogan.eval.measurements.bland_altman import bland_altman, bland_altman_png
from elastogan.eval.reader_stats.roc import delong, paired_test
from elastogan.eval.tsukuba_report import tsukuba_agreement
from elastogan.measurements import ei_b_ratio

COLUMNS = ("ei_b_real", "ei_b_synthetic")


def measure_case(real_strain: np.ndarray, synthetic_strain: np.ndarray, lesion: np.ndarray | None,
                 roi: tuple[int, int, int, int] | None) -> dict[str, float | None]:
    """The EI/B columns of one case (``None`` where the lesion cannot be measured)."""
    row: dict[str, float | None] = dict.fromkeys(COLUMNS)
    if lesion is None:
        return row
    for column, strain in (("ei_b_real", real_strain), ("ei_b_synthetic", synthetic_strain)):
        try:
            row[column] = ei_b_ratio(strain, lesion, roi)["ratio"]
        except ValueError:
            pass
    return row


def case_labels(cases: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Per manifest case id (``elastogan.data.manifest.Case``): ``malignant`` (1, 0 or ``None``
    from ``pathology``) and ``strain_ratio_true`` (the simulator's FEM strain ratio, phantoms only)."""
    out = {}
    for c in cases:
        pathology = c.pathology
        out[c.id] = {"malignant": None if pathology is None else int(pathology == "malignant"),
                     "strain_ratio_true": c.source.get("strain_ratio_true")}
    return out


def _pairs(rows: Sequence[dict], a: str, b: str) -> tuple[list[float], list[float]]:
    keep = [r for r in rows if r.get(a) is not None and r.get(b) is not None
            and np.isfinite(r[a]) and np.isfinite(r[b])]
    return [float(r[a]) for r in keep], [float(r[b]) for r in keep]


def _ba(rows: Sequence[dict], reference: str, compared: str) -> dict:
    ref, cmp = _pairs(rows, reference, compared)
    try:
        return bland_altman(ref, cmp)
    except ValueError as e:
        return {"n": len(ref), "bias": None, "note": str(e)}


def tsukuba_rank(score: Any) -> float:
    """The automatic Tsukuba score as a malignancy rating: the cyst pattern below 1."""
    return 0.0 if score == "cyst" else float(score)


def _auc_pair(rows: Sequence[dict], real: str, synthetic: str, rank=float) -> dict:
    keep = [r for r in rows if r.get("malignant") is not None and r.get(real) is not None and r.get(synthetic) is not None]
    truth = np.array([r["malignant"] for r in keep], dtype=int)
    out: dict[str, Any] = {"n": len(keep), "n_malignant": int(truth.sum())}
    if len(keep) < 2 or truth.min(initial=1) == truth.max(initial=0):
        return out | {"note": "needs benign and malignant cases with both values"}
    scores = np.array([[rank(r[real]) for r in keep], [rank(r[synthetic]) for r in keep]], dtype=np.float64)
    if not np.isfinite(scores).all():
        return out | {"note": "non-finite values"}
    d = delong(scores, truth)
    test = paired_test(d, 0, 1)  # a difference with no variance comes back with p None and a note
    return out | {"auc_real": float(d.auc[0]), "auc_synthetic": float(d.auc[1]),
                  "se_real": float(d.se[0]), "se_synthetic": float(d.se[1]), "delong": test}


def _tsukuba(rows: Sequence[dict], a: str, b: str) -> dict:
    keep = [r for r in rows if r.get(a) is not None and r.get(b) is not None]
    if not keep:
        return {"n": 0, "note": "no case scored on both sides"}
    try:
        res = tsukuba_agreement([r[a] for r in keep], [r[b] for r in keep])
    except (UserError, ValueError) as e:
        return {"n": len(keep), "note": str(e)}
    return {"n": res["n"], "agreement": res["agreement"], "kappa_linear": res["kappa_linear"],
            "n_with_cyst": res["n_with_cyst"]}


def measurement_report(rows: Sequence[dict], labels: dict[str, dict[str, Any]]) -> tuple[dict, list[str], bytes | None]:
    """Agreement of the radiologist's measurements between real and synthetic elastograms.

    Args:
        rows: per case, ``compare_case``'s row (``case``, ``strain_ratio_real``,
            ``strain_ratio_synthetic``, ``tsukuba_real``, ``tsukuba_synthetic``, ``tsukuba_label``)
            updated with :func:`measure_case`'s columns.
        labels: :func:`case_labels` of the manifest's cases (malignancy, true strain ratio).

    Returns:
        ``(results, markdown_lines, bland_altman_png_bytes)``; the figure is ``None`` when
        neither strain ratio nor EI/B has two pairs.
    """
    rows = [{**r, **labels.get(r["case"], {})} for r in rows]
    res = {
        "bland_altman": {
            "strain_ratio": _ba(rows, "strain_ratio_real", "strain_ratio_synthetic"),
            "strain_ratio_mean_of_samples": _ba(rows, "strain_ratio_real", "strain_ratio_mean_of_samples"),
            "ei_b": _ba(rows, "ei_b_real", "ei_b_synthetic"),
            "strain_ratio_real_vs_true": _ba(rows, "strain_ratio_true", "strain_ratio_real"),
            "strain_ratio_synthetic_vs_true": _ba(rows, "strain_ratio_true", "strain_ratio_synthetic"),
        },
        "tsukuba": {
            "synthetic_vs_real": _tsukuba(rows, "tsukuba_real", "tsukuba_synthetic"),
            "real_vs_label": _tsukuba(rows, "tsukuba_label", "tsukuba_real"),
            "synthetic_vs_label": _tsukuba(rows, "tsukuba_label", "tsukuba_synthetic"),
        },
        "auc_malignancy": {
            "strain_ratio": _auc_pair(rows, "strain_ratio_real", "strain_ratio_synthetic"),
            "strain_ratio_mean_of_samples": _auc_pair(rows, "strain_ratio_real", "strain_ratio_mean_of_samples"),
            "ei_b": _auc_pair(rows, "ei_b_real", "ei_b_synthetic"),
            "tsukuba": _auc_pair(rows, "tsukuba_real", "tsukuba_synthetic", rank=tsukuba_rank),
        },
    }
    panels = [(title, *_pairs(rows, a, b)) for title, a, b in (("strain ratio", "strain_ratio_real", "strain_ratio_synthetic"),
                                                                ("EI/B", "ei_b_real", "ei_b_synthetic"))]
    panels = [p for p in panels if len(p[1]) >= 2]
    return res, markdown(res), bland_altman_png(panels) if panels else None


def _f(v: Any, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def markdown(res: dict) -> list[str]:
    """The report's lines (a Markdown section) for :func:`measurement_report`'s results."""
    lines = ["## Measurements: real vs synthetic elastogram", "",
             "| Bland–Altman (compared − reference) | n | bias [95 % CI] | 95 % limits of agreement |", "|---|---|---|---|"]
    names = {"strain_ratio": "strain ratio, synthetic − real",
             "strain_ratio_mean_of_samples": "strain ratio of the mean of K draws, synthetic − real",
             "ei_b": "EI/B, synthetic − real",
             "strain_ratio_real_vs_true": "strain ratio, real − true (FEM)",
             "strain_ratio_synthetic_vs_true": "strain ratio, synthetic − true (FEM)"}
    for key, r in res["bland_altman"].items():
        if r.get("bias") is None:
            lines.append(f"| {names[key]} | {r['n']} | — | — |")
        else:
            lines.append(f"| {names[key]} | {r['n']} | {_f(r['bias'])} [{_f(r['bias_ci'][0])}, {_f(r['bias_ci'][1])}] | "
                         f"{_f(r['loa'][0])} to {_f(r['loa'][1])} |")
    lines += ["", "| automatic Tsukuba score | n | agreement | linear-weighted κ (1–5) |", "|---|---|---|---|"]
    names = {"synthetic_vs_real": "synthetic vs real", "real_vs_label": "real vs design label",
             "synthetic_vs_label": "synthetic vs design label"}
    for key, r in res["tsukuba"].items():
        k = r.get("kappa_linear") or {}
        lines.append(f"| {names[key]} | {r['n']} | {_f(r.get('agreement'))} | {_f(k.get('value'))} |")
    lines += ["", "| AUC for malignancy | n (malignant) | real | synthetic | paired DeLong: difference, p |",
              "|---|---|---|---|---|"]
    for key, name in (("strain_ratio", "strain ratio"),
                      ("strain_ratio_mean_of_samples", "strain ratio of the mean of K draws (predict's value)"),
                      ("ei_b", "EI/B"), ("tsukuba", "automatic Tsukuba score")):
        r = res["auc_malignancy"][key]
        test = r.get("delong") or {}
        diff = (f"{_f(test.get('diff'))}, p = {_f(test.get('p'))}" if test.get("p") is not None
                else test.get("note", r.get("note", "—")))
        lines.append(f"| {name} | {r['n']} ({r['n_malignant']}) | {_f(r.get('auc_real'))} | {_f(r.get('auc_synthetic'))} | {diff} |")
    return lines + [""]
