"""Obuchowski–Rockette MRMC: OR-DBM MRMC 2.51 / MRMCaov on Van Dyke et al. (1993)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from elastogan.errors import UserError
from elastogan.eval import mrmc
from published import FIXTURES, assert_printed, expected


def _vandyke(case_column: str = "case"):
    with open(FIXTURES / "VanDyke.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    col = lambda k: np.array([r[k] for r in rows], dtype=object)  # noqa: E731
    return (col(case_column), np.array([int(r["truth"]) for r in rows]), col("reader"), col("treatment"),
            np.array([float(r["rating"]) for r in rows]))


@pytest.fixture(scope="module")
def result():
    study = mrmc.arrange(*_vandyke())
    return study, mrmc.analyse(study, "jackknife")


@pytest.fixture(scope="module")
def ref():
    return expected()["mrmc_or_VanDyke"]


def test_design_is_paired_with_the_published_sizes(result):
    study, res = result
    assert study.design == "paired"
    assert res["n_cases"] == {"1": 114, "2": 114}
    assert int(study.truth[0].sum()) == 45


def test_reader_aucs_and_means(result, ref):
    _, res = result
    for trt, key in (("1", "auc_trt1"), ("2", "auc_trt2")):
        for j, printed in enumerate(ref[key]):
            assert_printed(res["reader_auc"][trt][str(j + 1)], printed)
    assert_printed(res["means"]["1"], ref["means"][0])
    assert_printed(res["means"]["2"], ref["means"][1])


def test_jackknife_covariances(result, ref):
    _, res = result
    for k, printed in ref["jackknife_covariance"].items():
        assert_printed(res["components"][k], printed)


def test_random_readers_random_cases(result, ref):
    _, res = result
    rr, want = res["random_readers_random_cases"], ref["random_readers_random_cases"]
    assert_printed(rr["F"], want["F"])
    assert_printed(rr["F"], want["F_exact"])
    assert_printed(rr["df2"], want["ddf"])
    assert_printed(rr["p"], want["p"])
    assert_printed(rr["se"], want["se_diff"])
    assert_printed(rr["ci"][0], want["ci"][0])
    assert_printed(rr["ci"][1], want["ci"][1])
    assert rr["df1"] == 1


def test_single_treatment_random_readers(result, ref):
    _, res = result
    single = res["random_readers_random_cases"]["single_modality"]
    for trt, want in zip(("1", "2"), ref["single_treatment"]):
        assert_printed(single[trt]["se"], want["se"])
        assert_printed(single[trt]["df"], want["df"])
        assert_printed(single[trt]["ci"][0], want["ci"][0])
        assert_printed(single[trt]["ci"][1], want["ci"][1])


def test_fixed_readers_and_fixed_cases_follow_their_formulas(result):
    _, res = result
    comp = res["components"]
    r = 5
    diff = res["means"]["1"] - res["means"]["2"]
    fr = res["fixed_readers_random_cases"]
    se_fr = np.sqrt(2 / r * (comp["Var"] - comp["Cov1"] + (r - 1) * (comp["Cov2"] - comp["Cov3"])))
    assert fr["se"] == pytest.approx(se_fr, rel=1e-12)
    assert fr["chi2"] == pytest.approx((diff / se_fr) ** 2, rel=1e-12)
    rf = res["random_readers_fixed_cases"]
    assert rf["df2"] == 4.0
    assert rf["F"] == pytest.approx(res["random_readers_random_cases"]["MS_T"] / res["random_readers_random_cases"]["MS_TR"])
    assert len(fr["per_reader"]) == 5


def test_delong_covariance_is_close_to_the_jackknife():
    res = mrmc.analyse(mrmc.arrange(*_vandyke()), "delong")
    jk = mrmc.analyse(mrmc.arrange(*_vandyke()), "jackknife")
    for k in ("Var", "Cov1", "Cov2", "Cov3"):
        assert res["components"][k] == pytest.approx(jk["components"][k], rel=0.03)
        assert res["components"][k] != jk["components"][k]


def test_nested_design_is_inferred_and_has_no_cross_modality_covariance():
    case, truth, reader, trt, rating = _vandyke("case3")  # case ids made unique per treatment
    study = mrmc.arrange(case, truth, reader, trt, rating)
    assert study.design == "nested"
    res = mrmc.analyse(study)
    assert res["components"]["Cov1"] == 0.0 and res["components"]["Cov3"] == 0.0
    # reader AUCs do not depend on the case labelling
    paired = mrmc.analyse(mrmc.arrange(*_vandyke()))
    assert res["reader_auc"] == paired["reader_auc"]


def test_reader_who_read_nothing_in_a_modality():
    case, truth, reader, trt, rating = _vandyke()
    keep = ~((reader == "3") & (trt == "2"))
    with pytest.raises(UserError, match="reader '3' read nothing in modality '2'"):
        mrmc.arrange(case[keep], truth[keep], reader[keep], trt[keep], rating[keep])


def test_incomplete_reading_names_the_case():
    case, truth, reader, trt, rating = _vandyke()
    keep = np.ones(case.size, bool)
    keep[np.flatnonzero((reader == "2") & (trt == "1"))[0]] = False
    with pytest.raises(UserError, match="reader '2' has no rating for 1 of the 114 cases"):
        mrmc.arrange(case[keep], truth[keep], reader[keep], trt[keep], rating[keep])


def test_partly_shared_cases_are_refused():
    case, truth, reader, trt, rating = _vandyke()
    case = case.copy()
    case[(trt == "2") & (case == "1")] = "new"
    with pytest.raises(UserError, match="paired .* or nested"):
        mrmc.arrange(case, truth, reader, trt, rating)


def test_one_reader_is_refused():
    with pytest.raises(UserError, match="at least 2 readers"):
        mrmc.obuchowski_rockette(np.array([[0.8], [0.9]]), np.eye(2) * 1e-3)


def test_no_reader_variation_is_refused_not_infinite():
    auc = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    with pytest.raises(UserError, match="no reader-by-modality variation"):
        mrmc.obuchowski_rockette(auc, np.zeros((6, 6)))
