"""The Tsukuba rule scorer reported against design labels: confusion, agreement, κ by hand."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest

from elastogan.cli import main
from elastogan.data.images import write_png, write_strain
from elastogan.data.manifest import read_manifest
from elastogan.eval import tsukuba_report
from elastogan.eval.tsukuba_report import CATEGORIES, confusion, tsukuba_agreement

N = 96
Y, X = np.mgrid[0:N, 0:N]
R = np.hypot(X - 48, Y - 48)
LESION = R < 16
ROI = [4, 4, 92, 92]
BACKGROUND, HARD, SOFT = 0.5, 0.1, 0.9

# Strain patterns the rule scorer scores as the key (tests/test_tsukuba.py pins each one).
PATTERNS = {
    1: [],
    3: [(R < 9, HARD)],
    4: [(LESION, HARD)],
    5: [(R < 23, HARD)],
    "cyst": [(LESION, SOFT)],
}


def _strain(pattern) -> np.ndarray:
    s = np.full((N, N), BACKGROUND, np.float32)
    for mask, v in PATTERNS[pattern]:
        s[mask] = v
    inside = np.zeros((N, N), bool)
    inside[ROI[1]:ROI[3], ROI[0]:ROI[2]] = True
    s[~inside] = np.nan
    return s


def _manifest(root: Path, cases: list[tuple[object, object]], *, unlabelled: int = 0) -> Path:
    """One case per (pattern, design label); ``unlabelled`` more cases without a label."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (pattern, label) in enumerate([*cases, *[(1, None)] * unlabelled]):
        cid = f"k{i}"
        anechoic = pattern == "cyst"
        write_png(root / f"{cid}_bmode.png", np.where(LESION & anechoic, 10, 150).astype(np.uint8))
        write_strain(root / f"{cid}_strain.npy", _strain(pattern))
        write_png(root / f"{cid}_lesion.png", (LESION * 255).astype(np.uint8))
        rec = {"id": cid, "patient_id": f"p{i}", "split": "test", "bmode": f"{cid}_bmode.png",
               "strain": f"{cid}_strain.npy", "lesion": f"{cid}_lesion.png", "roi": ROI}
        if label is not None:
            rec["tsukuba"] = label
        lines.append(json.dumps(rec) + "\n")
    path = root / "manifest.jsonl"
    path.write_text("".join(lines))
    return path


def test_docstring_examples():
    result = doctest.testmod(tsukuba_report)
    assert result.attempted > 0 and result.failed == 0


def test_agreement_and_kappas_by_hand():
    design = [1, 2, 3, 4, 5, 5, 4, "cyst", "cyst", 3]
    rule = [1, 2, 2, 4, 5, 4, 4, "cyst", 1, 3]
    r = tsukuba_agreement(design, rule)
    t = np.zeros((6, 6), int)
    for a, b in zip(design, rule):
        t[CATEGORIES.index(a), CATEGORIES.index(b)] += 1
    assert r["confusion"] == t.tolist() and r["n"] == 10
    assert r["agreement"] == pytest.approx(0.7)
    # Unweighted over 6 categories: po 0.7; marginals (cyst,1..5) rows .2 .1 .1 .2 .2 .2,
    # columns .1 .2 .2 .1 .3 .1 → pe 0.16; κ = 0.54 / 0.84 = 9/14.
    assert r["kappa_unweighted"]["value"] == pytest.approx(9 / 14, abs=1e-12)
    # Linear over the 8 cases scored 1-5 on both sides: po = (6 + 2·0.75)/8 = 0.9375;
    # rows 1,1,2,2,2 and columns 1,2,1,3,1 (of 8) give pe = 40.5/64; κ = 19.5/23.5 = 39/47.
    assert r["kappa_linear"]["value"] == pytest.approx(39 / 47, abs=1e-12)
    assert r["kappa_linear"]["n_cases"] == 8 and r["n_with_cyst"] == 2


