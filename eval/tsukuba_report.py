"""Agreement of Tsukuba scores: the rule scorer against design labels, or real against synthetic.

Categories are ``cyst, 1, 2, 3, 4, 5`` (:data:`CATEGORIES`); confusion matrices have the
reference (design label, or the real elastogram's score) in rows and the compared score in
columns, in that order.

How the cyst pattern enters the statistics: the Tsukuba scores 1–5 are ordinal (softer to
harder), but the cyst pattern (blue-green-red, fluid) has no place on that scale — it is not
"score 0". So

* **agreement** (fraction on the diagonal) and **unweighted Cohen κ** use all cases, over the
  6 categories (cyst a nominal category of its own);
* **linear-weighted Cohen κ** uses only the cases where both scores are 1–5, over the 5
  ordinal categories with agreement weights ``1 − |i − j| / 4``; the cases that involve a
  cyst on either side are left out and counted (``n_with_cyst``).

A κ that is undefined (no case, or both sides using one common category) is reported as
``None`` with a ``note`` saying why, never as NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from elastogan.errors import InputFileError, UserError
from elastogan.eval.agreement import AgreementError, cohen_kappa
from elastogan.eval.stats_format import num, table

CATEGORIES: tuple[int | str, ...] = ("cyst", 1, 2, 3, 4, 5)
ORDINAL: tuple[int, ...] = (1, 2, 3, 4, 5)
STRAIN_SOURCES = ("estimated", "true")


def category_index(score: Any) -> int:
    """Position of a Tsukuba score in :data:`CATEGORIES` (``"3"`` and ``3`` are the same)."""
    key = score if score == "cyst" else _as_int(score)
    if key not in CATEGORIES:
        raise ValueError(f"unknown Tsukuba score {score!r}; expected 1-5 or 'cyst'")
    return CATEGORIES.index(key)


def _as_int(score: Any) -> Any:
    if isinstance(score, bool):
        return score
    try:
        return int(score) if float(score) == int(float(score)) else score
    except (TypeError, ValueError):
        return score


def confusion(reference: Sequence[Any], scored: Sequence[Any]) -> np.ndarray:
    """6×6 counts: rows the reference's category, columns the scored one (order :data:`CATEGORIES`)."""
    if len(reference) != len(scored):
        raise ValueError(f"expected two score lists of one length, got {len(reference)} and {len(scored)}")
    t = np.zeros((len(CATEGORIES), len(CATEGORIES)), dtype=np.int64)
    for a, b in zip(reference, scored):
        t[category_index(a), category_index(b)] += 1
    return t


def _kappa(t: np.ndarray, weights: str, level: float) -> dict:
    try:
        k = cohen_kappa(t, weights, level)
    except AgreementError as e:
        return {"value": None, "note": str(e), "n_cases": int(t.sum())}
    return {"value": k["value"], "se": k["se"], "ci": k["ci"], "n_cases": k["n_cases"]}


def tsukuba_agreement(reference: Sequence[Any], scored: Sequence[Any], level: float = 0.95) -> dict:
    """Confusion matrix, agreement and Cohen κ of two lists of Tsukuba scores (one per case).

    Returns:
        ``categories``, ``confusion`` (rows reference), ``n``, ``agreement`` (fraction of
        cases on the diagonal), ``kappa_unweighted`` (all cases, 6 nominal categories),
        ``kappa_linear`` (cases scored 1–5 on both sides, linear weights over 1–5), and
        ``n_with_cyst`` (cases left out of the weighted κ).

    Example:
        >>> r = tsukuba_agreement([1, 2, "cyst", 4], [1, 3, "cyst", 4])
        >>> r["agreement"], round(r["kappa_unweighted"]["value"], 4), r["n_with_cyst"]  # κ = (0.75 − 0.1875) / 0.8125
        (0.75, 0.6923, 1)
    """
    t = confusion(reference, scored)
    n = int(t.sum())
    if n == 0:
        raise UserError("no scored case to compare")
    ordinal = t[1:, 1:]  # rows/columns 1..5: drop the cyst category
    return {
        "categories": list(CATEGORIES),
        "confusion": t.tolist(),
        "n": n,
        "agreement": float(np.trace(t) / n),
        "kappa_unweighted": _kappa(t, "unweighted", level),
        "kappa_linear": _kappa(ordinal, "linear", level),
        "n_with_cyst": int(n - ordinal.sum()),
    }


