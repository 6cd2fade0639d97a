"""Diagnosis on phantoms: the B-mode category, the strain ratio and both (eval/phantoms)."""

from __future__ import annotations

import numpy as np
import pytest

from elastogan.errors import UserError
from elastogan.eval.phantoms.diagnosis import BIRADS, PhantomReading, diagnosis, ratings_csv, with_strain


def test_the_elastogram_moves_only_4a_soft_and_3_hard_and_cysts():
    assert with_strain("4a", 1) == with_strain("4a", 2) == "3"
    assert with_strain("3", 4) == with_strain("3", 5) == "4a"
    assert with_strain("4b", 1) == "4b" and with_strain("4a", 3) == "4a" and with_strain("3", 2) == "3"
    assert with_strain("4c", "cyst") == "2"
    with pytest.raises(ValueError, match="unknown BI-RADS"):
        with_strain("6", 1)


def _mann_whitney_auc(score: np.ndarray, truth: np.ndarray) -> float:
    pos, neg = score[truth == 1], score[truth == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def _readings(seed: int = 0, n: int = 120) -> list[PhantomReading]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        malignant = int(rng.random() < 0.4)
        # Sensitive, not specific: malignant lesions mostly 4a or above; half the benign ones too.
        k = int(np.clip(rng.integers(2, 6) if malignant else rng.integers(0, 4), 0, 5))
        soft = rng.random() < (0.15 if malignant else 0.7)
        out.append(PhantomReading(f"c{i}", malignant, BIRADS[k], float(rng.lognormal(1.2 if malignant else 0.3, 0.5)),
                                  float(rng.lognormal(1.0 if malignant else 0.4, 0.6)), 2 if soft else 4))
    return out


def test_aucs_are_the_mann_whitney_statistics_and_the_elastogram_adds_specificity():
    r = _readings()
    res = diagnosis(r)
    truth = np.array([x.malignant for x in r])
    rank = {c: k for k, c in enumerate(BIRADS)}
    bmode = np.array([rank[x.birads] for x in r], float)
    both = np.array([rank[with_strain(x.birads, x.tsukuba)] for x in r], float)
    assert res["auc"]["B-mode BI-RADS (lexicon rule)"]["auc"] == pytest.approx(_mann_whitney_auc(bmode, truth), abs=1e-12)
    assert res["auc"]["strain ratio, true FEM strain"]["auc"] == pytest.approx(
        _mann_whitney_auc(np.array([x.ratio_true for x in r]), truth), abs=1e-12)
    assert res["auc"]["B-mode + strain (WFUMB rule)"]["auc"] == pytest.approx(_mann_whitney_auc(both, truth), abs=1e-12)
    assert res["bmode_vs_combined"]["diff"] == pytest.approx(_mann_whitney_auc(both, truth) - _mann_whitney_auc(bmode, truth))
    b, c = res["at_4a"]["B-mode"], res["at_4a"]["B-mode + strain"]
    assert c["specificity"] > b["specificity"] and b["sensitivity"] >= c["sensitivity"]


def test_one_class_is_refused():
    r = [x for x in _readings() if x.malignant == 0]
    with pytest.raises(UserError, match="at least 2 benign and 2 malignant"):
        diagnosis(r)


def test_the_ratings_run_through_the_reader_study_statistics(tmp_path):
    from elastogan.eval.reader_stats.reader_study import roc_report
    from elastogan.eval.reader_stats.stats_io import parse_order, read_ratings

    r = _readings(1)
    path = tmp_path / "ratings.csv"
    path.write_text(ratings_csv(r))
    ratings = read_ratings(path, parse_order(",".join(BIRADS)))
    res = roc_report(ratings)
    ours = diagnosis(r)["auc"]
    assert res["modalities"]["B-mode"]["readers"]["lexicon-rule"]["auc"] == pytest.approx(
        ours["B-mode BI-RADS (lexicon rule)"]["auc"], abs=1e-12)
    assert res["comparisons"][0]["design"] == "paired"
