"""``elastogan stats report FOLDER``: the reference paper's tables from a study export.

The export folder holds (each optional, at least one needed):

| file | from | columns |
|---|---|---|
| ``answers.csv`` | app, authenticity reading | ``reader,case,is_synthetic,judged_synthetic[,group]`` |
| ``scores.csv`` | app, Tsukuba scores | ``case,reader,score,condition`` (condition real/synthetic) |
| ``ratings.csv`` | app, BI-RADS | ``case,truth,reader,modality,rating`` (modality real/synthetic) |
| ``per_case.csv`` | ``elastogan evaluate`` | ``ncc`` (and optionally ``ssim``, ``psnr``, ``mae``) |
| ``ratings_staged.csv``, ``ratings_confidence.csv`` | app, staged design; confidence given | as ``ratings.csv`` (read when present: their ROC sections) |
| ``readings.csv`` | app, every reading | ``reader,repeat,image`` and the answers, ``reading_s``, labels (read when present: intra-reader κ of the repeats, reading times) |
| ``metrics.json`` | ``elastogan evaluate`` | its summary: the observers without readers (``c2st_*``, ``fd_texture``, ``memorisation_ratio``), the ceilings (``ncc_oracle_mean``, ``ncc_retest_mean``) and the calibration (``coverage_90``…), one checkpoint or several |

It writes ``report.md``, ``report.json``, ``roc.png`` and ``ncc_histogram.png``, with the values of the reference paper
(Li et al. 2024, Chinese J Med Ultrasound 21(6):563; DESIGN §1) beside this study's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from elastogan.atomic import atomic_write_bytes, atomic_write_text
from elastogan.errors import InputFileError, UserError
from elastogan.eval import diagnostic, metrics
from elastogan.eval.reader_stats import mrmc, roc
from elastogan.eval.authenticity import readers
from elastogan.eval.reader_stats.reader_study import agreement_report, diagnostic_report, readings_report, roc_report
from elastogan.eval.histogram_figure import histogram_png
from elastogan.eval.reader_stats.roc_figure import roc_png
from elastogan.eval.stats_format import interval, num, pval, to_json
from elastogan.eval.reader_stats.stats_io import (first_readings, parse_order, read_authenticity, read_ratings,
                                                  read_readings, read_rows, read_scores)

FILES = {"answers": "answers.csv", "scores": "scores.csv", "ratings": "ratings.csv", "per_case": "per_case.csv"}
EVALUATE_FILE = "metrics.json"  # read when present, beside per_case.csv; never listed as missing
READINGS_FILE = "readings.csv"  # the app's per-reading export (repeats, times): read when present
# Further ROC exports of the app (issue 13), read when present, never listed as missing:
# file, the report key, its title and the line under it; staged ratings use the BI-RADS order,
# confidence ratings (0–100) are numbers.
EXTRA_ROC_FILES = {"roc_staged": "ratings_staged.csv", "roc_confidence": "ratings_confidence.csv"}
EXTRA_ROC = {
    "roc_staged": ("BI-RADS ROC, staged reading: B-mode alone, then with the elastogram",
                   "The difference is the elastogram's added value (same readers, same cases)."),
    "roc_confidence": ("Confidence ROC (ratings 0–100)",
                       "Continuous confidence ratings, where the readers gave one."),
}
# What the report takes from an evaluate run's metrics.json (issue 11): each NCC beside its
# ceiling, the observers that tell synthetic from real without readers, the calibration.
EVALUATE_KEYS = (
    "n_cases", "samples", "ncc_mean", "ncc_retest_mean", "ncc_over_retest", "ncc_mean_of_samples_mean",
    "ncc_oracle_mean", "ncc_mean_of_samples_over_oracle", "ncc_over_oracle",
    *(f"c2st_{o}{e}_{k}" for o in ("texture", "cnn") for e in ("", "_emode") for k in ("accuracy", "ci", "p", "auc")),
    "fd_texture", "memorisation_ratio", "coverage_90", "sd_error_spearman", "sd_ncc_spearman",
)

# Li et al. 2024 as summarised in DESIGN §1; "authenticity score" read as the fraction of
# synthetic images judged real.
REFERENCE_PAPER = {
    "source": "Li et al. 2024, Chinese J Med Ultrasound 21(6):563",
    "ncc": {"mean": 0.70, "sd": 0.08, "median": 0.70, "min": 0.50, "max": 0.86},
    "authenticity_score": {"overall": 0.49, "junior": 0.45, "senior": 0.53},
    "fleiss_kappa": {"synthetic": 0.61, "real": 0.57},
    "auc_real_vs_synthetic": "not different (P > 0.05, DeLong)",
}


def _has_data_rows(path: Path) -> bool:
    """Whether a CSV has a line after its header (an export made before any answer has none)."""
    with open(path, encoding="utf-8-sig") as f:
        f.readline()
        return any(line.strip() for line in f)


def _has_data_rows_if_file(path: Path) -> bool:
    return path.is_file() and _has_data_rows(path)


def _ncc_summary(path: Path) -> tuple[dict, list[float]]:
    """Summaries of the per-case metric columns, and the NCC values themselves."""
    header, rows = read_rows(path, ("ncc",))
    out: dict = {}
    ncc: list[float] = []
    for col in ("ncc", "ssim", "psnr", "mae"):
        if col not in header:
            continue
        try:
            values = [float(r.cells[col]) for r in rows]
        except ValueError as e:
            raise InputFileError(path, f"column {col}: {e}") from None
        finite = [v for v in values if np.isfinite(v)]
        if col == "ncc":
            # An undefined NCC (a constant synthetic map in the ROI) is written as nan by
            # `elastogan evaluate`: summarise the defined ones and count the others.
            if not finite:
                raise InputFileError(path, "column ncc: no case has a defined NCC")
            out[col] = metrics.summary(finite)
            if len(finite) < len(values):
                out[col]["n_undefined"] = len(values) - len(finite)
            ncc = finite
            continue
        # PSNR is +inf for a case whose maps are identical: summarise the finite ones, say so.
        out[col] = {**metrics.summary(finite), "n_not_finite": len(values) - len(finite)} if finite else {
            "note": "no finite value"}
    return out, ncc


def _evaluate_summary(path: Path) -> dict:
    """{checkpoint: {key of EVALUATE_KEYS: value}} from an evaluate run's metrics.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputFileError(path, f"not a readable metrics.json of elastogan evaluate ({e})") from None
    if isinstance(data, dict) and "n_cases" in data:  # one checkpoint: the flat summary
        data = {str(data.get("model") or Path(str(data.get("checkpoint", "model"))).stem): data}
    if not (isinstance(data, dict) and data and all(isinstance(v, dict) and "n_cases" in v for v in data.values())):
        raise InputFileError(path, "not a metrics.json of elastogan evaluate (expected its summary, with n_cases)")
    return {name: {k: v.get(k) for k in EVALUATE_KEYS} for name, v in data.items()}


