"""Power and sample size (Hillis, Obuchowski & Berbaum 2011) and the Roe–Metz simulator.

* The Van Dyke pilot against RJafroc's printed ORH/DBMH sample-size examples (Chakraborty,
  RJafroc book, chapter "ROC-DBMH sample size using RJafroc": with jackknife covariances the
  DBM and OR power formulas coincide, Hillis et al. 2005).
* Closed forms: no effect gives power α; the σ²_TR ceiling; the case scaling.
* The formula against simulation: empirical power of seeded Roe–Metz studies analysed with the
  OR test, within ±3 points at five readers × cases design points, fully crossed and split-plot
  (slow; `make test` runs them).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from elastogan.errors import UserError
from elastogan.eval.reader_stats import mrmc, power
from elastogan.eval.reader_stats.roe_metz import RoeMetz, or_test_paired, or_test_split_plot, simulate
from published import assert_printed
from test_mrmc import _vandyke


@pytest.fixture(scope="module")
def vandyke_pilot():
    res = mrmc.analyse(mrmc.arrange(*_vandyke()), "jackknife")
    params, notes = power.from_pilot(json.loads(json.dumps({"mrmc": res})))  # as read back from --out
    return params, notes, abs(res["random_readers_random_cases"]["diff"])


def test_pilot_parameters_are_mrmcaovs_variance_components(vandyke_pilot):
    params, notes, effect = vandyke_pilot
    assert_printed(params.var_tr, "0.0002004025")  # MRMCaov, fixed(reader) printout, jackknife
    assert_printed(params.var, "0.00080229")
    assert (notes["n_cases"], notes["n_readers"], notes["design"]) == (114, 5, "paired")
    assert_printed(effect, "0.04380032")


def test_power_given_readers_and_cases_rjafroc(vandyke_pilot):
    params, _, effect = vandyke_pilot
    res = power.power(params, effect, 6, 112)  # SsPowerGivenJK(dataset02, J = 6, K = 112)
    assert_printed(res["power"], "0.5555789")
    assert_printed(res["lambda"], "4.8")
    assert_printed(res["ddf"], "23.1")
    assert_printed(res["F_critical"], "4.28")


@pytest.mark.parametrize("readers, target, cases, printed", [
    (10, 0.8, 163, "0.8015625"), (10, 0.9, 236, "0.9003501"),  # SsSampleSizeKGivenJ(J = 10)
    (4, 0.8, 1089, "0.8"), (5, 0.8, 344, "0.801"), (6, 0.8, 251, "0.801"), (20, 0.8, 126, "0.802"),  # SsPowerTable
])
def test_cases_needed_rjafroc(vandyke_pilot, readers, target, cases, printed):
    params, _, effect = vandyke_pilot
    k = power.cases_needed(params, effect, readers, target)
    assert k == cases
    assert_printed(power.power(params, effect, readers, k)["power"], printed)
    assert power.power(params, effect, readers, k - 1)["power"] < target


def test_three_readers_cannot_reach_80_percent(vandyke_pilot):
    params, _, effect = vandyke_pilot
    assert power.cases_needed(params, effect, 3, 0.8) is None  # RJafroc: ">2000"
    rows = power.plan(params, effect, [3, 10])["sample_sizes"]
    assert rows[0]["cases"] is None and "not reachable" in rows[0]["note"]
    assert rows[1]["cases"] == 163


def test_closed_forms():
    p = power.ORParameters(var_tr=0.0, var=1e-3, cov1=5e-4, cov2=4e-4, cov3=3e-4, n_cases=100)
    # a vanishing effect: the rejection rate is α
    assert power.power(p, 1e-9, 5, 100, alpha=0.05)["power"] == pytest.approx(0.05, abs=1e-9)
    # twice the cases halve the error (co)variances
    assert power.power(p, 0.05, 5, 200)["denominator"] == pytest.approx((1e-3 - 5e-4 + 4 * 1e-4) / 2, rel=1e-12)
    # σ²_TR = 0, Cov2 = Cov3: λ = r·δ²/(2(Var − Cov1)) and ddf = ∞-like (t−1)(r−1)·1
    q = power.ORParameters(var_tr=0.0, var=1e-3, cov1=5e-4, cov2=3e-4, cov3=3e-4, n_cases=100)
    res = power.power(q, 0.05, 4, 100)
    assert res["lambda"] == pytest.approx(4 * 0.05**2 / (2 * 5e-4), rel=1e-12)
    assert res["ddf"] == pytest.approx(3.0, rel=1e-12)


def test_bad_arguments_are_refused():
    p = power.ORParameters(var_tr=0.0, var=1e-3, cov1=5e-4, cov2=4e-4, cov3=3e-4, n_cases=100)
    with pytest.raises(UserError, match="at least 2 readers"):
        power.power(p, 0.05, 1, 100)
    with pytest.raises(UserError, match="effect"):
        power.power(p, 0.0, 5, 100)
    with pytest.raises(UserError, match="Var ≥ Cov1"):
        power.ORParameters(var_tr=0.0, var=1e-3, cov1=2e-3, cov2=0, cov3=0, n_cases=100)
    with pytest.raises(UserError, match="paired"):
        power.from_pilot({"mrmc": {**mrmc.analyse(mrmc.arrange(*_vandyke("case3"))), "design": "nested"}})
    with pytest.raises(UserError, match="no \"mrmc\" block"):
        power.from_pilot({"modalities": {}})


# --- Roe–Metz --------------------------------------------------------------------------------

MODEL = RoeMetz(var_r=0.011, var_tr=0.011, var_c=0.3, var_tc=0.3, var_rc=0.2, var_e=0.2)


def test_roe_metz_population_auc_is_the_mean_reader_auc():
    mu = MODEL.mu_for_auc(0.85)
    assert MODEL.population_auc(mu) == pytest.approx(0.85, rel=1e-12)
    ratings, truth = simulate(MODEL, [mu], 8, 200, 200, 200, np.random.default_rng(3))
    res = or_test_paired(np.concatenate([ratings, ratings], axis=1), truth)
    assert res["diff"] == pytest.approx(0.0, abs=1e-15)
    from elastogan.eval.reader_stats.roc import delong_batch
    auc = delong_batch(ratings.reshape(200, 8, -1), truth.astype(bool))[0]
    assert auc.mean() == pytest.approx(0.85, abs=0.003)  # 1600 reader AUCs, se ≈ 0.001


def test_vectorised_or_test_equals_the_mrmc_analysis():
    ratings, truth = simulate(MODEL, [1.5, 1.8], 4, 20, 25, 3, np.random.default_rng(4))
    fast = or_test_paired(ratings, truth)
    t, r, n = ratings.shape[1:]
    i, j, k = np.nonzero(np.ones((t, r, n), bool))
    for s in range(3):
        study = mrmc.arrange(k.astype(object), truth[k], j.astype(object), i.astype(object), ratings[s, i, j, k])
        rr = mrmc.analyse(study, "delong")["random_readers_random_cases"]
        assert fast["F"][s] == pytest.approx(rr["F"], rel=1e-10)
        assert fast["df2"][s] == pytest.approx(rr["df2"], rel=1e-10)
        assert fast["p"][s] == pytest.approx(rr["p"], rel=1e-9)


def _pilot_parameters(mu: list[float], rng: np.random.Generator, n_studies: int) -> power.ORParameters:
    """The OR parameters of a 5-reader, 100-case study: the mean of their estimates over
    ``n_studies`` simulated pilots (σ²_TR estimated as MS(T×R) − Var + Cov1 + Cov2 − Cov3)."""
    ratings, truth = simulate(MODEL, mu, 5, 50, 50, n_studies, rng)
    o = or_test_paired(ratings, truth)
    var_tr = float(np.mean(o["MS_TR"] - o["Var"] + o["Cov1"] + o["Cov2"] - o["Cov3"]))
    return power.ORParameters(max(var_tr, 0.0), float(o["Var"].mean()), float(o["Cov1"].mean()),
                              float(o["Cov2"].mean()), float(o["Cov3"].mean()), 100)


DESIGN_POINTS = [(4, 60), (6, 100), (10, 50), (5, 200), (3, 80)]  # readers, cases (half abnormal)


def _empirical_vs_formula(n_studies: int, seed: int) -> list[tuple[int, int, float, float]]:
    rng = np.random.default_rng(seed)
    mu = [1.5, 2.0]  # population AUCs 0.8513 and 0.9174: δ = 0.0661
    effect = MODEL.population_auc(mu[1]) - MODEL.population_auc(mu[0])
    params = _pilot_parameters(mu, rng, 1000)
    out = []
    for readers, cases in DESIGN_POINTS:
        ratings, truth = simulate(MODEL, mu, readers, cases // 2, cases // 2, n_studies, rng)
        empirical = float((or_test_paired(ratings, truth)["p"] < 0.05).mean())
        out.append((readers, cases, empirical, power.power(params, effect, readers, cases)["power"]))
    return out


def test_power_formula_tracks_simulation_quick():
    for readers, cases, empirical, formula in _empirical_vs_formula(300, seed=1):
        assert abs(empirical - formula) <= 3 * 0.029, (readers, cases, empirical, formula)  # 3 SEs at 300


@pytest.mark.slow
def test_power_formula_within_three_points_of_simulation():
    for readers, cases, empirical, formula in _empirical_vs_formula(4000, seed=20261202):
        assert abs(empirical - formula) <= 0.03, (readers, cases, empirical, formula)


def test_split_plot_power_with_one_block_is_the_crossed_power(vandyke_pilot):
    params, _, effect = vandyke_pilot
    assert power.power(params, effect, 6, 112, blocks=1) == {**power.power(params, effect, 6, 112), "blocks": 1}
    # one reader per block: no Cov2 − Cov3 term, each reader's AUC on cases/r cases
    res = power.power(params, effect, 4, 400, blocks=4)
    q = params.at(100)
    assert res["denominator"] == pytest.approx(q.var_tr + q.var - q.cov1, rel=1e-12)
    assert res["ddf"] == pytest.approx(3.0, rel=1e-12)
    assert power.cases_needed(params, effect, 6, 0.8, blocks=2) % 2 == 0
    with pytest.raises(UserError, match="multiple of blocks"):
        power.power(params, effect, 5, 100, blocks=2)


def test_vectorised_split_plot_test_equals_the_mrmc_analysis():
    g, j, nb = 2, 3, 30
    ratings, truth = simulate(MODEL, [1.5, 1.8], j, nb // 2, nb // 2, 2 * g, np.random.default_rng(6))
    ratings = ratings.reshape(2, g, 2, j, nb)
    fast = or_test_split_plot(ratings, truth)
    for s in range(2):
        rows = [(f"b{b}-{k}", truth[k], f"r{b * j + jj}", str(i), ratings[s, b, i, jj, k])
                for b in range(g) for i in range(2) for jj in range(j) for k in range(nb)]
        case, tr, reader, mod, rating = (np.array(c, dtype=object) for c in zip(*rows))
        study = mrmc.arrange(case, tr.astype(np.int64), reader, mod, rating.astype(np.float64))
        assert study.design == "split-plot" and len(study.blocks) == g
        rr = mrmc.analyse(study, "delong")["random_readers_random_cases"]
        assert fast["F"][s] == pytest.approx(rr["F"], rel=1e-10)
        assert fast["df2"][s] == pytest.approx(rr["df2"], rel=1e-10)


SPLIT_POINTS = [(6, 2, 120), (6, 3, 150), (4, 2, 200), (8, 4, 160), (6, 6, 300)]  # readers, blocks, cases


def _split_plot_empirical_vs_formula(n_studies: int, seed: int) -> list[tuple[int, int, int, float, float]]:
    rng = np.random.default_rng(seed)
    mu = [1.5, 2.0]
    effect = MODEL.population_auc(mu[1]) - MODEL.population_auc(mu[0])
    params = _pilot_parameters(mu, rng, 1000)  # a crossed pilot: Cov2, Cov3 of readers on the same cases
    out = []
    for readers, blocks, cases in SPLIT_POINTS:
        j, nb = readers // blocks, cases // blocks
        ratings, truth = simulate(MODEL, mu, j, nb // 2, nb // 2, n_studies * blocks, rng)
        res = or_test_split_plot(ratings.reshape(n_studies, blocks, 2, j, nb), truth)
        empirical = float((res["p"] < 0.05).mean())
        out.append((readers, blocks, cases, empirical,
                    power.power(params, effect, readers, cases, blocks=blocks)["power"]))
    return out


@pytest.mark.slow
def test_split_plot_power_formula_within_three_points_of_simulation():
    for readers, blocks, cases, empirical, formula in _split_plot_empirical_vs_formula(4000, seed=20261203):
        assert abs(empirical - formula) <= 0.03, (readers, blocks, cases, empirical, formula)
