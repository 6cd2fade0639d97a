"""Obuchowski–Rockette MRMC on Van Dyke et al. (1993): OR-DBM MRMC 2.51 and MRMCaov printouts."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from elastogan.errors import UserError
from elastogan.eval.reader_stats import mrmc
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
    assert int(study.truth.sum()) == 45


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


# MRMCaov (Smith & Hillis), JSS manuscript docs/jss/MRMCaov.tex: summary() printouts for
# Van Dyke with empirical AUC. Each entry: the printed numbers of one analysis.
MRMCAOV_FIXED_READERS = {  # fixed(reader), jackknife
    "X2": "5.475953", "p": "0.01927984", "se": "0.01871748", "ci": ("-0.08048591", "-0.00711473"),
    "single": [("0.02428971", "0.8494301", "0.9446440"), ("0.01677632", "0.9079564", "0.9737183")],
    "per_reader": [("0.02551213", "-1.1045864", "0.26933885"), ("0.02630183", "-1.7693768", "0.07683102"),
                   ("0.03120965", "-0.5727202", "0.56683414"), ("0.01729129", "-1.5179891", "0.12901715"),
                   ("0.04405746", "-2.2734182", "0.02300099")],
}
MRMCAOV_FIXED_CASES = {  # fixed(case)
    "F": "8.704", "p": "0.04195875", "se": "0.01484629", "ci": ("-0.08502022", "-0.00258042"),
    "single": [("0.02482994", "0.8280981", "0.9659760"), ("0.01615303", "0.8959894", "0.9856854")],
}
MRMCAOV_DELONG = {  # cov = DeLong, random readers and cases
    "Var": "0.0007921325", "Cov1": "0.0003420090", "Cov2": "0.0003395265", "Cov3": "0.0002358497",
    "F": "4.484854", "df2": "15.06611", "p": "0.05123303", "se": "0.0206825", "ci": ("-0.0878671960", "0.0002665519"),
    "single": [("0.03307642", "12.59597", "0.8253461", "0.9687280"), ("0.02150464", "12.56530", "0.8942155", "0.9874592")],
}
MRMCAOV_NESTED = {  # case3: cases nested within treatment, jackknife
    "Var": "8.058382e-04", "Cov2": "3.455973e-04", "F": "2.104491", "df2": "68.42325", "p": "0.1514363",
    "se": "0.03019283", "ci": ("-0.10404242", "0.01644178"),
    "single": [("0.03320586", "12.79430", "0.8251827", "0.9688914"), ("0.02158730", "12.75962", "0.8941114", "0.9875634")],
}


def test_fixed_readers_mrmcaov(result):
    _, res = result
    fr, want = res["fixed_readers_random_cases"], MRMCAOV_FIXED_READERS
    assert_printed(fr["chi2"], want["X2"])
    assert_printed(fr["p"], want["p"])
    assert_printed(fr["se"], want["se"])
    assert_printed(fr["ci"][0], want["ci"][0])
    assert_printed(fr["ci"][1], want["ci"][1])
    for trt, (se, lo, hi) in zip(("1", "2"), want["single"]):
        single = fr["single_modality"][trt]
        assert_printed(single["se"], se)
        assert_printed(single["ci"][0], lo)
        assert_printed(single["ci"][1], hi)
    assert [row["reader"] for row in fr["per_reader"]] == ["1", "2", "3", "4", "5"]
    for row, (se, z, p) in zip(fr["per_reader"], want["per_reader"]):
        assert_printed(row["se"], se)
        assert_printed(row["z"], z)
        assert_printed(row["p"], p)


def test_fixed_cases_mrmcaov(result):
    _, res = result
    rf, want = res["random_readers_fixed_cases"], MRMCAOV_FIXED_CASES
    assert_printed(rf["F"], want["F"])
    assert (rf["df1"], rf["df2"]) == (1, 4.0)
    assert_printed(rf["p"], want["p"])
    assert_printed(rf["se"], want["se"])
    assert_printed(rf["ci"][0], want["ci"][0])
    assert_printed(rf["ci"][1], want["ci"][1])
    for trt, (se, lo, hi) in zip(("1", "2"), want["single"]):
        single = rf["single_modality"][trt]
        assert_printed(single["se"], se)
        assert single["df"] == 4.0
        assert_printed(single["ci"][0], lo)
        assert_printed(single["ci"][1], hi)


def _check_random(res, want):
    rr = res["random_readers_random_cases"]
    for k in ("Var", "Cov1", "Cov2", "Cov3"):
        if k in want:
            assert_printed(res["components"][k], want[k])
    for k in ("F", "df2", "p", "se"):
        assert_printed(rr[k], want[k])
    assert_printed(rr["ci"][0], want["ci"][0])
    assert_printed(rr["ci"][1], want["ci"][1])
    for trt, (se, df, lo, hi) in zip(("1", "2"), want["single"]):
        single = rr["single_modality"][trt]
        assert_printed(single["se"], se)
        assert_printed(single["df"], df)
        assert_printed(single["ci"][0], lo)
        assert_printed(single["ci"][1], hi)


def test_delong_covariance_mrmcaov():
    _check_random(mrmc.analyse(mrmc.arrange(*_vandyke()), "delong"), MRMCAOV_DELONG)


def test_cases_nested_within_modality_mrmcaov():
    study = mrmc.arrange(*_vandyke("case3"))  # case ids made unique per treatment
    assert study.design == "nested"
    res = mrmc.analyse(study, "jackknife")
    assert res["components"]["Cov1"] == 0.0 and res["components"]["Cov3"] == 0.0
    _check_random(res, MRMCAOV_NESTED)
    # reader AUCs do not depend on the case labelling
    assert res["reader_auc"] == mrmc.analyse(mrmc.arrange(*_vandyke()))["reader_auc"]


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
    with pytest.raises(UserError, match="paired .* nested"):
        mrmc.arrange(case, truth, reader, trt, rating)


def test_one_reader_is_refused():
    with pytest.raises(UserError, match="at least 2 readers"):
        mrmc.obuchowski_rockette(np.array([[0.8], [0.9]]), np.eye(2) * 1e-3)


def test_no_reader_variation_is_refused_not_infinite():
    auc = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    with pytest.raises(UserError, match="no reader-by-modality variation"):
        mrmc.obuchowski_rockette(auc, np.zeros((6, 6)))


def test_per_reader_test_with_zero_variance_is_undefined_not_p_one():
    # Reader 2 has zero variance in both modalities: a non-zero difference has no z or p
    # (before: z = 0, p = 1, as if no difference). Reader 1 is an ordinary z test.
    auc = np.array([[0.80, 0.75], [0.60, 0.70]])
    cov = np.diag([4e-3, 0.0, 5e-3, 0.0])
    cov[0, 2] = cov[2, 0] = 1e-3
    rows = mrmc.obuchowski_rockette(auc, cov, ("A", "B"))["fixed_readers_random_cases"]["per_reader"]
    first, second = rows
    assert first["se"] == pytest.approx(np.sqrt(4e-3 + 5e-3 - 2e-3), rel=1e-12)
    assert first["z"] == pytest.approx(0.2 / first["se"], rel=1e-12) and 0 < first["p"] < 1
    assert second["diff"] == pytest.approx(0.05) and second["se"] == 0.0
    assert second["z"] is None and second["p"] is None and second["ci"] is None
    assert "zero variance of a non-zero AUC difference" in second["note"]
    same = mrmc.obuchowski_rockette(np.array([[0.80, 0.70], [0.60, 0.70]]), cov)["fixed_readers_random_cases"]
    assert (same["per_reader"][1]["z"], same["per_reader"][1]["p"]) == (0.0, 1.0)


@pytest.mark.parametrize("covariance, reader, treatment_reader", [
    ("jackknife", "0.0015349993", "0.0002004025"),  # MRMCaov summary, fixed(reader) printout
    ("delong", "0.0015364254", "0.0002045840"),  # MRMCaov summary, cov = DeLong
])
def test_variance_components_mrmcaov(covariance, reader, treatment_reader):
    res = mrmc.analyse(mrmc.arrange(*_vandyke()), covariance)
    assert_printed(res["variance_components"]["reader"], reader)
    assert_printed(res["variance_components"]["treatment_reader"], treatment_reader)
