"""Split-plot and counterbalanced MRMC designs (mrmc.arrange infers them from who read what).

* Van Dyke with cases nested within readers (its ``case2`` ids; one reader per block) against
  MRMCaov's printout (Smith & Hillis, JSS manuscript docs/jss/MRMCaov.tex, "Cases nested
  within readers").
* A two-block split-plot cut from Van Dyke: each block's covariances are the fully crossed
  analysis of that block alone (jackknife rescaled from the block's cases to the study's,
  DeLong identical), and none across blocks.
* Type-I error of the OR test in split-plot and counterbalanced designs on seeded Roe–Metz
  null simulations (the heavy variant is marked slow; `make test` runs it).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from elastogan.errors import UserError
from elastogan.eval.reader_stats import mrmc
from elastogan.eval.reader_stats.roe_metz import RoeMetz, simulate
from published import assert_printed
from test_mrmc import _vandyke

# MRMCaov summary(mrmc(empirical_auc(truth, rating), treatment, reader, case2, data = VanDyke))
MRMCAOV_CASES_WITHIN_READERS = {
    "reader": "1.293517e-03", "treatment_reader": "9.213005e-05", "Var": "8.079682e-04", "Cov1": "3.490676e-04",
    "MS_T": "0.004796171", "MS_TR": "0.0005510306", "F": "8.704", "p": "0.04195875",
    "diff": "-0.04380032", "se": "0.01484629", "t": "-2.950254", "ci": ("-0.08502022", "-0.00258042"),
    "single": [("0.8970370", "0.02482994", "0.8280981", "0.9659760"), ("0.9408374", "0.01615303", "0.8959894", "0.9856854")],
}


def test_cases_nested_within_readers_is_a_split_plot_with_one_reader_per_block():
    study = mrmc.arrange(*_vandyke("case2"))
    assert study.design == "split-plot"
    assert study.blocks == ((0,), (1,), (2,), (3,), (4,))
    res = mrmc.analyse(study)
    assert res["blocks"] == [{"readers": [str(j)], "n_cases": 114} for j in range(1, 6)]
    assert res["n_cases"] == {"1": 570, "2": 570}


def test_cases_nested_within_readers_mrmcaov():
    res = mrmc.analyse(mrmc.arrange(*_vandyke("case2")))
    want = MRMCAOV_CASES_WITHIN_READERS
    comp, rr = res["components"], res["random_readers_random_cases"]
    assert comp["Cov2"] == 0.0 and comp["Cov3"] == 0.0
    assert_printed(comp["Var"], want["Var"])
    assert_printed(comp["Cov1"], want["Cov1"])
    assert_printed(res["variance_components"]["reader"], want["reader"])
    assert_printed(res["variance_components"]["treatment_reader"], want["treatment_reader"])
    for k in ("MS_T", "MS_TR", "F", "p", "se"):
        assert_printed(rr[k], want[k])
    assert rr["df2"] == pytest.approx(4.0, rel=1e-12)
    c = rr["comparisons"][0]
    assert_printed(c["diff"], want["diff"])
    assert_printed(c["t"], want["t"])
    assert_printed(c["ci"][0], want["ci"][0])
    assert_printed(c["ci"][1], want["ci"][1])
    for trt, (est, se, lo, hi) in zip(("1", "2"), want["single"]):
        single = rr["single_modality"][trt]
        assert_printed(single["auc"], est)
        assert_printed(single["se"], se)
        assert single["df"] == pytest.approx(4.0, rel=1e-12)
        assert_printed(single["ci"][0], lo)
        assert_printed(single["ci"][1], hi)


def _two_blocks():
    """Van Dyke cut into blocks: readers 1–2 read the odd-numbered cases, readers 3–5 the even ones."""
    case, truth, reader, trt, rating = _vandyke()
    first = np.array([int(c) % 2 == 1 for c in case])
    keep = np.isin(reader, ["1", "2"]) == first
    return case[keep], truth[keep], reader[keep], trt[keep], rating[keep], first[keep]


def _block_alone(case, truth, reader, trt, rating, sel):
    return mrmc.arrange(case[sel], truth[sel], reader[sel], trt[sel], rating[sel])


@pytest.mark.parametrize("covariance", ["jackknife", "delong"])
def test_split_plot_blocks_are_crossed_studies(covariance):
    case, truth, reader, trt, rating, first = _two_blocks()
    study = mrmc.arrange(case, truth, reader, trt, rating)
    assert study.design == "split-plot" and study.blocks == ((0, 1), (2, 3, 4))
    auc, cov = mrmc.auc_and_covariance(study, covariance)
    n = study.cases.size
    for sel, readers in ((first, [0, 1]), (~first, [2, 3, 4])):
        alone = _block_alone(case, truth, reader, trt, rating, sel)
        assert alone.design == "paired"
        a_auc, a_cov = mrmc.auc_and_covariance(alone, covariance)
        idx = np.array([i * 5 + j for i in range(2) for j in readers])
        np.testing.assert_allclose(auc[:, readers], a_auc, rtol=0, atol=1e-15)
        nb = alone.cases.size
        scale = (n - 1) / n / ((nb - 1) / nb) if covariance == "jackknife" else 1.0
        np.testing.assert_allclose(cov[np.ix_(idx, idx)], a_cov * scale, rtol=1e-10, atol=1e-18)
    other = np.array([i * 5 + j for i in range(2) for j in (2, 3, 4)])
    mine = np.array([i * 5 + j for i in range(2) for j in (0, 1)])
    assert not cov[np.ix_(mine, other)].any()


def test_split_plot_covariance_averages_count_the_pairs_that_share_no_case():
    case, truth, reader, trt, rating, _ = _two_blocks()
    study = mrmc.arrange(case, truth, reader, trt, rating)
    _, cov = mrmc.auc_and_covariance(study)
    comp = mrmc.covariance_components(cov, 2, 5)
    # Cov2: 2·(1 + 3) ordered pairs within blocks out of 2·5·4 → the within-block mean × 8/20
    same_mod_pairs = [(i * 5 + a, i * 5 + b) for i in range(2) for blk in ((0, 1), (2, 3, 4))
                      for a in blk for b in blk if a != b]
    within = np.mean([cov[p] for p in same_mod_pairs])
    assert comp["Cov2"] == pytest.approx(within * len(same_mod_pairs) / 40, rel=1e-12)


def test_counterbalanced_design_is_recognised_and_has_no_same_reader_covariance():
    case, truth, reader, trt, rating = _vandyke()
    # readers 1, 3, 5 read odd cases with treatment 1 and even ones with 2; readers 2, 4 the reverse
    arm = np.array([int(r) % 2 for r in reader])
    keep = (np.array([int(c) % 2 for c in case]) == arm) == (trt == "1")
    study = mrmc.arrange(case[keep], truth[keep], reader[keep], trt[keep], rating[keep])
    assert study.design == "counterbalanced"
    res = mrmc.analyse(study)
    assert res["components"]["Cov1"] == 0.0
    assert res["n_cases"] == {"1": 114, "2": 114}
    with pytest.raises(UserError, match="use --covariance jackknife"):
        mrmc.analyse(study, "delong")


def test_overlapping_blocks_are_refused():
    case, truth, reader, trt, rating, _ = _two_blocks()
    all_case, all_truth, all_reader, all_trt, all_rating = _vandyke()
    add = (all_reader == "3") & (all_case == "1")  # reader 3 (block 2) also reads case 1 (block 1)
    with pytest.raises(UserError, match="split-plot"):
        mrmc.arrange(np.r_[case, all_case[add]], np.r_[truth, all_truth[add]], np.r_[reader, all_reader[add]],
                     np.r_[trt, all_trt[add]], np.r_[rating, all_rating[add]])


# --- type-I error on the Roe–Metz null -------------------------------------------------------

NULL_MODEL = RoeMetz(var_r=0.011, var_tr=0.011, var_c=0.3, var_tc=0.3, var_rc=0.2, var_e=0.2)


def _null_p_values(kind: str, n_studies: int, *, readers: int, blocks: int = 2, seed: int = 0,
                   n_per_class: int = 40) -> np.ndarray:
    """p-values of the OR random-readers test on simulated null studies of a design."""
    rng = np.random.default_rng(seed)
    ratings, truth = simulate(NULL_MODEL, [1.5, 1.5], readers, n_per_class, n_per_class, n_studies, rng)
    n = truth.size
    rank_in_class = np.r_[np.arange(n_per_class), np.arange(n_per_class)]
    if kind == "split-plot":  # reader j and case k in block (j mod G), (k mod G)
        same = (np.arange(readers) % blocks)[:, None] == (rank_in_class % blocks)[None, :]
        read = np.stack([same, same])
    else:  # counterbalanced: reader j reads case k in modality (k + j) mod 2
        mod = (rank_in_class[None, :] + np.arange(readers)[:, None]) % 2
        read = np.stack([mod == 0, mod == 1])
    i, j, k = np.nonzero(read)
    template = mrmc.arrange(k.astype(object), truth[k], j.astype(object), i.astype(object), ratings[0, i, j, k])
    assert template.design == kind
    order = np.array([int(c) for c in template.cases])  # the grid's case order
    p = np.empty(n_studies)
    for s in range(n_studies):
        study = replace(template, ratings=np.where(read[..., order], ratings[s][..., order], np.nan))
        auc, cov = mrmc.auc_and_covariance(study)
        comp = mrmc.covariance_components(cov, 2, readers)
        ms_t, _, ms_tr = mrmc.mean_squares(auc)
        p[s] = mrmc.hillis_f_test(ms_t, ms_tr, comp["Cov2"], comp["Cov3"], 2, readers)[2]
    assert p[0] == pytest.approx(mrmc.analyse(template)["random_readers_random_cases"]["p"], rel=1e-12)
    return p


@pytest.mark.parametrize("kind", ["split-plot", "counterbalanced"])
def test_type_one_error_near_nominal(kind):
    p = _null_p_values(kind, 300, readers=6, seed=11)
    rate = (p < 0.05).mean()
    assert 0.05 - 3 * 0.0126 <= rate <= 0.05 + 3 * 0.0126  # 3 binomial SEs at 300 studies


@pytest.mark.slow
@pytest.mark.parametrize("kind, readers, blocks", [("split-plot", 6, 2), ("split-plot", 6, 3),
                                                   ("split-plot", 4, 4), ("counterbalanced", 6, 2)])
def test_type_one_error_within_one_and_a_half_points(kind, readers, blocks):
    p = _null_p_values(kind, 2000, readers=readers, blocks=blocks, seed=2026)
    assert abs((p < 0.05).mean() - 0.05) <= 0.015  # 3 binomial SEs at 2000 studies
