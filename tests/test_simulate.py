"""`elastogan simulate`: determinism across workers, shards, atomic manifest, labels."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from elastogan.cli import main
from elastogan.data.images import read_strain
from elastogan.data.manifest import read_manifest
from elastogan.sim import writer

SMALL = ["--size", "64", "--no-progress"]


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith("recipe")
    }


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    out = tmp_path_factory.mktemp("w1")
    assert main(["simulate", "--out", str(out), "--n", "6", "--seed", "3", *SMALL]) == 0
    return out


def test_same_seed_gives_identical_bytes_whatever_the_workers(one_worker, tmp_path):
    assert main(["simulate", "--out", str(tmp_path), "--n", "6", "--seed", "3", "--workers", "2", *SMALL]) == 0
    assert _digest(tmp_path) == _digest(one_worker)


def test_shards_partition_the_data_set(one_worker, tmp_path):
    for i in range(2):
        assert main(["simulate", "--out", str(tmp_path), "--n", "6", "--seed", "3", "--shard", f"{i}/2", *SMALL]) == 0
    ids = [[json.loads(l)["id"] for l in (tmp_path / f"manifest.shard-{i}-of-2.jsonl").read_text().splitlines()] for i in range(2)]
    assert not set(ids[0]) & set(ids[1])
    assert main(["manifest", "merge", str(tmp_path / "manifest.shard-0-of-2.jsonl"), str(tmp_path / "manifest.shard-1-of-2.jsonl"),
                 "--out", str(tmp_path / "manifest.jsonl")]) == 0
    merged = read_manifest(tmp_path / "manifest.jsonl")
    assert sorted(c.id for c in merged.cases) == sorted(c.id for c in read_manifest(one_worker / "manifest.jsonl").cases)
    full, sharded = _digest(one_worker), _digest(tmp_path)
    for name, digest in full.items():
        if name.startswith("cases/"):
            assert sharded[name] == digest


def test_manifest_is_valid_and_labelled(one_worker):
    m = read_manifest(one_worker / "manifest.jsonl")
    assert len(m.cases) == 6
    patients = {}
    for c in m.cases:
        patients.setdefault(c.patient_id, set()).add(c.split)
        assert c.lesion_type in ("cyst", "fibroadenoma", "carcinoma")
        assert c.pathology == ("malignant" if c.lesion_type == "carcinoma" else "benign")
        assert c.tsukuba in (1, 2, 3, 4, 5, "cyst")
        assert c.strain_ratio > 0
        s = read_strain(c.strain)
        x0, y0, x1, y1 = c.roi
        inside = s[y0:y1, x0:x1]
        assert np.isfinite(inside).all() and np.nanmin(inside) >= 0 and np.nanmax(inside) <= 1
        assert np.isnan(s).sum() == s.size - inside.size  # NaN exactly outside the ROI
    assert all(len(v) == 1 for v in patients.values())


def test_interrupted_run_leaves_no_manifest(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = writer.simulate_and_write

    def dies_on_third(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(writer, "simulate_and_write", dies_on_third)
    assert main(["simulate", "--out", str(tmp_path), "--n", "4", *SMALL]) == 130
    assert not (tmp_path / "manifest.jsonl").exists()
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--shard", "2/2"], "0 <= I < K"),
        (["--size", "50"], "multiple of 8"),
        (["--recipe", "nope.json"], "recipe not found"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys, argv, message):
    assert main(["simulate", "--out", str(tmp_path), *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_phantom_v1_recipe_is_the_reference_study_split():
    from elastogan.sim.cli import load_recipe
    from elastogan.sim.plan import make_plan

    recipe = load_recipe(Path(__file__).parents[1] / "data_manifests" / "phantom-v1.json")
    plan = make_plan(recipe["n"], recipe["seed"])
    counts = {s: sum(p.split == s for p in plan) for s in ("train", "val", "test")}
    assert counts == {"train": 882, "val": 354, "test": 100}
    splits_of = {}
    for p in plan:
        splits_of.setdefault(p.patient, set()).add(p.split)
    assert all(len(s) == 1 for s in splits_of.values())


def test_estimated_strain_follows_the_true_fem_strain(one_worker):
    # The scanner's NCC estimate must track the mechanics it imaged (it knows nothing of them).
    m = read_manifest(one_worker / "manifest.jsonl")
    corr = []
    for c in m.cases:
        est, true = read_strain(c.strain), read_strain(one_worker / c.source["true_strain"])
        ok = np.isfinite(est) & np.isfinite(true)
        corr.append(np.corrcoef(est[ok], true[ok])[0, 1])
    assert np.mean(corr) > 0.7 and min(corr) > 0.4, corr
