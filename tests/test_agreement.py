"""Agreement statistics against published worked examples (see fixtures/reference/PROVENANCE.md)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from elastogan.eval import agreement
from published import FIXTURES, assert_printed, expected


@pytest.fixture(scope="module")
def diagnoses_counts():
    with open(FIXTURES / "diagnoses.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    categories = sorted({v for r in rows for v in r})
    assert len(rows) == 30 and len(categories) == 5
    return np.array([[r.count(c) for c in categories] for r in rows])


def test_fleiss_1971(diagnoses_counts):
    ref = expected()["fleiss_1971"]
    res = agreement.fleiss_kappa(diagnoses_counts)
    assert_printed(res["value"], ref["kappa"])
    assert_printed(res["h0"]["z"], ref["z_H0"])
    assert res["n_readers"] == 6
    for got, k, z in zip(res["per_category"], ref["per_category_kappa"], ref["per_category_z"]):
        assert_printed(got["kappa"], k)
        assert_printed(got["z"], z)


def test_fleiss_se_is_the_linearised_jackknife_se():
    """Gwet's linearised variance and the jackknife over cases estimate the same thing."""
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, size=150)
    ratings = np.where(rng.random((150, 5)) < 0.6, truth[:, None], rng.integers(0, 4, size=(150, 5)))
    counts = np.stack([(ratings == k).sum(axis=1) for k in range(4)], axis=1)
    res = agreement.fleiss_kappa(counts)
    loo = np.array([agreement.fleiss_kappa(np.delete(counts, i, axis=0))["value"] for i in range(150)])
    se_jack = np.sqrt((150 - 1) / 150 * ((loo - loo.mean()) ** 2).sum())
    assert res["se"] == pytest.approx(se_jack, rel=0.03)
    assert res["ci"][0] < res["value"] < res["ci"][1]


def test_fleiss_perfect_agreement_and_refusals():
    assert agreement.fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]]))["value"] == 1.0
    with pytest.raises(agreement.AgreementError, match="same category"):
        agreement.fleiss_kappa(np.array([[3, 0], [3, 0]]))
    with pytest.raises(agreement.AgreementError, match="at least 2 cases"):
        agreement.fleiss_kappa(np.array([[1, 0], [0, 1], [2, 0]]))


# SAS PROC FREQ printout for this 3×3 table (simple and Cicchetti–Allison = linear weights).
TABLE10 = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]
SAS = {
    "unweighted": {"value": "0.4842", "se": "0.1380", "lo": "0.2137", "hi": "0.7547", "se0": "0.1484", "z": "3.2626"},
    "linear": {"value": "0.4701", "se": "0.1457", "lo": "0.1845", "hi": "0.7558", "se0": "0.1426", "z": "3.2971"},
}


@pytest.mark.parametrize("weights", ["unweighted", "linear"])
def test_cohen_kappa_sas_printout(weights):
    res = agreement.cohen_kappa(TABLE10, weights)
    want = SAS[weights]
    assert_printed(res["value"], want["value"])
    assert_printed(res["se"], want["se"])
    assert_printed(res["ci"][0], want["lo"])
    assert_printed(res["ci"][1], want["hi"])
    assert_printed(res["h0"]["se"], want["se0"])
    assert_printed(res["h0"]["z"], want["z"])


# irr's `anxiety` data (20 subjects, 3 raters), raters 2 and 3; irr::kappa2 printouts.
ANXIETY = np.array([
    3, 3, 3, 4, 5, 5, 2, 3, 5, 2, 2, 6, 1, 5, 2, 2, 1, 2, 4, 3, 3, 6, 4,
    6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4, 2, 1, 4, 4, 3, 2,
    1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2]).reshape(20, 3, order="F")
IRR = {"unweighted": ("-0.006289308", "-0.0604067", "0.9518317"),
       "linear": ("0.1459075", "1.282472", "0.1996772"),
       "quadratic": ("0.2520325", "1.437451", "0.1505898")}


