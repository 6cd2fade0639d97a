"""`elastogan simulate --simulator v2`: files, labels, cine, determinism, recipes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from elastogan.cli import main

SMALL = ["--size", "64", "--no-progress"]


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def v2(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("v2")
    recipe = out.parent / "v2-recipe.json"
    recipe.write_text(json.dumps({"n": 6, "seed": 3, "retest": ["test"],
                                  "config": {"simulator": "v2", "size": 64, "fem_elements": 32}}))
    assert main(["simulate", "--recipe", str(recipe), "--out", str(out), "--no-progress"]) == 0
    return out


def test_v2_cases_carry_lexicon_labels_birads_cine_and_quality(v2):
    from elastogan.data.manifest import read_manifest

    assert main(["manifest", "validate", str(v2 / "manifest.jsonl")]) == 0
    m = read_manifest(v2 / "manifest.jsonl")
    records = [json.loads(line) for line in (v2 / "manifest.jsonl").read_text().splitlines()]
    for rec, case in zip(records, m.cases):
        src = rec["source"]
        assert rec["birads"] in ("2", "3", "4a", "4b", "4c", "5") and case.birads == rec["birads"]
        assert src["simulator_version"] == "v2" and src["composition"] in "abcd"
        assert set(src["lexicon"]) >= {"shape", "orientation", "margin", "echo_pattern", "posterior", "calcifications"}
        if rec["lesion_type"] == "cyst" and src["lexicon"]["echo_pattern"] == "anechoic" \
                and src["lexicon"]["margin"] == "circumscribed":
            assert rec["birads"] == "2"
        cine = np.load(v2 / src["cine_bmode"])
        strain = np.load(v2 / src["cine_strain"])
        quality = np.load(v2 / src["quality"])
        n_frames = src["scanner"]["n_frames"]
        assert cine.shape == (n_frames, 64, 64) and cine.dtype == np.uint8
        assert strain.shape == (n_frames - 1, 64, 64) and strain.dtype == np.float16
        assert quality.shape == (64, 64) and np.nanmin(quality) >= 0 and np.nanmax(quality) <= 1
        # The case's B-mode is the cine's frame at rest; its strain is inside the ROI only.
        from elastogan.data.images import read_gray, read_strain

        assert np.array_equal(read_gray(case.bmode), cine[0])
        s = read_strain(case.strain)
        x0, y0, x1, y1 = case.roi
        assert np.isfinite(s[y0:y1, x0:x1]).all() and np.isnan(s).sum() == s.size - (y1 - y0) * (x1 - x0)
        frames_in_roi = strain[:, y0:y1, x0:x1].astype(np.float32)
        assert np.isfinite(frames_in_roi).mean() > 0.5
        assert ("retest_strain" in src) == (rec["split"] == "test")


def test_v2_is_byte_identical_whatever_the_workers(v2, tmp_path):
    assert main(["simulate", "--recipe", str(v2.parent / "v2-recipe.json"), "--out", str(tmp_path), "--workers", "2",
                 "--no-progress"]) == 0
    assert _digest(tmp_path) == _digest(v2)


def test_recipes_name_the_simulator_and_v1_recipes_have_no_scanner(v2, tmp_path):
    from elastogan.sim.cli import load_recipe
    from elastogan.sim.config import SimConfig

    written = load_recipe(v2 / "recipe.json")
    assert written["config"]["simulator"] == "v2" and written["config"]["scanner"]["n_frames"] >= 2
    assert SimConfig.from_dict(written["config"]) == SimConfig(simulator="v2", size=64, fem_elements=32)
    assert "scanner" not in SimConfig().to_dict() and SimConfig().to_dict()["simulator"] == "v1"
    shipped = load_recipe(Path(__file__).parents[1] / "data_manifests" / "phantom-v2.json")
    assert shipped["config"]["simulator"] == "v2" and shipped["retest"] == ["test"]


def test_scanner_settings_are_checked_in_a_recipe(tmp_path, capsys):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"n": 1, "seed": 0, "config": {"simulator": "v2", "scanner": {"n_frames": 1}}}))
    assert main(["simulate", "--recipe", str(recipe), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "n_frames must be an integer in [2, 16]" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_the_same_tissue_seed_gives_the_same_phantom_in_a_rescan():
    from elastogan.sim.case_v2 import simulate_case_v2
    from elastogan.sim.config import SimConfig

    cfg = SimConfig(simulator="v2", size=64, fem_elements=32)
    a = simulate_case_v2(np.random.SeedSequence((5, 1)), np.random.SeedSequence((5, 1, 1)), cfg,
                         retest=np.random.SeedSequence((5, 1, 1, 9)))
    b = simulate_case_v2(np.random.SeedSequence((5, 1)), np.random.SeedSequence((5, 1, 1)), cfg)
    # The first scan does not depend on whether a re-scan was asked for.
    assert np.array_equal(a.strain, b.strain, equal_nan=True) and np.array_equal(a.bmode, b.bmode)
    roi = np.isfinite(a.strain)
    r = np.corrcoef(a.strain[roi], a.retest_strain[roi])[0, 1]
    assert 0.3 < r < 0.999  # the same tissue, another sequence and noise