def _section(analysis: Callable[[], dict]) -> dict:
    """The analysis' result, or ``{"undefined": why}`` when the data cannot support it."""
    try:
        return analysis()
    except UserError as e:
        return {"undefined": str(e)}


def write_report(
    folder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    order: str | None = "2,3,4a,4b,4c,5",
    positive_from: str = "4a",
    score_order: str | None = None,
    covariance: str = "jackknife",
    n_boot: int = 2000,
    seed: int = 0,
) -> list[Path]:
    """Run every analysis the export supports; write report.md, report.json (and the figures).

    A section whose analysis is undefined for the data (e.g. MRMC without reader-by-modality
    variation, too few positive cases, an incomplete reader) is ``{"undefined": why}`` in the
    JSON and a line in the Markdown; the other sections are still written.

    Raises:
        InputFileError: the folder holds no export, or a file in it cannot be read (a missing
            column, a rating outside ``order``…).
        UserError: a bad option (``positive_from`` outside ``order``, ``n_boot`` < 100…).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "not a folder")
    found = {k: folder / v for k, v in FILES.items() if (folder / v).is_file()}
    present = {k: p for k, p in found.items() if _has_data_rows(p)}
    evaluated = folder / EVALUATE_FILE
    if evaluated.is_file():
        present["evaluate"] = evaluated
    if not present:
        what = "only header lines in " + ", ".join(p.name for p in found.values()) if found else \
            f"no study export found: expected any of {', '.join([*FILES.values(), EVALUATE_FILE])}"
        raise InputFileError(folder, what)
    out_dir = Path(out) if out is not None else folder / "report"
    result: dict = {
        "reference_paper": REFERENCE_PAPER,
        "missing": [FILES[k] for k in FILES if k not in found],
        "empty": [FILES[k] for k in found if k not in present],
    }
    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    # The inputs are read (and the flags checked) before any analysis: a bad file or flag is
    # the user's to fix (exit 2). An analysis the valid data cannot support is recorded as
    # {"undefined": why} and the other sections still come out.
    scores = read_scores(present["scores"], parse_order(score_order)) if "scores" in present else None
    ratings = read_ratings(present["ratings"], parse_order(order)) if "ratings" in present else None
    answers = read_authenticity(present["answers"]) if "answers" in present else None
    readings = read_readings(folder / READINGS_FILE) if _has_data_rows_if_file(folder / READINGS_FILE) else None
    extra_roc = {key: read_ratings(folder / name, parse_order(order) if key == "roc_staged" else None)
                 for key, name in EXTRA_ROC_FILES.items() if _has_data_rows_if_file(folder / name)}
    if ratings is not None:
        diagnostic.threshold_index(positive_from, ratings.order)
    mrmc.check_covariance(covariance)
    if scores is not None and n_boot < 100:
        raise UserError(f"expected at least 100 bootstrap replicates, got {n_boot}")
    if "per_case" in present:
        result["image_metrics"], ncc = _ncc_summary(present["per_case"])
        hist = out_dir / "ncc_histogram.png"
        atomic_write_bytes(hist, histogram_png(ncc, bins=20, value_range=(-1.0, 1.0) if min(ncc) < 0 else (0.0, 1.0),
                                               title="NCC real vs synthetic, per case", xlabel="NCC",
                                               marker=REFERENCE_PAPER["ncc"]["mean"], marker_label="paper mean 0.70"))
        written.append(hist)
    if "evaluate" in present:
        result["observers"] = _evaluate_summary(present["evaluate"])
    if answers is not None:
        result["authenticity"] = _section(lambda: readers.analyse(answers))
    if scores is not None:
        result["agreement"] = _section(lambda: agreement_report(scores, n_boot=n_boot, seed=seed))
    if ratings is not None:
        result["roc"] = _section(lambda: roc_report(ratings, covariance=covariance))
        result["diagnostic"] = _section(lambda: diagnostic_report(ratings, positive_from))
        if "undefined" not in result["roc"]:
            curves: dict = {}
            first = first_readings(ratings)
            for m, v in result["roc"]["modalities"].items():
                curves[m] = []
                for rd, a in v["readers"].items():
                    sel = (first.modality == m) & (first.reader == rd)
                    fpr, tpr = roc.roc_curve(first.rating[sel], first.truth[sel])
                    curves[m].append((rd, fpr, tpr, a["auc"]))
            png = out_dir / "roc.png"
            atomic_write_bytes(png, roc_png(curves, "ROC per reader and elastogram type"))
            written.append(png)
    for key, extra in extra_roc.items():
        result[key] = _section(lambda extra=extra: roc_report(extra, covariance=covariance))
    if readings is not None:
        birads = parse_order(order)
        result["readings"] = _section(lambda: readings_report(
            readings, orders={"birads": birads, "birads_bmode": birads, "tsukuba": parse_order(score_order)}))
    js, md = out_dir / "report.json", out_dir / "report.md"
    atomic_write_text(js, to_json(result))
    atomic_write_text(md, markdown(result, figures={p.name for p in written}))
    return [md, js, *written]


SECTION_TITLES = {"authenticity": "Authenticity", "agreement": "Agreement of Tsukuba scores",
                  "roc": "BI-RADS ROC", "diagnostic": "Diagnostic accuracy"}


def _defined(res: dict, key: str) -> bool:
    return key in res and "undefined" not in res[key]


def _observers_markdown(observers: dict, readers_overall: dict | None) -> list[str]:
    """Readers and observers side by side: each one's accuracy telling synthetic from real."""
    lines = ["## Authenticity without readers (elastogan evaluate)", "",
             "Classifier two-sample tests: an observer learns to tell the synthetic mapped strain (or E-mode) "
             "from the real one and labels held-out patients; accuracy 0.5 means it cannot tell them apart, as "
             "for a reader. Fréchet distance on texture features (0: the same distribution); memorisation ratio: "
             "distance of a synthetic map to its nearest training map over the same for the real map (≪ 1: "
             "copies).", "",
             "| who | accuracy (95% CI) | p vs 0.5 | AUC |", "|---|---|---|---|"]
    if readers_overall is not None:
        v = readers_overall
        lines.append(f"| readers (app), overall | {num(v['accuracy'])} {interval(v['ci'])} | {pval(v['p'])} | |")
    for name, m in observers.items():
        for o, label in (("texture", "texture observer"), ("cnn", "CNN observer")):
            for e, what in (("", "mapped strain"), ("_emode", "E-mode")):
                k = f"c2st_{o}{e}"
                if m.get(f"{k}_accuracy") is None:
                    continue
                lines.append(f"| {name}: {label}, {what} | {num(m[f'{k}_accuracy'])} {interval(m[f'{k}_ci'])} | "
                             f"{pval(m[f'{k}_p'])} | {num(m[f'{k}_auc'])} |")
    lines += ["", "| checkpoint | Fréchet distance (texture) | memorisation ratio |", "|---|---|---|"]
    lines += [f"| {name} | {num(m['fd_texture'])} | {num(m['memorisation_ratio'])} |" for name, m in observers.items()]
    return [*lines, ""]


