"""Diagnostic accuracy and paired comparisons: DTComPair's documented example (Paired1)."""

from __future__ import annotations

import numpy as np
import pytest

from elastogan.errors import UserError
from elastogan.eval import diagnostic
from published import assert_printed

# DTComPair `Paired1` (hypothetical study, 712 subjects), ftable(d, y1, y2) as printed in the
# package documentation: d[y1][y2] diseased, nd[y1][y2] non-diseased.
PAIRED1 = diagnostic.PairedTable(d=np.array([[32, 22], [78, 319]]), nd=np.array([[155, 22], [53, 31]]))


def _calls(t: diagnostic.PairedTable):
    truth, y1, y2 = [], [], []
    for disease, tab in ((1, t.d), (0, t.nd)):
        for a in (0, 1):
            for b in (0, 1):
                truth += [disease] * int(tab[a, b])
                y1 += [a] * int(tab[a, b])
                y2 += [b] * int(tab[a, b])
    return np.array(truth), np.array(y1), np.array(y2)


def test_table_from_calls_round_trips():
    t = diagnostic.PairedTable.from_calls(*_calls(PAIRED1))
    np.testing.assert_array_equal(t.d, PAIRED1.d)
    np.testing.assert_array_equal(t.nd, PAIRED1.nd)


def test_mcnemar_sesp_dtcompair():
    res = diagnostic.paired_sens_spec(PAIRED1)
    sens, spec = res["sensitivity"], res["specificity"]
    assert_printed(sens["test1"], "8.802661e-01")
    assert_printed(sens["test2"], "7.560976e-01")
    assert_printed(sens["diff"], "-1.241685e-01")
    assert_printed(sens["chi2"], "3.136000e+01")
    assert_printed(sens["p"], "2.143518e-08")
    assert_printed(spec["test1"], "6.781609e-01")
    assert_printed(spec["test2"], "7.969349e-01")
    assert_printed(spec["diff"], "1.187739e-01")
    assert_printed(spec["chi2"], "1.281333e+01")
    assert_printed(spec["p"], "3.441579e-04")


def test_kosinski_wgs_dtcompair():
    res = diagnostic.paired_predictive_values(PAIRED1)
    ppv, npv = res["ppv"], res["npv"]
    for key, printed in (("test1", "0.82536383"), ("test2", "0.86548223"), ("diff", "0.04011841"),
                         ("statistic", "5.46588745"), ("p", "0.01939120")):
        assert_printed(ppv[key], printed)
    for key, printed in (("test1", "7.662338e-01"), ("test2", "6.540881e-01"), ("diff", "-1.121457e-01"),
                         ("statistic", "1.653540e+01"), ("p", "4.775012e-05")):
        assert_printed(npv[key], printed)


def test_mcnemar_presidential_approval():
    """Agresti (1990, p. 350) approval of the President's performance, 1600 people surveyed twice
    (approve/approve 794, approve/disapprove 150, disapprove/approve 86, 570); R's
    ``mcnemar.test(Performance, correct = FALSE)`` prints chi-squared = 17.356, p-value = 3.099e-05."""
    res = diagnostic.mcnemar(150, 86)
    assert_printed(res["chi2"], "17.356")
    assert_printed(res["p"], "3.099e-05")


def test_mcnemar_hand_case_and_no_discordance():
    # b = 10, c = 2: chi2 = 64/12; exact p = 2 P(X <= 2 | 12, 1/2) = 2 * 79/4096
    res = diagnostic.mcnemar(10, 2)
    assert res["chi2"] == pytest.approx(64 / 12, rel=1e-15)
    assert res["p_exact"] == pytest.approx(2 * 79 / 4096, rel=1e-12)
    assert diagnostic.mcnemar(0, 0)["p"] == 1.0


def test_accuracy_counts_and_exact_ci():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    call = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    acc = diagnostic.accuracy(truth, call)
    assert acc["counts"] == {"tp": 3, "fn": 1, "tn": 5, "fp": 1}
    assert (acc["sensitivity"]["value"], acc["specificity"]["value"]) == (0.75, 5 / 6)
    assert (acc["ppv"]["value"], acc["npv"]["value"]) == (0.75, 5 / 6)
    # Clopper-Pearson for 3/4: lower = Beta(0.025; 3, 2), upper = Beta(0.975; 4, 1) = 0.975**(1/4)
    assert acc["sensitivity"]["ci"][1] == pytest.approx(0.975 ** 0.25, rel=1e-9)


def test_ppv_undefined_without_positive_calls_is_explicit():
    acc = diagnostic.accuracy(np.array([1, 0, 1]), np.array([0, 0, 0]))
    assert acc["ppv"]["value"] is None and "undefined" in acc["ppv"]["note"]


def test_threshold_from_order_and_errors():
    order = ("2", "3", "4a", "4b", "4c", "5")
    assert diagnostic.threshold_index("4a", order) == 2.0
    with pytest.raises(UserError, match="not in --order"):
        diagnostic.threshold_index("6", order)
    with pytest.raises(UserError, match="not a number"):
        diagnostic.threshold_index("4a", None)


def test_analyse_pairs_shared_cases():
    truth, y1, y2 = _calls(PAIRED1)
    n = truth.size
    case = np.array([f"c{i}" for i in range(n)] * 2, dtype=object)
    res = diagnostic.analyse(case, np.concatenate([truth, truth]), np.array(["R1"] * 2 * n, dtype=object),
                             np.array(["y1"] * n + ["y2"] * n, dtype=object),
                             np.concatenate([y1, y2]).astype(float), threshold=1.0)
    comp = res["comparisons"][0]
    assert comp["design"] == "paired"
    assert comp["ppv"]["statistic"] == pytest.approx(5.46588745, abs=5e-9)
    assert comp["sensitivity"]["chi2"] == pytest.approx(31.36, abs=1e-12)


def test_clopper_pearson_reproduces_r_binom_test():
    """R's ?binom.test example (Conover 1971): 682 of 925, 95 percent CI 0.7076683 0.7654066."""
    from test_authenticity import BINOM_TEST

    res = diagnostic.proportion(BINOM_TEST["x"], BINOM_TEST["n"])
    assert_printed(res["value"], BINOM_TEST["estimate"])
    for got, printed in zip(res["ci"], BINOM_TEST["ci"]):
        assert_printed(got, printed)
    # As a sensitivity: 682 of 925 diseased cases called positive.
    truth = np.array([1] * 925 + [0] * 5)
    call = np.array([1] * 682 + [0] * 243 + [0] * 5)
    sens = diagnostic.accuracy(truth, call)["sensitivity"]
    assert sens["ci"] == res["ci"] and (sens["k"], sens["n"]) == (682, 925)
