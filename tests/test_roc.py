"""DeLong AUC, variance, covariance and tests: pROC's aSAH example to its printed digits."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from elastogan.errors import UserError
from elastogan.eval.reader_stats import roc
from published import FIXTURES, assert_printed, expected

PREDICTORS = ("wfns", "ndka", "s100b")


@pytest.fixture(scope="module")
def asah():
    with open(FIXTURES / "aSAH.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    truth = np.array([r["outcome"] == "Poor" for r in rows], dtype=np.int64)
    scores = np.array([[float(r[p]) for r in rows] for p in PREDICTORS])
    return scores, truth


@pytest.fixture(scope="module")
def ref():
    return expected()["delong_aSAH"]


def test_asah_has_the_published_class_sizes(asah):
    _, truth = asah
    assert (truth.sum(), (1 - truth).sum()) == (41, 72)


def test_auc_variance_covariance(asah, ref):
    d = roc.delong(*asah)
    idx = {p: i for i, p in enumerate(PREDICTORS)}
    for p in PREDICTORS:
        assert_printed(d.auc[idx[p]], ref["auc"][p])
        assert_printed(d.cov[idx[p], idx[p]], ref["var"][p])
    for pair, value in ref["cov"].items():
        a, b = pair.split("_")
        assert_printed(d.cov[idx[a], idx[b]], value)
        assert d.cov[idx[a], idx[b]] == pytest.approx(d.cov[idx[b], idx[a]], rel=1e-15)


@pytest.mark.parametrize("pair", ["wfns_vs_s100b", "wfns_vs_ndka", "ndka_vs_s100b"])
def test_paired_delong_test(asah, ref, pair):
    a, b = pair.split("_vs_")
    d = roc.delong(*asah)
    res = roc.paired_test(d, PREDICTORS.index(a), PREDICTORS.index(b))
    want = ref["paired_test"][pair]
    assert_printed(res["z"], want["Z"])
    assert_printed(res["p"], want["p"])
    assert_printed(res["ci"][0], want["ci"][0])
    assert_printed(res["ci"][1], want["ci"][1])
    if "p_greater" in want:
        assert_printed(res["p_greater"], want["p_greater"])
        assert_printed(res["p_less"], want["p_less"])


@pytest.mark.parametrize("pair", ["wfns_vs_s100b", "wfns_vs_ndka", "ndka_vs_s100b"])
def test_unpaired_delong_test(asah, ref, pair):
    scores, truth = asah
    a, b = (PREDICTORS.index(x) for x in pair.split("_vs_"))
    res = roc.unpaired_test(roc.delong(scores[a], truth), roc.delong(scores[b], truth))
    assert_printed(res["z"], ref["unpaired_test"][pair]["D"])
    assert_printed(res["p"], ref["unpaired_test"][pair]["p"])


def test_ci_auc_ndka(asah, ref):
    scores, truth = asah
    d = roc.delong(scores[1], truth)
    lo, hi = roc.auc_ci(float(d.auc[0]), float(d.se[0]))
    low, mid, high = ref["ci_auc_ndka_delong_95"]
    assert_printed(lo, low)
    assert_printed(float(d.auc[0]), mid)
    assert_printed(hi, high)


def test_fast_delong_equals_the_direct_pairwise_definition():
    rng = np.random.default_rng(3)
    truth = (rng.random(300) < 0.4).astype(int)
    scores = np.round(rng.normal(size=(3, 300)) + truth, 1)  # many ties
    d = roc.delong(scores, truth)
    pos = truth.astype(bool)
    for k in range(3):
        psi = (scores[k, pos][:, None] > scores[k, ~pos][None, :]) + 0.5 * (scores[k, pos][:, None] == scores[k, ~pos][None, :])
        assert d.auc[k] == pytest.approx(psi.mean(), abs=1e-14)
        assert d.auc[k] == pytest.approx(roc.auc_mann_whitney(scores[k], truth), abs=1e-14)
        np.testing.assert_allclose(d.v10[k], psi.mean(axis=1), atol=1e-14)
        np.testing.assert_allclose(d.v01[k], psi.mean(axis=0), atol=1e-14)


def test_hand_computed_auc_with_a_tie():
    # positives 0.35, 0.8 ; negatives 0.1, 0.35 -> pairs: (0.35>0.1)=1, (0.35=0.35)=.5, 1, 1 -> 3.5/4
    d = roc.delong(np.array([0.1, 0.35, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert d.auc[0] == 0.875


def test_roc_curve_ends_at_corners_and_integrates_to_the_auc(asah):
    scores, truth = asah
    fpr, tpr = roc.roc_curve(scores[0], truth)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc.delong(scores[0], truth).auc[0], abs=1e-12)


def test_one_class_truth_is_a_clear_error():
    with pytest.raises(UserError, match="one-class truth"):
        roc.delong(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 1]))


def test_paired_test_of_identical_ratings_is_no_difference():
    res = roc.paired_test(roc.delong(np.array([[1, 2, 3, 4.0], [1, 2, 3, 4.0]]), np.array([0, 1, 0, 1])))
    assert (res["diff"], res["p"]) == (0.0, 1.0)


def test_unpaired_test_of_two_perfect_aucs_is_no_difference_not_an_error():
    # A dozen cases per modality often separate perfectly (AUC 1, DeLong variance 0): equal
    # perfect AUCs do not differ; a perfect against a perfectly inverted one has no z or p.
    truth = np.array([0, 0, 0, 1, 1, 1])
    perfect = roc.delong(np.array([1, 2, 3, 4, 5, 6.0]), truth)
    also = roc.delong(np.array([1, 1, 2, 5, 6, 6.0]), truth)
    inverted = roc.delong(np.array([6, 5, 4, 3, 2, 1.0]), truth)
    assert float(perfect.cov[0, 0]) == 0.0 and float(perfect.auc[0]) == 1.0
    same = roc.unpaired_test(perfect, also)
    assert (same["diff"], same["p"], same["ci"]) == (0.0, 1.0, [0.0, 0.0])
    opposite = roc.unpaired_test(perfect, inverted)
    assert opposite["diff"] == 1.0 and opposite["p"] is None and opposite["ci"] is None
    assert "zero variance" in opposite["note"]


def test_paired_test_of_a_difference_without_variance_has_no_p():
    truth = np.array([0, 0, 1, 1])
    res = roc.paired_test(roc.delong(np.array([[1, 2, 3, 4.0], [4, 3, 2, 1.0]]), truth))
    assert res["diff"] == 1.0 and res["z"] is None and res["p"] is None and "non-zero" in res["note"]


def test_roc_report_stands_when_every_reader_separates_perfectly():
    # The reader-study report used to lose its whole ROC section (and the app test flaked, 15
    # in 40 study ids) when one reader's per-modality AUCs were both perfect.
    from elastogan.eval.reader_stats.reader_study import roc_report
    from elastogan.eval.reader_stats.stats_io import Ratings

    rng = np.random.default_rng(3)
    rows = []
    for rd in ("r0", "r1"):
        for m, cases in (("real", range(0, 12)), ("synthetic", range(12, 24))):
            for c in cases:
                t = c % 2
                rating = 3 * t + int(rng.integers(0, 3)) if rd == "r0" else int(rng.integers(0, 6))
                rows.append((f"c{c}", t, rd, m, float(rating)))
    case, truth, reader, modality, rating = map(np.array, zip(*rows))
    r = Ratings(case=case, truth=truth.astype(int), reader=reader, modality=modality, rating=rating, order=None)
    res = roc_report(r)
    assert res["modalities"]["real"]["readers"]["r0"]["auc"] == 1.0
    first = next(c for c in res["comparisons"] if c["reader"] == "r0")
    assert first["design"] == "unpaired" and first["p"] == 1.0 and "perfect" in first["note"]
    other = next(c for c in res["comparisons"] if c["reader"] == "r1")
    assert other["p"] is not None and 0 < other["p"] <= 1