def _ceilings_markdown(observers: dict) -> list[str]:
    """Each NCC beside its ceiling (phantoms), and the calibration of the draws' spread."""
    lines = ["## NCC against its ceiling, and uncertainty (elastogan evaluate)", "",
             "One draw (what a reader is shown) against the scanner's own test–retest NCC; the mean of K draws "
             "(the best estimate) against the oracle, the true FEM strain vs the scanner's elastogram.", "",
             "| checkpoint | cases | NCC one draw | test–retest | ratio | NCC mean of K draws | oracle | ratio | "
             "90% interval coverage | sd–error Spearman |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in observers.items():
        lines.append(f"| {name} | {m['n_cases']} | {num(m['ncc_mean'])} | {num(m['ncc_retest_mean'])} | "
                     f"{num(m['ncc_over_retest'])} | {num(m['ncc_mean_of_samples_mean'])} | {num(m['ncc_oracle_mean'])} | "
                     f"{num(m['ncc_mean_of_samples_over_oracle'])} | {num(m['coverage_90'])} | "
                     f"{num(m['sd_error_spearman'])} |")
    return [*lines, ""]


def markdown(res: dict, figures: set[str] = frozenset()) -> str:
    """The report as Markdown: one section per analysis, the paper's values beside ours."""
    ref = res["reference_paper"]
    lines = ["# Reader study report", "", f"Reference paper: {ref['source']}.", ""]
    if res["missing"]:
        lines += [f"Not in the export (sections skipped): {', '.join(res['missing'])}.", ""]
    if res["empty"]:
        lines += [f"No rows yet (sections skipped): {', '.join(res['empty'])}.", ""]
    for key, title in SECTION_TITLES.items():
        if "undefined" in res.get(key, {}):
            lines += [f"{title}: undefined for these data (section skipped): {res[key]['undefined'].rstrip('.')}.", ""]
    if "image_metrics" in res:
        lines += ["## Image similarity (real vs synthetic)", "", "| metric | mean ± sd | median | range | n | paper |",
                  "|---|---|---|---|---|---|"]
        for k, s in res["image_metrics"].items():
            if "mean" not in s:
                lines.append(f"| {k.upper()} | {s['note']} | | | | |")
                continue
            paper = ""
            if k == "ncc":
                p = ref["ncc"]
                paper = f"{p['mean']:.2f} ± {p['sd']:.2f}, median {p['median']:.2f}, {p['min']:.2f}–{p['max']:.2f}"
            lines.append(f"| {k.upper()} | {num(s['mean'])} ± {num(s['sd'])} | {num(s['median'])} | "
                         f"{num(s['min'])}–{num(s['max'])} | {s['n']} | {paper} |")
        lines.append("")
        if "ncc_histogram.png" in figures:
            lines += ["![NCC per case](ncc_histogram.png)", ""]
    if "observers" in res:
        lines += _ceilings_markdown(res["observers"])
    if _defined(res, "authenticity"):
        a = res["authenticity"]
        lines += ["## Authenticity", "",
                  "| who | n | synthetic judged real | real judged real | accuracy (95% CI) | p vs 0.5 | d′ | paper |",
                  "|---|---|---|---|---|---|---|---|"]
        paper = ref["authenticity_score"]

        def dagger(v: dict) -> str:
            return "†" if v.get("d_prime_method", "").startswith("log-linear") else ""

        items = [("overall", a["overall"], paper["overall"])]
        items += [(f"group {g}", v, paper.get(g)) for g, v in a.get("groups", {}).items()]
        items += [(f"reader {r}", v, None) for r, v in a["readers"].items()]
        for name, v, pp in items:
            lines.append(f"| {name} | {v['n']} | {num(v['fraction_synthetic_judged_real'])} | "
                         f"{num(v['fraction_real_judged_real'])} | {num(v['accuracy'])} {interval(v['ci'])} | "
                         f"{pval(v['p'])} | {num(v['d_prime'], 2)}{dagger(v)} | {'' if pp is None else f'{pp:.2f}'} |")
        lines.append("")
        if any(dagger(v) for _, v, _ in items):
            lines += ["† d′ with the log-linear correction (k + 0.5)/(n + 1) (Hautus 1995), as a hit or false-alarm "
                      "rate was 0 or 1; elsewhere d′ = z(H) − z(F).", ""]
    if "observers" in res:
        readers_overall = res["authenticity"]["overall"] if _defined(res, "authenticity") else None
        lines += _observers_markdown(res["observers"], readers_overall)
    if _defined(res, "agreement"):
        g = res["agreement"]
        lines += ["## Agreement of Tsukuba scores", "",
                  "| condition | cases | readers | Fleiss κ (95% CI) | Cohen κ unweighted / linear / quadratic | Krippendorff α | paper Fleiss κ |",
                  "|---|---|---|---|---|---|---|"]
        for cond, v in g["conditions"].items():
            f, c = v["fleiss_kappa"], v["cohen_kappa"]
            pp = ref["fleiss_kappa"].get(cond)
            lines.append(f"| {cond} | {v['n_cases']} | {v['n_readers']} | {num(f['value'])} {interval(f['ci'])} | "
                         f"{num(c['unweighted'])} / {num(c['linear'])} / {num(c['quadratic'])} | "
                         f"{num(v['krippendorff_alpha'])} | {'' if pp is None else f'{pp:.2f}'} |")
        for comp in [g["comparison"]] if "comparison" in g else g.get("comparisons", []):
            a_, b_ = comp["conditions"]
            lines.append("")
            lines.append(f"Fleiss κ {a_} − {b_}: {num(comp['diff'])}, 95% CI {interval(comp['ci'])}, "
                         f"p {pval(comp['p'])} (bootstrap over cases, {comp['n_boot']} replicates).")
        lines.append("")
    if _defined(res, "roc"):
        lines += _roc_markdown(res["roc"], "## BI-RADS ROC", f"Paper: {ref['auc_real_vs_synthetic']}.")
        if "roc.png" in figures:
            lines += ["![ROC curves](roc.png)", ""]
    for key, (title, note) in EXTRA_ROC.items():
        if _defined(res, key):
            lines += _roc_markdown(res[key], f"## {title}", note)
        elif key in res:
            lines += [f"{title}: undefined for these data (section skipped): {res[key]['undefined'].rstrip('.')}.", ""]
    if _defined(res, "diagnostic"):
        d = res["diagnostic"]
        lines += [f"## Diagnostic accuracy (positive from BI-RADS {d['positive_from']})", "",
                  "| modality | reader | sensitivity | specificity | PPV | NPV |", "|---|---|---|---|---|---|"]
        for m, readers in d["per_modality"].items():
            for rd, v in readers.items():
                cells = [f"{num(v[k]['value'])} {interval(v[k]['ci'], 2)}" for k in ("sensitivity", "specificity", "ppv", "npv")]
                lines.append(f"| {m} | {rd} | " + " | ".join(cells) + " |")
        if d["comparisons"]:
            lines += ["", "| reader | comparison | design | p sensitivity | p specificity | p PPV | p NPV |",
                      "|---|---|---|---|---|---|---|"]
            for c in d["comparisons"]:
                ps = [pval(c[k].get("p")) for k in ("sensitivity", "specificity", "ppv", "npv")]
                lines.append(f"| {c['reader']} | {c['modalities'][0]} vs {c['modalities'][1]} | {c['design']} | "
                             + " | ".join(ps) + " |")
            lines += ["", "Paired: McNemar (sensitivity, specificity), Kosinski 2013 weighted generalised score "
                      "(PPV, NPV); unpaired: Fisher's exact test."]
        lines.append("")
    lines += _repeats_markdown(res)
    return "\n".join(lines)


def _roc_markdown(r: dict, heading: str, note: str) -> list[str]:
    """A ROC section: reader AUCs per modality, the per-reader tests, the OR analysis."""
    lines = [heading, "", "| reader | " + " | ".join(f"AUC {m} (95% CI)" for m in r["modalities"]) + " |",
             "|---|" + "---|" * len(r["modalities"])]
    readers = list(dict.fromkeys(rd for v in r["modalities"].values() for rd in v["readers"]))
    for rd in readers:
        cells = [f"{num(v['readers'][rd]['auc'])} {interval(v['readers'][rd]['ci'])}" if rd in v["readers"] else ""
                 for v in r["modalities"].values()]
        lines.append(f"| {rd} | " + " | ".join(cells) + " |")
    if r["comparisons"]:
        lines += ["", "| reader | comparison | test | diff (95% CI) | p |", "|---|---|---|---|---|"]
        for c in r["comparisons"]:
            lines.append(f"| {c['reader']} | {c['modalities'][0]} − {c['modalities'][1]} | {c['test']} | "
                         f"{num(c['diff'])} {interval(c['ci'])} | {pval(c['p']) if c['p'] is not None else c['note']} |")
    if "mrmc" in r and "undefined" in r["mrmc"]:
        lines += ["", f"Obuchowski–Rockette: undefined — {r['mrmc']['undefined'].rstrip('.')}."]
    elif "mrmc" in r:
        mr = r["mrmc"]
        rr = mr["random_readers_random_cases"]
        lines += ["", f"Obuchowski–Rockette, random readers and cases ({mr['design']} design, "
                  f"{mr['covariance']} covariance):"]
        if "blocks" in mr:
            lines.append("Reader blocks: " + "; ".join(
                f"reader{'s' * (len(b['readers']) > 1)} {', '.join(b['readers'])} on {b['n_cases']} cases"
                for b in mr["blocks"]) + ".")
        for c in rr.get("comparisons", []):
            lines.append(f"{c['modalities'][0]} − {c['modalities'][1]}: {num(c['diff'])}, "
                         f"95% CI {interval(c['ci'])}, F = {rr['F']:.3f} on {rr['df1']} and "
                         f"{num(rr['df2'], 2)} df, p {pval(rr['p'])}.")
    return lines + ["", note, ""]


def _repeats_markdown(res: dict) -> list[str]:
    """Intra-reader κ and reading times (issue 13): of each section that has them, and of the
    per-reading export (``readings.csv``)."""
    lines: list[str] = []
    for key, title in SECTION_TITLES.items():
        if _defined(res, key) and {"intra_reader", "reading_time"} & set(res[key]):
            lines += [f"## Repeated readings and reading times: {title.lower()}", ""]
            lines += _intra_markdown(res[key].get("intra_reader"), "")
            lines += _times_markdown(res[key].get("reading_time"), "image shown to answer stored")
    if _defined(res, "readings"):
        r = res["readings"]
        lines += ["## Repeated readings and reading times", "",
                  f"{r['n_readings']} readings, {r['n_repeats']} of them repeats (readings.csv).", ""]
        for block in r["intra_reader"].values():
            lines += _intra_markdown(block, f" — {block['title']}")
        for column, block in r["reading_time"].items():
            what = "B-mode alone, shown to answer" if column == "reading_bmode_s" else "image shown to answer stored"
            lines += _times_markdown(block, what)
    elif "undefined" in res.get("readings", {}):
        lines += [f"Repeated readings and reading times: undefined — {res['readings']['undefined'].rstrip('.')}.", ""]
    return lines


def _intra_markdown(intra: dict | None, suffix: str) -> list[str]:
    if not intra:
        return []
    if "undefined" in intra:
        return [f"Intra-reader agreement{suffix}: undefined — {intra['undefined'].rstrip('.')}.", ""]
    ws = intra["weights"]
    lines = [f"Intra-reader agreement, first against repeated reading (Cohen's κ, 95% CI){suffix}:", "",
             "| who | pairs | same answer | " + " | ".join(f"κ {w}" for w in ws) + " |",
             "|---|---|---|" + "---|" * len(ws)]
    for who, b in [("all readers", intra["pooled"]), *((f"reader {k}", v) for k, v in intra["readers"].items())]:
        cells = [f"{num(b[w]['value'])} {interval(b[w]['ci'])}" if w in b else b.get("undefined", "—") for w in ws]
        lines.append(f"| {who} | {b['n_pairs']} | {num(b['agreement'])} | " + " | ".join(cells) + " |")
    return lines + [""]


def _times_markdown(times: dict | None, what: str) -> list[str]:
    if not times:
        return []
    lines = [f"Reading time, {what} (seconds):", "",
             "| by | value | n | median [q1, q3] | mean | total |", "|---|---|---|---|---|---|"]
    for col, value, b in [("all", "", times["overall"]),
                          *((c, v, b) for c, blocks in times["by"].items() for v, b in blocks.items())]:
        if b["n"]:
            lines.append(f"| {col} | {value} | {b['n']} | {b['median']:.1f} [{b['q1']:.1f}, {b['q3']:.1f}] | "
                         f"{b['mean']:.1f} | {b['total']:.0f} |")
    if times["n_missing"]:
        lines.append(f"\n{times['n_missing']} reading(s) without a recorded time left out.")
    return lines + [""]
