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
    for name, v in items:
        rows.append([name, str(v["n"]), num(v["accuracy"]), interval(v["ci"]), pval(v["p"]),
                     num(v["fraction_synthetic_judged_real"]), num(v["fraction_real_judged_real"]),
                     num(v["d_prime"], 2)])
    return table(["who", "n", "accuracy", "95% CI", "p (vs 0.5)", "synthetic→real", "real→real", "d'"], rows)


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
    return text


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
    if "mrmc" in res and "undefined" in res["mrmc"]:
        text += f"\n\nObuchowski–Rockette: undefined for these data: {res['mrmc']['undefined']}"
    elif "mrmc" in res:
        mr = res["mrmc"]
        text += f"\n\nObuchowski–Rockette ({mr['design']} design, {mr['covariance']} covariance, {mr['n_readers']} readers)"
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
    return text


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