@pytest.mark.parametrize("weights", list(IRR))
def test_cohen_kappa_irr_kappa2(weights):
    a, b = ANXIETY[:, 1], ANXIETY[:, 2]
    levels = sorted(set(a) | set(b))  # irr weights the levels that occur: 1, 2, 3, 4, 6
    table = np.zeros((len(levels), len(levels)))
    for x, y in zip(a, b):
        table[levels.index(x), levels.index(y)] += 1
    res = agreement.cohen_kappa(table, weights)
    value, z, p = IRR[weights]
    assert_printed(res["value"], value)
    assert_printed(res["h0"]["z"], z)
    assert_printed(res["h0"]["p"], p)


def test_cohen_kappa_identities():
    perfect = agreement.cohen_kappa(np.diag([5, 3, 2]), "quadratic")
    assert perfect["value"] == 1.0 and perfect["se"] == 0.0
    # hand computed: p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5 -> kappa 0.4
    assert agreement.cohen_kappa([[4, 1], [2, 3]])["value"] == pytest.approx(0.4, abs=1e-15)


def _counts(data, values):
    data = np.asarray(data, dtype=float)
    return np.array([[np.sum(data[:, u] == v) for v in values] for u in range(data.shape[1])])


# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers × 12 units.
K2011 = [[1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
         [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan]]


@pytest.mark.parametrize("metric, printed", [("ordinal", "0.815"), ("ratio", "0.797")])
def test_krippendorff_2011(metric, printed):
    assert_printed(agreement.krippendorff_alpha(_counts(K2011, range(1, 6)), metric), printed)


# Wikipedia "Krippendorff's alpha" computational example: 3 coders × 15 units.
WIKI = [[np.nan, np.nan, np.nan, np.nan, np.nan, 3, 4, 1, 2, 1, 1, 3, 3, np.nan, 3],
        [1, np.nan, 2, 1, 3, 3, 4, 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
        [np.nan, np.nan, 2, 1, 3, 4, 4, np.nan, 2, 1, 1, 3, 3, np.nan, 4]]


@pytest.mark.parametrize("metric, printed", [("nominal", "0.691358"), ("interval", "0.810845")])
def test_krippendorff_wikipedia(metric, printed):
    assert_printed(agreement.krippendorff_alpha(_counts(WIKI, range(1, 5)), metric), printed)


def test_krippendorff_nominal_and_fleiss_on_complete_data():
    """With every unit coded by all m coders, 1 − α_nominal = (1 − κ_Fleiss)(Nm − 1)/(Nm)."""
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, size=200)
    ratings = np.where(rng.random((200, 4)) < 0.5, truth[:, None], rng.integers(0, 3, size=(200, 4)))
    counts = np.stack([(ratings == k).sum(axis=1) for k in range(3)], axis=1)
    alpha = agreement.krippendorff_alpha(counts, "nominal")
    kappa = agreement.fleiss_kappa(counts)["value"]
    n = 200 * 4
    assert 1 - alpha == pytest.approx((1 - kappa) * (n - 1) / n, rel=1e-12)


def test_bootstrap_comparison_paired_and_unpaired():
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, size=120)
    good = np.where(rng.random((120, 4)) < 0.8, truth[:, None], rng.integers(0, 3, size=(120, 4)))
    poor = np.where(rng.random((120, 4)) < 0.3, truth[:, None], rng.integers(0, 3, size=(120, 4)))
    ca = np.stack([(good == k).sum(axis=1) for k in range(3)], axis=1)
    cb = np.stack([(poor == k).sum(axis=1) for k in range(3)], axis=1)
    same = agreement.bootstrap_fleiss_difference(ca, ca, paired=True, n_boot=300)
    assert same["diff"] == 0.0 and same["ci"] == [0.0, 0.0] and same["p"] == 1.0
    diff = agreement.bootstrap_fleiss_difference(ca, cb, paired=True, n_boot=500, seed=2)
    want = agreement.fleiss_kappa(ca)["value"] - agreement.fleiss_kappa(cb)["value"]
    assert diff["diff"] == pytest.approx(want, abs=1e-15)
    assert diff["ci"][0] > 0 and diff["p"] < 1e-6
    again = agreement.bootstrap_fleiss_difference(ca, cb, paired=True, n_boot=500, seed=2)
    assert again == diff  # seeded: reproducible
    unpaired = agreement.bootstrap_fleiss_difference(ca, cb[:100], paired=False, n_boot=500)
    assert unpaired["paired"] is False and unpaired["ci"][0] > 0


