"""The uncertainty ceiling (``elastogan rescan-ceiling``): K re-scans of a simulated phantom,
re-simulated from the recipe beside the manifest, scored as a sampling model's draws."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elastogan.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A small phantom-v2 data set, every split re-scanned once."""
    out = tmp_path_factory.mktemp("rescan")
    recipe = out.parent / "rescan-recipe.json"
    recipe.write_text(json.dumps({"n": 8, "seed": 5, "retest": ["train", "val", "test"],
                                  "config": {"simulator": "v2", "size": 64, "fem_elements": 32}}))
    assert main(["simulate", "--recipe", str(recipe), "--out", str(out), "--no-progress"]) == 0
    return out


def _records(data: Path) -> list[dict]:
    return [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]


def test_rescan_0_is_the_recorded_rescan_and_later_ones_are_new_scans_of_the_same_phantom(data):
    from elastogan.sim.rescan import data_recipe, planned_by_id, rescan

    recipe, cfg = data_recipe(data / "manifest.jsonl")
    rec = _records(data)[0]
    first, draws = rescan(planned_by_id(recipe)[rec["id"]], cfg, 3)
    assert np.array_equal(first, np.load(data / rec["strain"]), equal_nan=True)
    assert np.array_equal(draws[0], np.load(data / rec["source"]["retest_strain"]), equal_nan=True)
    assert draws.shape == (3, 64, 64) and all(np.array_equal(np.isnan(d), np.isnan(first)) for d in draws)  # one ROI
    assert not np.allclose(draws[1], draws[0], equal_nan=True) and not np.allclose(draws[2], draws[1], equal_nan=True)


def test_the_scanner_as_a_sampler_is_scored_as_evaluate_scores_a_model(data, tmp_path, capsys):
    out = tmp_path / "ceiling.json"
    assert main(["rescan-ceiling", "--data", str(data / "manifest.jsonl"), "--split", "train", "--cases", "4",
                 "--rescans", "4", "--out", str(out), "--no-progress"]) == 0
    got = json.loads(out.read_text())
    s, rows = got["summary"], got["rows"]
    assert s["n_cases"] == len(rows) == 4 and got["rescans"] == 4
    assert -1 <= s["sd_error_spearman"] <= 1 and 0 < s["coverage_90_raw"] <= 1 and s["sd_mean_mean"] > 0
    # the mean of four re-scans averages their noise away: it agrees with the recorded scan
    # better than one re-scan does, in every case
    assert all(r["ncc_mean_of_samples"] > r["ncc"] for r in rows), rows
    assert s["sd_error_spearman"] == pytest.approx(np.mean([r["sd_error_spearman"] for r in rows]))
    assert "SD–error Spearman" in capsys.readouterr().out


def test_a_data_set_its_recipe_does_not_reproduce_is_refused_and_nothing_is_written(data, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    rec = next(r for r in _records(copy) if r["split"] == "train")
    strain = np.load(copy / rec["strain"])
    np.save(copy / rec["strain"], strain + np.float32(0.01))
    out = tmp_path / "ceiling.json"
    assert main(["rescan-ceiling", "--data", str(copy / "manifest.jsonl"), "--split", "train", "--cases", "3",
                 "--rescans", "2", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"case {rec['id']}" in err and "does not reproduce" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--rescans", "1"], "--rescans must be at least 2"),
    (["--cases", "2"], "--cases must be at least 3"),
])
def test_bad_options_exit_2_with_a_message(data, tmp_path, capsys, argv, message):
    assert main(["rescan-ceiling", "--data", str(data / "manifest.jsonl"), "--out", str(tmp_path / "c.json"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_data_set_without_a_recipe_is_named(tmp_path, capsys):
    from tiny_manifest import make_manifest

    manifest = make_manifest(tmp_path)
    assert main(["rescan-ceiling", "--data", str(manifest), "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert str(manifest) in err and "no recipe.json" in err


def test_worker_processes_give_the_same_rows(data, tmp_path):
    rows = []
    for workers in ("1", "2"):
        out = tmp_path / f"c{workers}.json"
        assert main(["rescan-ceiling", "--data", str(data / "manifest.jsonl"), "--split", "train", "--cases", "3",
                     "--rescans", "2", "--workers", workers, "--out", str(out), "--no-progress"]) == 0
        rows.append(json.loads(out.read_text())["rows"])
    assert rows[0] == rows[1] and len(rows[0]) == 3
