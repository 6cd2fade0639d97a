"""The reader-study analyses, from the long-format exports to JSON-ready results.

One function per ``elastogan stats`` command; each takes what :mod:`elastogan.eval.reader_stats.stats_io`
read and returns plain dicts (the JSON contract of issue 5 §3). The statistics themselves
live in :mod:`~elastogan.eval.authenticity.readers`, :mod:`~elastogan.eval.agreement`,
:mod:`~elastogan.eval.reader_stats.roc`, :mod:`~elastogan.eval.reader_stats.mrmc` and :mod:`~elastogan.eval.diagnostic`.

The JSON written with ``--out`` (``…`` = further keys; an undefined value is null, never NaN)::

    agreement   {"categories": [...],
                 "conditions": {COND: {"n_cases", "n_readers", "fleiss_kappa": {"value", "se", "ci", …},
                                       "cohen_kappa": {"unweighted", "linear", "quadratic"},
                                       "cohen_pairs": [...], "krippendorff_alpha"}},
                 "comparison": {"conditions": [A, B], "diff", "se", "ci", "p", "n_boot", "paired", …}}
                with exactly 2 conditions; with 3 or more "comparisons": [one such object per
                pair] instead (and neither with one condition).
    roc         {"order", "modalities": {MOD: {"n_cases", "n_positive", "readers": {READER: {"auc", "se", "ci", "n_cases"}}}},
                 "comparisons": [{"reader", "modalities": [A, B], "design", "test", "diff", "se", "z", "p", "ci", …}],
                 "mrmc": {"design", "covariance", "n_readers", "n_cases", "reader_auc", "components", "means",
                          "variance_components": {"reader", "treatment_reader"}, "blocks" (split-plot),
                          "random_readers_random_cases": {"F", "df1", "df2", "p", "comparisons", "single_modality", …},
                          "fixed_readers_random_cases": {"chi2", "df", "p", "comparisons", "per_reader", "single_modality"},
                          "random_readers_fixed_cases": {"F", "df1", "df2", "p", "comparisons", "single_modality"}}}
                "mrmc" only with 2 or more readers; with exactly 2 modalities each of its three
                blocks also has "diff", "se", "ci" at the top. When the data cannot support the
                MRMC analysis (an incomplete reader, too few positive cases for the jackknife, no
                reader-by-modality variation) "mrmc" is {"undefined": "<why>"} and the rest stands.
                "design" is paired, nested, split-plot or counterbalanced (:mod:`~elastogan.eval.reader_stats.mrmc`).
    power       {"model", "source", "effect", "alpha", "n_modalities", "parameters", "pilot",
                 "target_power", "sample_sizes": [{"readers", "cases" (null: not reachable), "power" | "note"}]}
                or, with --cases, "grid": [{"readers", "cases", "power", "lambda", "ddf", …}].

Analyses of first readings only; when the export has a ``repeat`` column, authenticity, agreement
and roc also carry "intra_reader" {"categories", "weights", "pooled", "readers": {READER: {"n_pairs",
"agreement", "unweighted"|"linear"|"quadratic": {"value", "se", "ci"}}}}, and with a
``reading_time_s`` column "reading_time" {"unit", "overall", "n_missing", "by": {COLUMN: {VALUE:
{"n", "median", "q1", "q3", "mean", "sd", "min", "max", "total"}}}} (:mod:`~elastogan.eval.reader_stats.repeats`).
    diagnostic  {"threshold", "positive_from",
                 "per_modality": {MOD: {READER: {"sensitivity"|"specificity"|"ppv"|"npv": {"value", "ci", "k", "n"}, "counts"}}},
                 "comparisons": [{"reader", "modalities", "design", "sensitivity", "specificity", "ppv", "npv"}]}

Authenticity's shape is in :mod:`~elastogan.eval.authenticity.readers`; ``stats report`` nests these
under "authenticity", "agreement", "roc", "diagnostic" (each ``{"undefined": "<why>"}`` when the
data cannot support it) beside "image_metrics" (:mod:`~elastogan.eval.paper_report`).
"""

