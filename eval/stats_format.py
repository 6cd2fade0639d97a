"""Plain-text tables and JSON for the reader-study results (stdout of ``elastogan stats``)."""

from __future__ import annotations

import json
import math
from typing import Any, Sequence


def _clean(x: Any) -> Any:
    """Make numpy scalars plain Python; a non-finite float would be invalid JSON: refuse it."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"non-finite number {x} in a statistics result")
    return x


def to_json(result: dict) -> str:
    """Results as indented JSON (strict: no NaN or Infinity)."""
    return json.dumps(_clean(result), indent=1, allow_nan=False) + "\n"


def num(x: float | None, digits: int = 3) -> str:
    """A number for a table; ``—`` for an undefined value."""
    return "—" if x is None else f"{x:.{digits}f}"


def pval(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def interval(ci: Sequence[float] | None, digits: int = 3) -> str:
    return "—" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def authenticity_table(res: dict) -> str:
    rows = []
    items = [("overall", res["overall"])]
    items += [(f"group {g}", v) for g, v in res.get("groups", {}).items()]
    items += [(f"reader {r}", v) for r, v in res["readers"].items()]
    corrected = False
    for name, v in items:
        mark = "†" if v.get("d_prime_method", "").startswith("log-linear") else ""
        corrected = corrected or bool(mark)
        rows.append([name, str(v["n"]), num(v["accuracy"]), interval(v["ci"]), pval(v["p"]),
                     num(v["fraction_synthetic_judged_real"]), num(v["fraction_real_judged_real"]),
                     num(v["d_prime"], 2) + mark])
    text = table(["who", "n", "accuracy", "95% CI", "p (vs 0.5)", "synthetic→real", "real→real", "d'"], rows)
    if corrected:
        text += ("\n† d' with the log-linear correction (k + 0.5)/(n + 1) (Hautus 1995): a hit or false-alarm "
                 "rate was 0 or 1; elsewhere d' = z(H) − z(F)")
    text += _repeats_text(res)
    return text


def readings_table(res: dict) -> str:
    """``stats readings``: κ of each repeated answer, then the reading times."""
    text = f"{res['n_readings']} readings, {res['n_repeats']} of them repeats"
    if not res["intra_reader"]:
        text += " (no repeated categorical answer: no intra-reader κ)"
    for block in res["intra_reader"].values():
        if "undefined" in block:
            text += f"\n\nIntra-reader agreement — {block['title']}: undefined: {block['undefined']}"
        else:
            text += _repeats_text({"intra_reader": block}, f" — {block['title']}")
    for column, block in res["reading_time"].items():
        text += _repeats_text({"reading_time": block}, f" — {column}")
    return text


def _repeats_text(res: dict, suffix: str = "") -> str:
    """Intra-reader κ and reading-time lines, when the result has them (else "")."""
    text = ""
    intra = res.get("intra_reader")
    if intra:
        rows = []
        blocks = [("all readers", intra["pooled"]), *((f"reader {k}", v) for k, v in intra["readers"].items())]
        notes = any("undefined" in b for _, b in blocks)
        for who, b in blocks:
            kap = [f"{num(b[w]['value'])} {interval(b[w]['ci'])}" if w in b else "—" for w in intra["weights"]]
            rows.append([who, str(b["n_pairs"]), num(b["agreement"]), *kap, *([b.get("undefined", "")] if notes else [])])
        text += f"\n\nIntra-reader agreement (first vs repeated reading, Cohen's κ){suffix}\n" + table(
            ["who", "pairs", "same answer", *(f"κ {w}" for w in intra["weights"]), *(["note"] if notes else [])], rows)
    times = res.get("reading_time")
    if times:
        rows = [["all", "", *_time_cells(times["overall"])]]
        for col, blocks in times["by"].items():
            rows += [[col, v, *_time_cells(b)] for v, b in blocks.items()]
        text += f"\n\nReading time (s; median [quartiles], mean, total){suffix}\n" + table(
            ["by", "value", "n", "median [q1, q3]", "mean", "total"], rows)
        if times["n_missing"]:
            text += f"\n{times['n_missing']} reading(s) without a recorded time left out"
    return text


def _time_cells(b: dict) -> list[str]:
    if not b["n"]:
        return ["0", "—", "—", "—"]
    return [str(b["n"]), f"{b['median']:.1f} [{b['q1']:.1f}, {b['q3']:.1f}]", f"{b['mean']:.1f}", f"{b['total']:.0f}"]


def agreement_table(res: dict) -> str:
    rows = []
    for cond, v in res["conditions"].items():
        f = v["fleiss_kappa"]
        c = v["cohen_kappa"]
        rows.append([cond, str(v["n_cases"]), str(v["n_readers"]), num(f["value"]), num(f["se"]), interval(f["ci"]),
                     num(c["unweighted"]), num(c["linear"]), num(c["quadratic"]), num(v["krippendorff_alpha"])])
    text = table(["condition", "cases", "readers", "Fleiss κ", "se", "95% CI", "Cohen κ", "linear", "quadratic",
                  "Kripp. α (ord)"], rows)
    comps = [res["comparison"]] if "comparison" in res else res.get("comparisons", [])
    for comp in comps:
        a, b = comp["conditions"]
        text += (f"\nFleiss κ {a} − {b}: {num(comp['diff'])} (95% CI {interval(comp['ci'])}, p {pval(comp['p'])}; "
                 f"{'paired' if comp['paired'] else 'unpaired'} bootstrap over cases, {comp['n_boot']} replicates)")
    return text + _repeats_text(res)


def roc_table(res: dict) -> str:
    rows = []
    for m, v in res["modalities"].items():
        for rd, a in v["readers"].items():
            rows.append([m, rd, str(a["n_cases"]), num(a["auc"]), num(a["se"]), interval(a["ci"])])
    text = table(["modality", "reader", "cases", "AUC", "se (DeLong)", "95% CI"], rows)
    if res["comparisons"]:
        crow = [[c["reader"], f"{c['modalities'][0]} − {c['modalities'][1]}", c["test"], num(c["diff"]),
                 num(c["z"], 2), pval(c["p"]), interval(c["ci"])] for c in res["comparisons"]]
        text += "\n\n" + table(["reader", "comparison", "test", "diff", "z", "p", "95% CI"], crow)
        text += "".join(f"\n{c['reader']}: {c['note']}" for c in res["comparisons"] if "note" in c)
    if "mrmc" in res and "undefined" in res["mrmc"]:
        text += f"\n\nObuchowski–Rockette: undefined for these data: {res['mrmc']['undefined']}"
    elif "mrmc" in res:
        mr = res["mrmc"]
        text += f"\n\nObuchowski–Rockette ({mr['design']} design, {mr['covariance']} covariance, {mr['n_readers']} readers)"
        if "blocks" in mr:
            text += "\nblocks: " + "; ".join(f"reader{'s' * (len(b['readers']) > 1)} {', '.join(b['readers'])} on {b['n_cases']} cases"
                                            for b in mr["blocks"])
        mrow = []
        for key, label in (("random_readers_random_cases", "random readers, random cases"),
                           ("fixed_readers_random_cases", "fixed readers, random cases"),
                           ("random_readers_fixed_cases", "random readers, fixed cases")):
            b = mr[key]
            for c in b.get("comparisons", []):
                stat = f"F={b['F']:.3f} df=({b['df1']}, {num(b['df2'], 2)})" if "F" in b else f"χ²={b['chi2']:.3f} df={b['df']}"
                mrow.append([label, f"{c['modalities'][0]} − {c['modalities'][1]}", num(c["diff"]), interval(c["ci"]),
                             stat, pval(b["p"])])
        if mrow:
            text += "\n" + table(["analysis", "comparison", "diff", "95% CI", "test", "p"], mrow)
        srow = [[m, num(v["auc"]), num(v["se"]), num(v["df"], 2), interval(v["ci"])]
                for m, v in mr["random_readers_random_cases"]["single_modality"].items()]
        text += "\n\n" + table(["modality", "mean AUC", "se (random readers and cases)", "df", "95% CI"], srow)
    return text + _repeats_text(res)


def diagnostic_table(res: dict) -> str:
    rows = []
    for m, readers in res["per_modality"].items():
        for rd, v in readers.items():
            rows.append([m, rd] + [f"{num(v[k]['value'])} ({interval(v[k]['ci'], 2)})"
                                   for k in ("sensitivity", "specificity", "ppv", "npv")])
    text = table(["modality", "reader", "sensitivity", "specificity", "PPV", "NPV"], rows)
    crow = []
    for c in res["comparisons"]:
        crow.append([c["reader"], f"{c['modalities'][0]} vs {c['modalities'][1]}", c["design"]]
                    + [pval(c[k].get("p")) for k in ("sensitivity", "specificity", "ppv", "npv")])
    if crow:
        text += "\n\n" + table(["reader", "comparison", "design", "p sens", "p spec", "p PPV", "p NPV"], crow)
    return text


def power_table(res: dict) -> str:
    """``stats power``: the parameters, then cases needed per reader count (or the power grid)."""
    par = res["parameters"]
    head = (f"Obuchowski–Rockette power (Hillis, Obuchowski & Berbaum 2011), {res['design']}: effect "
            f"{res['effect']:g}, alpha {res['alpha']:g}, {res['n_modalities']} modalities\n"
            f"σ²_TR {par['var_tr']:.3g}, Var {par['var']:.3g}, Cov1 {par['cov1']:.3g}, Cov2 {par['cov2']:.3g}, "
            f"Cov3 {par['cov3']:.3g} at {par['n_cases']:g} cases")
    note = res.get("pilot", {}).get("var_tr_note")
    if note:
        head += f"\n{note}"
    if "grid" in res:
        rows = [[str(g["readers"]), f"{g['cases']:g}", num(g["power"]), num(g["lambda"], 2), num(g["ddf"], 1)]
                for g in res["grid"]]
        return head + "\n\n" + table(["readers", "cases", "power", "λ", "ddf"], rows)
    notes = any("note" in r for r in res["sample_sizes"])
    rows = [[str(r["readers"]), "—" if r["cases"] is None else str(r["cases"]), num(r.get("power")),
             *([r.get("note", "")] if notes else [])] for r in res["sample_sizes"]]
    return head + "\n\n" + table(["readers", f"cases for power {res['target_power']:g}", "power",
                                    *(["note"] if notes else [])], rows)
