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


# --- user mistakes: one line, exit 2, nothing written ------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seed", "-5"], "--seed must be a non-negative integer, got -5"),
        (["--size", "32"], "size must be an integer in [48, 1024], got 32"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["simulate", "--out", str(out), "--n", "1", *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


def test_out_that_is_a_file_or_lies_under_one(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["simulate", "--out", str(afile), "--n", "1", "--size", "48", "--no-progress"]) == 2
    assert f"{afile}: is a file, not a folder" in capsys.readouterr().err
    assert main(["simulate", "--out", str(afile / "sub"), "--n", "1", "--size", "48", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{afile / 'sub'}: lies under {afile}, which is a file" in err and "Traceback" not in err
    assert afile.read_text() == "x"


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"n": "2", "seed": 0}, "'n' must be an integer >= 1, got '2'"),
        ({"n": 2, "seed": -1}, "'seed' must be a non-negative integer, got -1"),
        ({"n": 2, "seed": True}, "'seed' must be a non-negative integer, got True"),
        ({"n": 2}, "missing 'seed'"),
        ({"n": 2, "seed": 0, "sede": 1}, "unknown recipe keys ['sede']"),
        ({"n": 2, "seed": 0, "config": {"size": "abc"}}, "config: 'size' expects int, got 'abc'"),
        ({"n": 2, "seed": 0, "config": {"f0_mhz": 5}}, "config: 'f0_mhz' expects tuple[float, float], got 5"),
        ({"n": 2, "seed": 0, "config": {"f0_mhz": [10, 6]}}, "config: f0_mhz must be a (low, high) range with low <= high"),
        ({"n": 2, "seed": 0, "config": {"nu": 0.5}}, "config: nu must be a number in [0, 0.4999], got 0.5"),
        ({"n": 2, "seed": 0, "config": {"colormap": "jet"}}, "config: colormap must be one of"),
        ({"n": 2, "seed": 0, "config": {"class_mix": {"cyst": 0.5}}}, "class_mix must be probabilities summing to 1"),
        ({"n": 2, "seed": 0, "config": {"sampling_mhz": 20}}, "below the Nyquist rate 28 MHz"),
        ({"n": 2, "seed": 0, "config": {"size": 48, "field_mm": 60}}, "(size >= 72)"),
        ({"n": 2, "seed": 0, "config": {"ncc_window_mm": 0.5, "ncc_step_mm": 0.1}}, "shorter than 3 wavelengths (0.77 mm)"),
        ({"n": 2, "seed": 0, "config": {"fem_elements": 256, "property_factor": 16}}, "at most 2048, got 256 × 16"),
        ({"n": 2, "seed": 0, "config": {"simulator": "v3"}}, "config: 'simulator' expects 'v1' | 'v2', got 'v3'"),
        ({"n": 2, "seed": 0, "config": {"colour": 1}}, "config: unknown key 'colour'"),
        ({"n": 2, "seed": 0, "retest": "test"}, "'retest' must be a list of splits (train, val, test), got 'test'"),
        ([1, 2], "a recipe is a JSON object, got list"),
    ],
)
def test_bad_recipes_name_the_field_and_write_nothing(tmp_path, capsys, recipe, message):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    out = tmp_path / "out"
    assert main(["simulate", "--recipe", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and message in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


def test_every_setting_is_checked_at_the_door():
    from elastogan.sim.config import LIMITS, SimConfig

    default = SimConfig()
    for name, (lo, hi) in LIMITS.items():
        value = getattr(default, name)
        below, above = (lo - 1, hi + 1) if isinstance(value, int) else (lo / 2 - 1e-3, hi * 2 + 1)
        for bad in (below, above, "1", None, True):
            bad = (bad, bad) if isinstance(value, tuple) and not isinstance(bad, (str, type(None))) else bad
            with pytest.raises(ValueError, match=name):
                SimConfig(**{name: bad})
    SimConfig(size=48)  # the smallest frame over the default 40 mm field


def test_a_recipe_written_by_a_run_reads_back(one_worker):
    from elastogan.sim.cli import load_recipe

    recipe = load_recipe(one_worker / "recipe.json")
    assert (recipe["n"], recipe["seed"], recipe["shard"]) == (6, 3, [0, 1])
    assert recipe["config"]["size"] == 64


# --- bench --------------------------------------------------------------------------------


def test_bench_simulate_reports_a_plausible_throughput(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "simulate", "--n", "1", "--size", "48", "--workers", "1", "--simulator", "v1", "v2",
                 "--json", str(out)]) == 0
    v1, row = json.loads(out.read_text())
    assert (v1["simulator"], row["simulator"]) == ("v1", "v2") and v1["speedup"] == 1.0
    assert row["speedup"] == pytest.approx(row["pairs_per_s"] / v1["pairs_per_s"], abs=0.01)
    assert row["workers"] == 1 and row["cases"] == 1
    assert 0 < row["seconds"] < 60
    assert row["pairs_per_s"] == pytest.approx(1 / row["seconds"], rel=0.05)
    assert row["vs_planning"] == pytest.approx(row["pairs_per_s"] / 1.6, abs=0.01)
    assert "48x48, 1 cases per run" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "0"], "--n must be at least 1, got 0"),
        (["--size", "50"], "--size: size must be a multiple of 8, got 50"),
        (["--workers", "1", "0"], "--workers must all be at least 1, got 0"),
        (["--json", "{tmp}"], "is a folder; name a file"),
    ],
)
def test_bench_simulate_refuses_bad_arguments_at_once(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["bench", "simulate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# --- physics of the lesion classes: shadowing, enhancement, the stiff halo ---------------
#
# Each check compares a simulated case with the same case (same seeds, same speckle) where
# the effect is switched off in the tissue model, so it measures the effect and not the
# tissue around one lesion.

PHYSICS = dict(size=64, fem_elements=32)  # 0.625 mm pixels; a case takes ~0.4 s


def _simulate(lesion_type: str, seed: int, monkeypatch, edit=None):
    from elastogan.sim import case as case_module
    from elastogan.sim.config import SimConfig
    from elastogan.sim.tissue import make_phantom

    def phantom(*args, **kwargs):
        p = make_phantom(*args, **kwargs)
        if edit is not None:
            edit(p)
        return p

    monkeypatch.setattr(case_module, "make_phantom", phantom)
    cfg = SimConfig(**PHYSICS, class_mix={lesion_type: 1.0})
    return case_module.simulate_case(np.random.SeedSequence((seed, 11)), np.random.SeedSequence((seed, 11, 1)), cfg)


def _below_minus_beside(case, px_mm: float) -> float:
    """Mean B-mode 1–8 mm below the lesion (its central half) minus the mean at the same
    depth half a lesion width to one width beside it."""
    ys, xs = np.nonzero(case.lesion)
    x0, x1, bottom = xs.min(), xs.max() + 1, ys.max() + 1
    w = x1 - x0
    rows = slice(bottom + round(1 / px_mm), bottom + round(8 / px_mm))
    b = case.bmode.astype(float)
    below = b[rows, x0 + w // 4 : x1 - w // 4]
    beside = np.concatenate([b[rows, max(0, x0 - w) : max(0, x0 - w // 2)].ravel(), b[rows, x1 + w // 2 : x1 + w].ravel()])
    return float(below.mean() - beside.mean())


def _no_attenuation(phantom) -> None:
    phantom.attenuation[:] = 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_carcinoma_shadows_and_cyst_enhances_behind_it(monkeypatch, seed):
    px = 40.0 / PHYSICS["size"]
    carcinoma = _below_minus_beside(_simulate("carcinoma", seed, monkeypatch), px)
    carcinoma_flat = _below_minus_beside(_simulate("carcinoma", seed, monkeypatch, _no_attenuation), px)
    cyst = _below_minus_beside(_simulate("cyst", seed, monkeypatch), px)
    cyst_flat = _below_minus_beside(_simulate("cyst", seed, monkeypatch, _no_attenuation), px)
    assert carcinoma < -10 and carcinoma < carcinoma_flat - 10, (carcinoma, carcinoma_flat)
    assert cyst > 8 and cyst > cyst_flat + 5, (cyst, cyst_flat)


def _ring_over_background(case, px_mm: float) -> float:
    """True strain in a 1.5 mm ring around the lesion over the median ≥ 6 mm away."""
    from scipy import ndimage

    s = case.true_strain
    ring = ndimage.binary_dilation(case.lesion, iterations=round(1.5 / px_mm)) & ~case.lesion
    far = ~ndimage.binary_dilation(case.lesion, iterations=round(6 / px_mm)) & np.isfinite(s)
    return float(np.nanmean(s[ring]) / np.nanmedian(s[far]))


def _no_halo(phantom) -> None:
    phantom.modulus[phantom.halo] = 1.0  # fat where the halo was


@pytest.mark.parametrize("seed", [0, 2, 3])  # carcinomas drawn with design score 5 (a halo)
def test_stiff_halo_lowers_the_strain_around_a_carcinoma(monkeypatch, seed):
    px = 40.0 / PHYSICS["size"]
    halo = _simulate("carcinoma", seed, monkeypatch)
    assert halo.tsukuba == 5 and halo.source["lesion_params"]["halo_mm"] >= 2.0
    plain = _simulate("carcinoma", seed, monkeypatch, _no_halo)
    with_halo, without = _ring_over_background(halo, px), _ring_over_background(plain, px)
    assert with_halo < 0.8 and with_halo < without - 0.2, (with_halo, without)


# --- the re-scan (test–retest) ------------------------------------------------------------
#
# A re-scan images the same phantom (tissue, scatterers, probe, ROI, display) with another
# compression and independent noise; without it the simulator must stay byte for byte what
# it was, because every data set and the shipped model depend on it.

RETEST_SMALL = dict(size=64, fem_elements=32)


def _case_digest(c) -> str:
    h = hashlib.sha256()
    for a in (c.bmode, c.emode, c.strain, c.true_strain, c.lesion):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps([c.roi, c.lesion_type, c.tsukuba, c.strain_ratio, c.source], sort_keys=True, default=str).encode())
    return h.hexdigest()


def test_without_retest_a_case_is_the_one_recorded_before_the_rescan_existed():
    from elastogan.sim.case import simulate_case
    from elastogan.sim.config import SimConfig

    # Recorded with the simulator of commit 7bf2a7a (before re-scans), numpy 2.4.6, scipy 1.17.1.
    c = simulate_case(np.random.SeedSequence((7, 1)), np.random.SeedSequence((7, 1, 1)), SimConfig(size=48, fem_elements=16))
    assert c.retest_strain is None
    assert _case_digest(c) == "4c50f17c832684ca75e61884d1e11cd094d878d8e72bf43e96530b7cff7c6d24"


def _retest_pair(seed: int, **settings):
    from elastogan.eval.metrics import ncc
    from elastogan.sim.case import simulate_case
    from elastogan.sim.config import SimConfig

    cfg = SimConfig(**RETEST_SMALL, **settings)
    c = simulate_case(np.random.SeedSequence((5, seed)), np.random.SeedSequence((5, seed, 1)), cfg,
                      retest=np.random.SeedSequence((5, seed, 1, 9)))
    roi = np.isfinite(c.strain)
    return c, ncc(c.strain, c.true_strain, roi), ncc(c.strain, c.retest_strain, roi)


def test_a_rescan_leaves_the_first_scan_as_it_was_and_images_the_same_phantom():
    from elastogan.sim.case import simulate_case
    from elastogan.sim.config import SimConfig

    c, oracle, retest = _retest_pair(0)
    plain = simulate_case(np.random.SeedSequence((5, 0)), np.random.SeedSequence((5, 0, 1)), SimConfig(**RETEST_SMALL))
    for name in ("bmode", "emode", "strain", "true_strain", "lesion"):
        assert np.array_equal(getattr(c, name), getattr(plain, name), equal_nan=True), name
    assert c.roi == plain.roi and {k: v for k, v in c.source.items() if not k.startswith("retest_")} == plain.source
    r = c.retest_strain
    assert r.dtype == np.float32 and np.array_equal(np.isnan(r), np.isnan(c.strain))  # the same ROI
    assert np.nanmin(r) >= 0 and np.nanmax(r) <= 1
    assert 0.005 <= c.source["retest_applied_strain"] <= 0.015 != c.source["applied_strain"]
    assert 0.5 < retest < 1.0 and 0.5 < oracle < 1.0, (retest, oracle)


def test_a_rescan_differs_from_the_scan_by_its_noise_and_compression_only():
    """Nearly noise-free (80 dB) at the same compression the re-scan repeats the scan; where the
    electronic noise dominates (10 dB) it agrees with the scan less than the truth does."""
    _, _, same = _retest_pair(0, snr_db=(80.0, 80.0), applied_strain=(0.01, 0.01))
    assert same > 0.999
    _, oracle, noisy = _retest_pair(0, snr_db=(10.0, 10.0))
    assert noisy < oracle - 0.05, (noisy, oracle)


def test_simulate_retest_rescans_only_the_named_splits(one_worker, tmp_path):
    assert main(["simulate", "--out", str(tmp_path), "--n", "6", "--seed", "3", "--retest", "test", *SMALL]) == 0
    plain, rescanned = _digest(one_worker), _digest(tmp_path)
    extra = {k for k in rescanned if k not in plain}
    assert all(rescanned[k] == v for k, v in plain.items() if k != "manifest.jsonl")
    m = read_manifest(tmp_path / "manifest.jsonl")
    before = [json.loads(line) for line in (one_worker / "manifest.jsonl").read_text().splitlines()]
    after = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    tested = {c.id for c in m.cases if c.split == "test"}
    assert tested and extra == {f"cases/{i}_retest_strain.npy" for i in tested}
    for b, a in zip(before, after):
        retest = {k: a["source"].pop(k) for k in list(a["source"]) if k.startswith("retest_")}
        assert a == b  # every other field as without --retest
        if a["id"] in tested:
            assert retest["retest_strain"] == f"cases/{a['id']}_retest_strain.npy"
            assert retest["retest_seed"] == [3, int(a["patient_id"][1:]), a["source"]["view"] + 1, 0x52455445]
            s = read_strain(tmp_path / retest["retest_strain"])
            assert np.array_equal(np.isnan(s), np.isnan(read_strain(tmp_path / a["strain"])))
        else:
            assert not retest
    from elastogan.sim.cli import load_recipe

    assert load_recipe(tmp_path / "recipe.json")["retest"] == ["test"]
    assert "retest" not in load_recipe(one_worker / "recipe.json")


def test_simulate_retest_refuses_an_unknown_split(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["simulate", "--out", str(out), "--n", "1", "--retest", "tset", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "--retest: retest splits must be among train, val, test; got 'tset'" in err and "Traceback" not in err
    assert not out.exists()