from __future__ import annotations

import itertools

import numpy as np

from elastogan.errors import UserError
from elastogan.eval import agreement, diagnostic
from elastogan.eval.reader_stats import mrmc, repeats, roc
from elastogan.eval.reader_stats.stats_io import Ratings, Readings, Scores, first_readings


def agreement_report(scores: Scores, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Per condition: Fleiss κ (value, se, ci), mean pairwise Cohen κ, Krippendorff α (ordinal);
    between conditions: bootstrap comparison of Fleiss κ over cases; ``intra_reader`` and
    ``reading_time`` when the scores carry repeats and times."""
    everything, scores = scores, first_readings(scores)
    q = len(scores.categories)
    conditions = list(dict.fromkeys(scores.condition.tolist()))
    out: dict = {"categories": list(scores.categories), "conditions": {}}
    tables: dict[str, tuple[list[str], np.ndarray]] = {}
    for cond in conditions:
        sel = scores.condition == cond
        readers = list(dict.fromkeys(scores.reader[sel].tolist()))
        if len(readers) < 2:
            raise UserError(
                f"condition {cond!r}: agreement needs at least 2 readers, got {len(readers)} ({', '.join(readers)})"
            )
        used = np.unique(scores.score[sel])
        if used.size < 2:
            where = "" if conditions == ["all"] else f"condition {cond!r}: "
            raise agreement.AgreementError(
                f"{where}all {int(sel.sum())} scores are {scores.categories[int(used[0])]!r}: agreement is "
                "undefined when every rating is in one category (chance agreement would be 1)"
            )
        cases = list(dict.fromkeys(scores.case[sel].tolist()))
        index = {c: i for i, c in enumerate(cases)}
        ci = np.array([index[c] for c in scores.case[sel]])
        counts = agreement.count_table(ci, scores.score[sel], len(cases), q)
        tables[cond] = (cases, counts)
        pairwise = agreement.pairwise_cohen(scores.reader[sel], scores.case[sel], scores.score[sel], q, level)
        out["conditions"][cond] = {
            "n_cases": len(cases),
            "n_readers": len(readers),
            "fleiss_kappa": agreement.fleiss_kappa(counts, level),
            "cohen_kappa": pairwise["mean"],
            "cohen_pairs": pairwise["pairs"],
            "krippendorff_alpha": agreement.krippendorff_alpha(counts, "ordinal"),
        }
    comparisons = []
    for a, b in itertools.combinations(conditions, 2):
        (ca, ta), (cb, tb) = tables[a], tables[b]
        if set(ca) == set(cb):
            tb = tb[[cb.index(c) for c in ca]]
            paired = True
        elif set(ca) & set(cb):
            raise UserError(
                f"conditions {a!r} and {b!r} share only some cases; expected the same cases (paired) or none"
            )
        else:
            paired = False
        res = agreement.bootstrap_fleiss_difference(ta, tb, paired=paired, n_boot=n_boot, seed=seed, level=level)
        comparisons.append({"conditions": [a, b], "statistic": "fleiss_kappa", **res})
    if len(comparisons) == 1:
        out["comparison"] = comparisons[0]
    elif comparisons:
        out["comparisons"] = comparisons
    _repeats_and_times(out, everything, everything.score, everything.categories, [everything.case, everything.condition],
                       {"condition": everything.condition}, level)
    return out


def _repeats_and_times(out: dict, data: Scores | Ratings, answer: np.ndarray, categories: tuple[str, ...],
                       key: list[np.ndarray], by: dict[str, np.ndarray], level: float) -> None:
    """Add ``intra_reader`` (repeated readings) and ``reading_time`` to ``out`` when the data carry them."""
    if data.repeat is not None and data.repeat.any():
        rd, a1, a2 = repeats.pair_repeats(data.reader, key, answer, data.repeat)
        out["intra_reader"] = repeats.intra_reader_kappa(rd, a1, a2, categories, ordinal=True, level=level)
    if data.reading_time_s is not None:
        by = {"reader": data.reader, **by}
        if data.repeat is not None:
            by["reading"] = np.where(data.repeat, "repeat", "first")
        by.update(data.extra or {})
        out["reading_time"] = repeats.reading_times(data.reading_time_s, by)


def _rating_categories(r: Ratings) -> tuple[np.ndarray, tuple[str, ...]]:
    """Ratings as category indices: positions in the declared order, or the distinct numbers."""
    if r.order is not None:
        return r.rating.astype(np.int64), r.order
    distinct = np.unique(r.rating)
    names = tuple(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in distinct)
    return np.searchsorted(distinct, r.rating).astype(np.int64), names


def _reader_cases(r: Ratings, modality: str, reader: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sel = (r.modality == modality) & (r.reader == reader)
    return r.case[sel], r.truth[sel], r.rating[sel]


def roc_report(r: Ratings, *, covariance: str = "jackknife", level: float = 0.95) -> dict:
    """Per modality and reader AUC (DeLong se, ci); per reader DeLong comparisons between
    modalities (paired on shared cases, unpaired on disjoint ones); MRMC with ≥ 2 readers;
    ``intra_reader`` and ``reading_time`` when the ratings carry repeats and times."""
    everything, r = r, first_readings(r)
    modalities = list(dict.fromkeys(r.modality.tolist()))
    readers = list(dict.fromkeys(r.reader.tolist()))
    out: dict = {"order": list(r.order) if r.order else None, "modalities": {}, "comparisons": []}
    fits: dict[tuple[str, str], roc.DeLong] = {}
    for m in modalities:
        sel = r.modality == m
        cases = set(r.case[sel].tolist())
        n_pos = len({c for c, t in zip(r.case[sel], r.truth[sel]) if t == 1})
        entry = {"n_cases": len(cases), "n_positive": n_pos, "readers": {}}
        for rd in readers:
            case, truth, rating = _reader_cases(r, m, rd)
            if case.size == 0:
                raise UserError(f"reader {rd!r} read nothing in modality {m!r}")
            roc.check_truth(truth, f"reader {rd!r}, modality {m!r}")
            d = roc.delong(rating, truth)
            fits[m, rd] = d
            auc, se = float(d.auc[0]), float(d.se[0])
            entry["readers"][rd] = {"auc": auc, "se": se, "ci": list(roc.auc_ci(auc, se, level)), "n_cases": int(case.size)}
        out["modalities"][m] = entry
    for rd in readers:
        for a, b in itertools.combinations(modalities, 2):
            ca, ta, ra = _reader_cases(r, a, rd)
            cb, tb, rb = _reader_cases(r, b, rd)
            if set(ca.tolist()) == set(cb.tolist()):
                pos = {c: k for k, c in enumerate(cb.tolist())}
                rb_aligned = rb[[pos[c] for c in ca.tolist()]]
                d = roc.delong(np.stack([ra, rb_aligned]), ta)
                res = {"design": "paired", "test": "paired DeLong", **roc.paired_test(d, 0, 1, level)}
            elif not set(ca.tolist()) & set(cb.tolist()):
                res = {"design": "unpaired", "test": "unpaired DeLong (Welch t)",
                       **roc.unpaired_test(fits[a, rd], fits[b, rd], level)}
            else:
                raise UserError(
                    f"reader {rd!r}: modalities {a!r} and {b!r} share only some cases; "
                    "expected the same cases (paired) or none (unpaired)"
                )
            out["comparisons"].append({"reader": rd, "modalities": [a, b], **res})
    if len(readers) >= 2:
        mrmc.check_covariance(covariance)
        # An MRMC analysis the data cannot support (an incomplete reader, too few positives for
        # the jackknife, no reader-by-modality variation) is reported, not fatal: the per-reader
        # AUCs above stand on their own.
        try:
            study = mrmc.arrange(r.case, r.truth, r.reader, r.modality, r.rating)
            out["mrmc"] = mrmc.analyse(study, covariance, level)
        except UserError as e:
            out["mrmc"] = {"undefined": str(e)}
    index, categories = _rating_categories(everything)
    _repeats_and_times(out, everything, index, categories, [everything.case, everything.modality],
                       {"modality": everything.modality}, level)
    return out


def diagnostic_report(r: Ratings, positive_from: str, *, level: float = 0.95) -> dict:
    """Sensitivity, specificity, PPV, NPV per reader and modality with paired comparisons."""
    r = first_readings(r)
    threshold = diagnostic.threshold_index(positive_from, r.order)
    res = diagnostic.analyse(r.case, r.truth, r.reader, r.modality, r.rating, threshold, level)
    res["positive_from"] = positive_from
    return res


READINGS_KAPPA = {  # answer column: (title, ordinal); confidence (0–100) is continuous: no κ
    "judged_synthetic": ("real or synthetic", False),
    "tsukuba": ("Tsukuba score", True),
    "birads": ("BI-RADS", True),
    "birads_bmode": ("BI-RADS on B-mode alone", True),
}


def _categories(values: np.ndarray, order: tuple[str, ...] | None, column: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Answers as category indices: positions in ``order``, else numbers in numeric order,
    else the labels in sorted order."""
    if column == "judged_synthetic":
        order = ("0", "1")
    if order is None:
        try:
            distinct = sorted(set(values.tolist()), key=float)
        except ValueError:
            distinct = sorted(set(values.tolist()))
        order = tuple(distinct)
    index = {c: k for k, c in enumerate(order)}
    bad = sorted(set(values.tolist()) - set(index))
    if bad:
        raise UserError(f"readings: {column} value(s) outside the declared order {','.join(order)}: "
                        f"{', '.join(repr(b[:20]) for b in bad[:5])}")
    if column == "judged_synthetic":
        order = ("judged real", "judged synthetic")
    return np.array([index[v] for v in values.tolist()], dtype=np.int64), order


def readings_report(rd: Readings, *, orders: dict[str, tuple[str, ...] | None] | None = None,
                    level: float = 0.95) -> dict:
    """Intra-reader κ of every categorical answer with repeats, and reading times.

    Args:
        rd: the readings (:func:`~elastogan.eval.reader_stats.stats_io.read_readings`).
        orders: declared category orders by answer column (e.g. ``{"birads": (...), "tsukuba": (...)}``).

    Returns:
        ``{"n_readings", "n_repeats", "intra_reader": {COLUMN: {"title", ...}}, "reading_time": {COLUMN: {...}}}``
        in the shapes of :mod:`~elastogan.eval.reader_stats.repeats`; an answer whose κ the data
        cannot support is ``{"title", "undefined": "<why>"}``.
    """
    orders = orders or {}
    out: dict = {"n_readings": int(rd.reader.size), "n_repeats": int(rd.repeat.sum()), "intra_reader": {},
                 "reading_time": {}}
    for column, (title, ordinal) in READINGS_KAPPA.items():
        if column not in rd.answers:
            continue
        given = rd.answers[column] != ""
        if not (given & rd.repeat).any():
            continue
        try:  # one answer the data cannot support (a value outside its order …) leaves the others
            values, categories = _categories(rd.answers[column][given], orders.get(column), column)
            if len(categories) < 2:
                raise UserError(f"every {title} answer is {categories[0]!r}: κ undefined")
            pairs = repeats.pair_repeats(rd.reader[given], [rd.item[given]], values, rd.repeat[given])
            out["intra_reader"][column] = {"title": title, **repeats.intra_reader_kappa(
                *pairs, categories, ordinal=ordinal, level=level)}
        except UserError as e:
            out["intra_reader"][column] = {"title": title, "undefined": str(e)}
    by = {"reader": rd.reader, **rd.labels, "reading": np.where(rd.repeat, "repeat", "first")}
    for column, seconds in rd.times.items():
        if np.isfinite(seconds).any():
            out["reading_time"][column] = repeats.reading_times(seconds, by)
    return out