def score_manifest(manifest: str | Path, *, split: str | None = None, strain: str = "estimated") -> dict:
    """Score every case of a (phantom) manifest by rule and compare with its design labels.

    Args:
        manifest: a manifest whose cases have ``tsukuba`` labels, a ``lesion`` mask and strain.
        split: only this split; all cases when ``None``.
        strain: ``"estimated"`` (the manifest's ``strain``, what a scanner shows) or ``"true"``
            (``source["true_strain"]``, the simulator's FEM strain, relative to the manifest).

    Returns:
        The :func:`tsukuba_agreement` result (design label in rows, rule score in columns),
        plus ``cases`` (``id``, ``label``, ``rule``), ``skipped`` (``id``, ``reason``) for the
        cases that cannot be scored, ``manifest``, ``split`` and ``strain``.

    Raises:
        UserError: an unknown strain source or split, or no case left to compare.
        InputFileError: ``--strain true`` on a case without ``source.true_strain``.
    """
    from elastogan.data.images import read_gray, read_mask, read_strain
    from elastogan.data.manifest import read_manifest
    from elastogan.tsukuba import score_tsukuba

    if strain not in STRAIN_SOURCES:
        raise UserError(f"unknown strain source {strain!r}; expected one of {', '.join(STRAIN_SOURCES)}")
    m = read_manifest(manifest)
    cases = m.split(split) if split is not None else m.cases
    if not cases:
        raise UserError(f"{m.path}: no case in split {split!r}")
    scored: list[dict] = []
    skipped: list[dict] = []
    for c in cases:
        if c.tsukuba is None:
            skipped.append({"id": c.id, "reason": "no tsukuba label"})
            continue
        if c.lesion is None:
            skipped.append({"id": c.id, "reason": "no lesion mask"})
            continue
        if strain == "true":
            rel = c.source.get("true_strain")
            if not isinstance(rel, str) or not rel:
                raise InputFileError(m.path, f"line {c.line} (case {c.id}): --strain true needs source.true_strain, "
                                     "the simulator's FEM strain; this case has none")
            path = m.root / rel
        elif c.strain is None:
            skipped.append({"id": c.id, "reason": "no strain"})
            continue
        else:
            path = c.strain
        s = read_strain(path)
        try:
            rule = score_tsukuba(s, read_mask(c.lesion), roi=c.roi, bmode=read_gray(c.bmode))
        except ValueError as e:
            skipped.append({"id": c.id, "reason": str(e)})
            continue
        scored.append({"id": c.id, "label": c.tsukuba, "rule": rule})
    if not scored:
        reasons = "; ".join(sorted({s["reason"] for s in skipped}))
        raise UserError(f"{m.path}: no case could be scored against a design label ({reasons})")
    result = tsukuba_agreement([s["label"] for s in scored], [s["rule"] for s in scored])
    return {"manifest": str(m.path), "split": split, "strain": strain, **result, "cases": scored, "skipped": skipped}


def confusion_table(t: Sequence[Sequence[int]], rows: str, columns: str) -> str:
    """A confusion matrix as a plain-text table (rows and columns in :data:`CATEGORIES` order)."""
    header = [f"{rows} \\ {columns}", *map(str, CATEGORIES), "total"]
    body = [[str(c), *map(str, r), str(sum(r))] for c, r in zip(CATEGORIES, t)]
    body.append(["total", *(str(sum(col)) for col in zip(*t)), str(sum(map(sum, t)))])
    return table(header, body)


def confusion_markdown(t: Sequence[Sequence[int]], rows: str, columns: str) -> list[str]:
    """A confusion matrix as Markdown table lines."""
    lines = [f"| {rows} \\ {columns} | " + " | ".join(map(str, CATEGORIES)) + " | total |",
             "|---|" + "---|" * (len(CATEGORIES) + 1)]
    lines += [f"| {c} | " + " | ".join(map(str, r)) + f" | {sum(r)} |" for c, r in zip(CATEGORIES, t)]
    return lines


def kappa_text(k: dict) -> str:
    """``0.643 [0.3, 0.9]`` or ``— (why)``."""
    if k["value"] is None:
        return f"— ({k['note']})"
    return f"{num(k['value'])} [{k['ci'][0]:.3f}, {k['ci'][1]:.3f}]"


def report_text(res: dict) -> str:
    """The ``elastogan stats tsukuba`` printout."""
    where = f"split {res['split']}" if res["split"] else "all splits"
    lines = [
        f"Tsukuba rule score ({res['strain']} strain) vs design label: {res['manifest']}, {where}",
        "",
        confusion_table(res["confusion"], "label", "rule"),
        "",
        f"cases scored       {res['n']}" + (f" ({len(res['skipped'])} skipped)" if res["skipped"] else ""),
        f"agreement          {num(res['agreement'])}",
        f"kappa unweighted   {kappa_text(res['kappa_unweighted'])}  (all cases, cyst a category of its own)",
        f"kappa linear       {kappa_text(res['kappa_linear'])}  ({res['kappa_linear']['n_cases']} cases scored "
        f"1-5 on both sides; {res['n_with_cyst']} with a cyst left out)",
    ]
    for s in res["skipped"]:
        lines.append(f"skipped {s['id']}: {s['reason']}")
    return "\n".join(lines)