def test_scores_as_strings_and_numbers_are_one_category():
    assert confusion(["3", 3.0, "cyst"], [3, "3", "cyst"]).trace() == 3
    with pytest.raises(ValueError, match="unknown Tsukuba score 6"):
        confusion([6], [1])


def test_undefined_kappa_is_none_with_a_reason():
    r = tsukuba_agreement([5, 5, "cyst"], [5, 5, "cyst"])
    assert r["agreement"] == 1.0 and r["kappa_unweighted"]["value"] == pytest.approx(1.0)
    assert r["kappa_linear"]["value"] is None and "single, common category" in r["kappa_linear"]["note"]
    assert tsukuba_agreement(["cyst"], [1])["kappa_linear"]["value"] is None


def test_constructed_manifest_gives_the_known_confusion(tmp_path, capsys):
    # (pattern the rule scorer sees, design label): rule 1,3,4,5,cyst,4 against 1,3,4,4,cyst,5.
    m = _manifest(tmp_path / "d", [(1, 1), (3, 3), (4, 4), (5, 4), ("cyst", "cyst"), (4, 5)], unlabelled=1)
    out = tmp_path / "t.json"
    assert main(["stats", "tsukuba", str(m), "--split", "test", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert [c["rule"] for c in res["cases"]] == [1, 3, 4, 5, "cyst", 4]
    assert res["skipped"] == [{"id": "k6", "reason": "no tsukuba label"}]
    expected = np.zeros((6, 6), int)
    for label, rule in [("cyst", "cyst"), (1, 1), (3, 3), (4, 4), (4, 5), (5, 4)]:
        expected[CATEGORIES.index(label), CATEGORIES.index(rule)] += 1
    assert res["confusion"] == expected.tolist()
    assert res["agreement"] == pytest.approx(4 / 6)
    # Unweighted: both marginals (cyst,1,3,4,5) = 1,1,1,2,1 of 6 → pe = 8/36; κ = (4/6 − 2/9)/(7/9) = 4/7.
    assert res["kappa_unweighted"]["value"] == pytest.approx(4 / 7, abs=1e-12)
    # Linear over 5 cases: po = (3 + 2·0.75)/5 = 0.9; marginals (1..5) 1,0,1,2,1 → pe = 16/25;
    # κ = 0.26/0.36 = 13/18.
    assert res["kappa_linear"]["value"] == pytest.approx(13 / 18, abs=1e-12)
    assert res["n_with_cyst"] == 1
    assert "kappa linear       0.722" in printed and "skipped k6: no tsukuba label" in printed


def test_true_strain_needs_the_simulators_field(tmp_path, capsys):
    m = _manifest(tmp_path / "d", [(4, 4)])
    assert main(["stats", "tsukuba", str(m), "--strain", "true"]) == 2
    err = capsys.readouterr().err.strip()
    assert "case k0" in err and "source.true_strain" in err and "\n" not in err


def test_nothing_scorable_is_a_clear_error(tmp_path, capsys):
    m = _manifest(tmp_path / "d", [], unlabelled=2)
    assert main(["stats", "tsukuba", str(m)]) == 2
    assert "no case could be scored against a design label (no tsukuba label)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--out", str(d), "--n", "4", "--size", "64", "--no-progress"]) == 0
    return d / "manifest.jsonl"


def test_simulated_set_true_strain_matches_the_simulators_own_scores(simulated, tmp_path):
    """On the FEM strain the report's scores are those the simulator recorded for each case."""
    out = tmp_path / "t.json"
    assert main(["stats", "tsukuba", str(simulated), "--strain", "true", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    cases = read_manifest(simulated).cases
    assert [c["rule"] for c in res["cases"]] == [c.source["tsukuba_rule_true_strain"] for c in cases]
    assert [c["label"] for c in res["cases"]] == [c.tsukuba for c in cases]
    t = np.array(res["confusion"])
    assert t.sum() == res["n"] == len(cases)
    assert res["agreement"] == pytest.approx(np.trace(t) / len(cases))