def test_pairwise_cohen_mean_over_reader_pairs():
    reader = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4, dtype=object)
    case = np.array(["1", "2", "3", "4"] * 3, dtype=object)
    score = np.array([0, 1, 2, 2, 0, 1, 2, 2, 0, 1, 1, 2])
    res = agreement.pairwise_cohen(reader, case, score, 3)
    ab = agreement.cohen_kappa([[1, 0, 0], [0, 1, 0], [0, 0, 2]])["value"]
    ac = agreement.cohen_kappa([[1, 0, 0], [0, 1, 0], [0, 1, 1]])["value"]
    assert res["mean"]["unweighted"] == pytest.approx((ab + 2 * ac) / 3, abs=1e-15)
    assert len(res["pairs"]) == 3 and res["n_pairs_undefined"] == 0


# Gwet (2014) Handbook of Inter-Rater Reliability data sets with missing ratings; Fleiss' kappa
# with Gwet's standard error and t_{N-1} interval as printed by irrCAC (kgwet/irrCAC, and its
# Python port's tests): value, se, ci.
_ = None
GWET = {
    "raw_5observers": ([[1, 1, 2, _, 0, 0, 1, 1, 2, 2, _, 0, 1, 3, 1],
                        [1, 1, 3, 0, 0, 0, 0, _, 2, 1, 1, 0, 2, 3, 1],
                        [2, 0, 3, 0, 0, 0, 2, 2, 2, 1, 0, 0, 2, 2, 1],
                        [_, 1, 3, _, _, _, _, 0, _, 1, 0, 0, 2, 2, _],
                        [2, _, _, 0, 0, 0, 1, _, 2, _, _, _, _, 3, 1]], [0, 1, 2, 3],
                       ("0.458", "0.120", "0.199", "0.716")),
    "raw_g1g2": ([list("abccbadab") + [_, _, _] + list("bb"), list("abccbbdabe") + [_, _] + list("ba"),
                  [_] + list("cccbcdbbeaccc"), list("abccbddabea") + [_] + list("bb")], list("abcde"),
                 ("0.657", "0.150", "0.333", "0.981")),
    "raw_gender": (["aaaaabbbcaaaaab", "aaaababccaaaaba", "abbcaabbcabbcaa", "ccccaabbcccccaa"], list("abc"),
                   ("0.129", "0.141", "-0.172", "0.430")),
    # irrCAC's raw_4raters (Gwet 2014 p. 120): the upper limit is clipped at 1; se not printed.
    "raw_4raters": ([[1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, _],
                     [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 3], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _]], [1, 2, 3, 4, 5],
                    ("0.761", None, "0.424", "1.000")),  # irrCAC, digits=3
}


@pytest.mark.parametrize("name", list(GWET))
def test_fleiss_kappa_gwet_se_irrcac(name):
    rows, categories, (value, se, lo, hi) = GWET[name]
    counts = np.array([[sum(r[u] == c for r in rows) for c in categories] for u in range(len(rows[0]))])
    res = agreement.fleiss_kappa(counts)
    assert_printed(res["value"], value)
    if se is not None:
        assert_printed(res["se"], se)
    assert_printed(res["ci"][0], lo)
    assert_printed(res["ci"][1], hi)


def test_bootstrap_with_zero_spread_gives_no_p_for_a_non_zero_difference():
    # A: perfect agreement (κ = 1 in every resample where it is defined); B: the two readers
    # always disagree in the same way (κ = −1 in every resample). Every replicate gives 2:
    # se = 0, and z = 2/0 is no p-value (before: p = 0).
    a = np.array([[2, 0], [0, 2]] * 5)
    b = np.array([[1, 1]] * 10)
    res = agreement.bootstrap_fleiss_difference(a, b, paired=False, n_boot=200)
    assert res["diff"] == 2.0 and res["se"] == 0.0 and res["ci"] == [2.0, 2.0]
    assert res["p"] is None and "zero spread" in res["note"]
