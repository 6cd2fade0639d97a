"""``elastogan evaluate``: numbers per case and in summary, files, several checkpoints, bad input."""

from __future__ import annotations

import csv
import doctest
import io
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from elastogan.checkpoint import FORMAT_VERSION, save_checkpoint
from elastogan.cli import main
from elastogan.data.images import read_strain
from elastogan.data.manifest import read_manifest
from elastogan.eval import evaluate as ev
from elastogan.eval import metrics
from elastogan.eval.authenticity.texture import FEATURE_NAMES
from elastogan.display import render_emode
from elastogan.errors import UserError
from elastogan.eval.evaluate import COLUMNS, RealCase, compare_case, gallery_picks, overlay_mask, summarise
from elastogan.eval.evaluate_report import Model, checkpoint_names, evaluate, load_real_case, split_cases, train_cases
from elastogan.predict import Predictor, case_seed
from elastogan.training.config import CONFIG_DIR
from elastogan.uncertainty import strain_ratio_interval

sys.path.insert(0, str(Path(__file__).parent))
from test_training import TINY  # noqa: E402
from tiny_manifest import make_manifest  # noqa: E402

REQUIRED = ("ncc_mean", "ncc_sd", "ncc_median", "ncc_min", "ncc_max", "ssim_mean", "psnr_mean", "mae_mean", "n_cases")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--out", str(d), "--n", "6", "--size", "64", "--retest", "test", "--no-progress"]) == 0
    return d / "manifest.jsonl"


@pytest.fixture(scope="module")
def ckpt(data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "tiny"
    smaller = [arg for kv in TINY for arg in ("--set", kv)]  # the training tests' few-steps-a-second model
    assert main(["train", "--config", str(CONFIG_DIR / "tiny.yaml"), "--data", str(data), "--out", str(run),
                 "--steps", "2", *smaller, "--set", "model.noise=true", "--device", "cpu", "--no-progress"]) == 0
    return run / "checkpoints" / "last.pt"


def _roi(case) -> np.ndarray:
    x0, y0, x1, y1 = case.roi
    mask = np.zeros(read_strain(case.strain).shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_docstring_examples():
    assert doctest.testmod(ev).failed == 0


def _case(seed: int = 0, lesion: bool = True) -> RealCase:
    rng = np.random.default_rng(seed)
    h, w = 48, 40
    yy, xx = np.mgrid[:h, :w]
    les = np.hypot(yy - 24, xx - 18) < 7
    roi = (2, 3, 34, 45)
    strain = np.full((h, w), np.nan, np.float32)
    inside = np.zeros((h, w), bool)
    inside[3:45, 2:34] = True
    strain[inside] = (np.where(les, 0.2, 0.7) + rng.normal(0, 0.05, (h, w)))[inside]
    bmode = rng.integers(60, 200, (h, w), dtype=np.uint8)
    emode = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return RealCase("c", bmode, strain, roi, emode, les if lesion else None, 4)


def test_a_case_against_itself_is_perfect():
    real = _case()
    row = compare_case(real, real.emode, real.strain)
    assert list(row) == list(COLUMNS)
    for k in ("ncc", "ncc_emode", "ssim", "ncc_lesion", "ssim_lesion"):
        assert row[k] == pytest.approx(1.0, abs=1e-12), k
    assert row["mae"] == 0 and row["psnr"] == math.inf and row["mae_lesion"] == 0
    assert row["strain_ratio_real"] == row["strain_ratio_synthetic"] > 1
    assert row["strain_ratio_error_abs"] == 0 and row["strain_ratio_error_rel"] == 0
    assert row["tsukuba_real"] == row["tsukuba_synthetic"] and row["tsukuba_label"] == 4 and row["note"] is None


def test_known_values_for_inverted_and_affine_maps():
    real = _case()
    inverted = compare_case(real, real.emode, 1.0 - real.strain)
    assert inverted["ncc"] == pytest.approx(-1.0, abs=1e-12)
    affine = compare_case(real, real.emode, 0.5 * real.strain + 0.25)
    inside = real.roi_mask
    assert affine["ncc"] == pytest.approx(1.0, abs=1e-12)
    assert affine["mae"] == pytest.approx(np.mean(np.abs(0.25 - 0.5 * real.strain[inside])), rel=1e-6)
    assert affine["psnr"] == pytest.approx(metrics.psnr(real.strain, 0.5 * real.strain + 0.25, inside))
    # The ratio of a map 0.5 s + 0.25 is (0.5 ref + 0.25) / (0.5 les + 0.25): recomputed by hand.
    les, ref_ratio = real.strain[real.lesion], affine["strain_ratio_real"]
    les_mean = float(np.mean(les))
    ref_mean = ref_ratio * les_mean
    assert affine["strain_ratio_synthetic"] == pytest.approx((0.5 * ref_mean + 0.25) / (0.5 * les_mean + 0.25), rel=1e-5)


def test_the_strain_ratio_of_the_mean_of_k_draws_is_predict_s_value_and_averages_out_one_draw_s_swing():
    """Draws whose lesion is shifted by offsets that cancel: each draw's ratio is off, the mean map's
    is the real one — and it is the value ``predict --samples K`` reports for the same draws."""
    real = _case()
    offsets = np.array([0.1, -0.1, 0.06, -0.06, 0.03, -0.03, 0.08, -0.08], np.float32)
    draws = np.stack([np.where(real.lesion, real.strain + o, real.strain) for o in offsets]).astype(np.float32)
    emode = render_emode(real.bmode, draws[0], real.roi)
    row = compare_case(real, emode, draws[0], draws)
    assert row["strain_ratio_mean_of_samples"] == pytest.approx(row["strain_ratio_real"], rel=1e-5)
    assert row["strain_ratio_mean_of_samples"] == pytest.approx(
        strain_ratio_interval(draws, real.lesion, real.roi)["value"], rel=1e-6)
    # draw 0's lesion is 0.1 softer: its ratio (reference / lesion) is too low by about a third
    assert row["strain_ratio_error_rel"] < -0.25
    assert abs(row["strain_ratio_error_rel_mean_of_samples"]) < 1e-5
    s = summarise([row])
    assert s["strain_ratio_mare"] == pytest.approx(abs(row["strain_ratio_error_rel"]))
    assert s["strain_ratio_mare_mean_of_samples"] < 1e-5
    # one output: the mean of its draws is that output
    one = compare_case(real, emode, draws[0])
    assert one["strain_ratio_mean_of_samples"] == one["strain_ratio_synthetic"]
    assert one["strain_ratio_error_rel_mean_of_samples"] == one["strain_ratio_error_rel"]


def test_a_patch_clipped_to_the_hardest_colour_is_counted_as_saturated():
    """A draw whose 10×8 block is clipped to 0 (the display's hardest colour): that block's share
    of the 32×42 ROI, where the real map (strain 0.2 and 0.7 ± 0.05) has none."""
    real = _case()
    draw = real.strain.copy()
    draw[10:20, 5:13] = 0.0
    row = compare_case(real, real.emode, draw)
    assert row["saturated_real"] == 0.0
    assert row["saturated_synthetic"] == pytest.approx(80 / (32 * 42))
    s = summarise([row])
    assert s["saturated_synthetic_mean"] == pytest.approx(80 / (32 * 42)) and s["saturated_real_max"] == 0.0
    with pytest.raises(metrics.MetricError, match="no finite pixel"):
        metrics.saturated_fraction(np.full((4, 4), np.nan))


def test_emode_ncc_leaves_out_the_drawn_colour_bar():
    """A ROI under the colour bar and its labels: the overlay (drawn alike on both) is left out."""
    c = _case()
    roi = (0, 0, 40, 48)
    strain = np.nan_to_num(c.strain, nan=0.5)
    real = RealCase("c", c.bmode, strain, roi, render_emode(c.bmode, strain, roi, colorbar=True), c.lesion)
    row = compare_case(real, render_emode(c.bmode, strain, roi, colorbar=False), strain)
    assert row["ncc_emode"] == pytest.approx(1.0, abs=1e-12)
    assert overlay_mask(48, 40)[:, :20].sum() == 0 and overlay_mask(48, 40)[20:30, 36].all()


def test_undefined_values_are_none_with_a_note_and_counted():
    real = _case(lesion=False)
    flat = np.where(np.isfinite(real.strain), 0.5, np.nan).astype(np.float32)
    row = compare_case(real, real.emode, flat)
    assert row["ncc"] is None and "constant" in row["note"] and row["mae"] is not None
    assert row["ncc_lesion"] is None and row["tsukuba_real"] is None and "no lesion mask" in row["note"]
    good = compare_case(real, real.emode, real.strain)
    s = summarise([row, good])
    assert s["n_cases"] == 2 and s["ncc_n"] == 1 and s["ncc_n_undefined"] == 1 and s["ncc_mean"] == pytest.approx(1.0)
    assert s["psnr_n"] == 1 and s["psnr_n_infinite"] == 1
    assert s["ncc_lesion_mean"] is None and s["tsukuba"] is None


def test_summary_numbers_are_those_of_the_rows():
    rows = [dict.fromkeys(COLUMNS) | {"ncc": v, "strain_ratio_error_rel": e, "tsukuba_real": a, "tsukuba_synthetic": b}
            for v, e, a, b in [(0.5, 0.1, 4, 4), (0.7, -0.3, 5, 4), (0.9, 0.2, "cyst", "cyst")]]
    s = summarise(rows)
    assert (s["ncc_mean"], s["ncc_median"], s["ncc_min"], s["ncc_max"]) == pytest.approx((0.7, 0.7, 0.5, 0.9))
    assert s["ncc_sd"] == pytest.approx(0.2)
    assert s["strain_ratio_mare"] == pytest.approx(0.2)
    assert s["tsukuba_agreement"] == pytest.approx(2 / 3) and s["tsukuba"]["n_with_cyst"] == 1


def test_the_summary_correlates_each_case_s_spread_with_its_error():
    """``sd_ncc_spearman``: across cases, the mean sd of the draws against 1 − NCC of their mean —
    planted, the cases whose draws spread more are the worse estimated, in the same order (ρ = 1)."""
    from elastogan.eval.uncertainty import calibration

    sd = [0.02, 0.05, 0.03, 0.08, 0.06, 0.04]
    ncc = [0.90, 0.72, 0.80, 0.55, 0.60, 0.78]
    rows = [dict.fromkeys(COLUMNS) | {"ncc": n, "ncc_mean_of_samples": n, "sd_mean": v} for v, n in zip(sd, ncc)]
    s = summarise(rows)
    assert s["sd_ncc_spearman"] == pytest.approx(calibration.sd_ncc_spearman(sd, ncc))
    assert s["sd_ncc_spearman"] == pytest.approx(1.0)
    rows[3]["ncc_mean_of_samples"] = rows[3]["ncc"] = 0.99  # the widest draws now the best: the correlation falls
    assert summarise(rows)["sd_ncc_spearman"] < 0.5


def test_gallery_spreads_over_the_ncc_ranking():
    rows = [{"ncc": v} for v in (0.5, None, 0.9, 0.1, 0.7)]
    assert gallery_picks(rows, 3) == [3, 4, 1]  # worst, middle, last (undefined sorts last)
    assert gallery_picks(rows, 10) == [3, 0, 4, 2, 1] and gallery_picks(rows, 0) == []


def test_checkpoint_names_are_short_and_unique():
    assert checkpoint_names(["runs/a/checkpoints/best.pt"]) == ["best"]
    assert checkpoint_names(["runs/a/checkpoints/best.pt", "runs/b/checkpoints/best.pt"]) == ["a/best", "b/best"]
    assert checkpoint_names(["x/best.pt", "x/last.pt"]) == ["best", "last"]
    assert checkpoint_names(["a/checkpoints/x.pt", "a/x.pt"]) == ["checkpoints/x", "a/x"]
    assert checkpoint_names(["m.pt", "m.pth"]) == ["m.pt", "m.pth"]


def test_real_data_against_itself(data, tmp_path):
    """The real images as the 'model': NCC 1, SSIM 1, MAE 0, PSNR infinite, Tsukuba κ 1;
    per_case.csv is what `elastogan stats report` reads."""
    cases = split_cases(data, "test")
    out = tmp_path / "self"
    evaluate({"self": lambda real: (real.emode, real.strain)}, cases, out, source={"split": "test"}, gallery=2,
             authenticity=False)
    m = json.loads((out / "metrics.json").read_text())
    assert set(REQUIRED) <= set(m) and m["n_cases"] == len(cases) == 2
    for k in ("ncc_mean", "ncc_min", "ncc_max", "ncc_emode_mean", "ssim_mean", "ncc_lesion_mean"):
        assert m[k] == pytest.approx(1.0, abs=1e-9), k
    assert m["ncc_sd"] == pytest.approx(0.0, abs=1e-9) and m["mae_mean"] == 0.0
    assert m["psnr_mean"] is None and m["psnr_n_infinite"] == 2
    assert m["strain_ratio_mare"] == 0.0 and m["tsukuba_agreement"] == 1.0
    # The ceilings: the scanner's map against the simulator's true strain and against a re-scan.
    oracle = [metrics.ncc(read_strain(Path(c.source["true_strain"])), read_strain(c.strain), _roi(c)) for c in cases]
    retest = [metrics.ncc(read_strain(Path(c.source["retest_strain"])), read_strain(c.strain), _roi(c)) for c in cases]
    assert m["ncc_oracle_mean"] == pytest.approx(np.mean(oracle)) and m["ncc_retest_mean"] == pytest.approx(np.mean(retest))
    assert all(0.3 < v < 1 for v in oracle + retest), (oracle, retest)
    assert m["ncc_over_oracle"] == pytest.approx(1 / np.mean(oracle)) and m["ncc_over_oracle"] > 1  # a scan is no estimate
    assert m["ncc_over_retest"] == pytest.approx(1 / np.mean(retest))
    # A model that draws one output: its mean of K draws is that output, and it has no spread.
    assert m["samples"] == 1 and m["ncc_mean_of_samples_mean"] == 1.0 and m["ncc_lesion_mean_of_samples_mean"] == 1.0
    assert m["ncc_mean_of_samples_over_oracle"] == pytest.approx(m["ncc_over_oracle"])
    assert m["coverage_90"] is None and m["sd_error_spearman"] is None and m["sd_ncc_spearman"] is None
    assert any(n.startswith("samples: the model draws one output") for n in m["notes"])
    # the radiologist's measurements (issue 14): a case against itself agrees exactly
    ba = m["measurements"]["bland_altman"]
    assert ba["strain_ratio"]["n"] == 2 and ba["strain_ratio"]["bias"] == 0.0 and ba["strain_ratio"]["sd"] == 0.0
    assert ba["ei_b"]["bias"] == 0.0 and ba["ei_b"]["n"] == 2
    assert ba["strain_ratio_real_vs_true"]["n"] == 2  # the phantoms' FEM strain ratio
    assert m["measurements"]["tsukuba"]["synthetic_vs_real"]["agreement"] == 1.0
    assert (out / "bland_altman.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "### Measurements: real vs synthetic elastogram" in md and "![Bland–Altman, synthetic vs real](bland_altman.png)" in md
    assert "| EI/B, synthetic − real | 2 | 0.000 [0.000, 0.000] | 0.000 to 0.000 |" in md
    assert f"| one draw / test–retest | {1 / np.mean(retest):.3f} (1.000 / {np.mean(retest):.3f}) | ≥ 0.85 |" in md
    assert f"| its ceiling: the oracle, true FEM strain vs scanner | {np.mean(oracle):.3f} |" in md
    rows = _read_csv(out / "per_case.csv")
    assert [float(r["ncc_oracle"]) for r in rows] == pytest.approx(oracle)
    assert [r["case"] for r in rows] == [c.id for c in cases] and all(float(r["ncc"]) == 1.0 for r in rows)
    assert [r["tsukuba_label"] for r in rows] == [str(c.tsukuba) for c in cases]
    same = np.mean([r["tsukuba_real"] == r["tsukuba_label"] for r in rows])
    assert m["tsukuba_vs_label"]["real"] == m["tsukuba_vs_label"]["synthetic"]
    assert m["tsukuba_vs_label"]["real"]["agreement"] == pytest.approx(same)
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(out / "per_case.csv", export / "per_case.csv")
    assert main(["stats", "report", str(export)]) == 0
    rep = json.loads((export / "report" / "report.json").read_text())
    assert rep["image_metrics"]["ncc"]["mean"] == 1.0 and rep["image_metrics"]["ncc"]["n"] == 2
    assert "observers" not in rep
    # with the run's metrics.json and the readers' answers: the ceilings, readers beside observers
    shutil.copy(out / "metrics.json", export / "metrics.json")
    (export / "answers.csv").write_text("reader,case,is_synthetic,judged_synthetic\n"
                                        + "".join(f"r1,c{i},{i % 2},{(i // 2) % 2}\n" for i in range(8)))
    assert main(["stats", "report", str(export)]) == 0
    rep = json.loads((export / "report" / "report.json").read_text())
    seen = rep["observers"]["model"]
    assert seen["ncc_oracle_mean"] == m["ncc_oracle_mean"] and seen["ncc_retest_mean"] == m["ncc_retest_mean"]
    assert seen["ncc_over_oracle"] == m["ncc_over_oracle"] and seen["coverage_90"] is None
    md = (export / "report" / "report.md").read_text()
    assert "## NCC against its ceiling, and uncertainty (elastogan evaluate)" in md
    assert f"| model | 2 | 1.000 | {m['ncc_retest_mean']:.3f} |" in md
    assert "| readers (app), overall | 0.500 [" in md and "## Authenticity without readers" in md


def _observed(acc: float, fd: float) -> dict:
    """An evaluate summary with both observers' figures on both images (one number each, apart)."""
    m = {"n_cases": 100, "ncc_mean": 0.63, "ncc_sd": 0.17, "ncc_median": 0.65, "ssim_mean": 0.5, "mae_mean": 0.1,
         "ncc_retest_mean": 0.92, "ncc_mean_of_samples_mean": 0.68, "ncc_oracle_mean": 0.89,
         "fd_texture": fd, "memorisation_ratio": 1.01}
    for i, (o, e) in enumerate((o, e) for o in ("texture", "cnn") for e in ("", "_emode")):
        a = acc + 0.01 * i
        m |= {f"c2st_{o}{e}_accuracy": a, f"c2st_{o}{e}_ci": [a - 0.05, a + 0.01], f"c2st_{o}{e}_p": 0.0004 * (i + 1),
              f"c2st_{o}{e}_auc": a + 0.005}
    return m


def test_stats_report_and_the_demo_table_show_each_checkpoint_s_observers_beside_the_readers(tmp_path):
    """``stats report`` on an export with a two-checkpoint metrics.json and the readers' answers:
    every observer's accuracy, CI, p and AUC in the readers' table, FD and memorisation per
    checkpoint; ``make demo``'s table prints the same accuracies beside NCC and its ceilings."""
    export = tmp_path / "export"
    export.mkdir()
    metrics_json = export / "metrics.json"
    metrics_json.write_text(json.dumps({"shipped": _observed(0.77, 5.4), "pix2pix": _observed(0.95, 182.8)}))
    (export / "answers.csv").write_text("reader,case,is_synthetic,judged_synthetic\n"
                                        + "".join(f"r1,c{i},{i % 2},{(i // 2) % 2}\n" for i in range(8)))
    assert main(["stats", "report", str(export)]) == 0
    rep = json.loads((export / "report" / "report.json").read_text())
    assert rep["observers"]["shipped"]["c2st_cnn_emode_auc"] == pytest.approx(0.805)
    md = (export / "report" / "report.md").read_text()
    assert "| readers (app), overall | 0.500 [" in md
    assert "| shipped: texture observer, mapped strain | 0.770 [0.720, 0.780] | <0.001 | 0.775 |" in md
    assert "| shipped: texture observer, E-mode | 0.780 [0.730, 0.790] | <0.001 | 0.785 |" in md
    assert "| pix2pix: CNN observer, E-mode | 0.980 [0.930, 0.990] | 0.002 | 0.985 |" in md
    assert "| shipped | 5.400 | 1.010 |" in md and "| pix2pix | 182.800 | 1.010 |" in md
    from elastogan.demo import results_table

    lines = results_table(metrics_json).splitlines()
    assert lines[1].split()[:2] == ["shipped", "100"] and lines[2].split()[0] == "pix2pix"
    # NCC, sd, median, retest, K-mean, oracle, C2ST texture, C2ST CNN (mapped strain), SSIM, MAE
    assert lines[1].split()[2:] == ["0.630", "±", "0.170", "0.650", "0.920", "0.680", "0.890", "0.770", "0.790",
                                    "0.500", "0.100"]
    assert lines[2].split()[9:11] == ["0.950", "0.970"]


def test_cli_with_a_trained_checkpoint(data, ckpt, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--split", "test", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    for name in ("metrics.json", "report.md", "per_case.csv", "ncc_histogram.png", "gallery.png", "strain_ratio.png"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert set(REQUIRED) <= set(m) and m["n_cases"] == 2 and m["step"] == 2 and m["model"] == "transunet"
    # a generator with noise inputs: 8 draws by default, their mean and spread
    assert m["stochastic"] is True and m["samples"] == 8 and m["coverage_90_n"] == 2 and m["sd_mean_mean"] > 0
    # the observers need 4 cases: with 2 every key is there, None, and the note says why
    assert m["c2st_texture_accuracy"] is None and m["fd_texture"] is None and "c2st_cnn_emode_auc" in m
    assert "authenticity: authenticity metrics need at least 4 cases, got 2" in m["notes"]
    # The per-case NCC is the paper's NCC of the Predictor's strain against the real one, in the ROI.
    real = load_real_case(split_cases(data, "test")[0])
    with pytest.raises(ValueError, match="source.true_strain .* is relative to its manifest; read the cases with split_cases"):
        load_real_case(read_manifest(data).split("test")[0])
    # Each case is drawn with its own seed (case_seed): no two cases share their noise.
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    _, strain = predictor.predict(real.bmode, roi=real.roi, seed=case_seed(0, real.id))
    assert not np.array_equal(strain, predictor.predict(real.bmode, roi=real.roi, seed=0)[1], equal_nan=True)
    rows = _read_csv(out / "per_case.csv")
    assert float(rows[0]["ncc"]) == pytest.approx(metrics.ncc(real.strain, strain, real.roi_mask), abs=1e-5)
    mean = predictor.sample(real.bmode, samples=8, roi=real.roi, seed=case_seed(0, real.id)).mean(axis=0)
    assert float(rows[0]["ncc_mean_of_samples"]) == pytest.approx(metrics.ncc(real.strain, mean, real.roi_mask), abs=1e-5)
    assert m["ncc_mean"] == pytest.approx(np.mean([float(r["ncc"]) for r in rows]), abs=1e-5)
    assert m["psnr_mean"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), abs=1e-4)
    md = (out / "report.md").read_text()
    assert "| metric | last | paper |" in md and "0.70 ± 0.08" in md and "![real | synthetic | difference](gallery.png)" in md
    with Image.open(out / "gallery.png") as im:
        assert im.height > 2 * 192  # two cases in the split, one row each


def test_explain_adds_the_integrated_gradients_panel_to_the_gallery(data, ckpt, tmp_path):
    """``--explain``: the gallery's fourth panel is the IG map of the mean predicted strain in
    the lesion's bounding box over the B-mode; without it the gallery is as before."""
    from elastogan.eval.evaluate_report import lesion_box
    from elastogan.eval.gallery_figure import GalleryRow, explanation_rgb, gallery_png
    from elastogan.explain import integrated_gradients

    common = ["--checkpoint", str(ckpt), "--data", str(data), "--device", "cpu", "--no-progress", "--gallery", "1",
              "--samples", "1", "--no-authenticity"]
    assert main(["evaluate", *common, "--out", str(tmp_path / "plain")]) == 0
    assert main(["evaluate", *common, "--out", str(tmp_path / "explained"), "--explain"]) == 0
    with Image.open(tmp_path / "plain" / "gallery.png") as plain, Image.open(tmp_path / "explained" / "gallery.png") as ex:
        assert ex.height == plain.height and ex.width > plain.width + 100
        shown = np.asarray(ex.convert("RGB"))
    # the panel is explanation_rgb of the predictor's integrated gradients for the picked case
    rows = _read_csv(tmp_path / "explained" / "per_case.csv")
    pick = gallery_picks([{"ncc": None if r["ncc"] == "nan" else float(r["ncc"])} for r in rows], 1)[0]
    real = load_real_case(split_cases(data, "test")[pick])
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    box = lesion_box(real)
    assert real.lesion is not None and box != real.roi
    seed = case_seed(0, real.id)  # each case is drawn with its own seed
    emode, strain = predictor.predict(real.bmode, roi=real.roi, seed=seed)
    row = GalleryRow(label="x", real_emode=real.emode, synthetic_emode=emode, bmode=real.bmode, real_strain=real.strain,
                     synthetic_strain=strain, roi=real.roi,
                     explanation=explanation_rgb(real.bmode, integrated_gradients(predictor, real.bmode, box, seed=seed).attribution,
                                                 box))
    expected = np.asarray(Image.open(io.BytesIO(gallery_png([row]))).convert("RGB"))
    assert shown.shape == expected.shape
    right = slice(shown.shape[1] * 3 // 4 + 10, None)  # the fourth panel
    assert np.abs(shown[30:, right].astype(int) - expected[30:, right].astype(int)).max() <= 2


def test_two_checkpoints_side_by_side(data, ckpt, tmp_path):
    a, b = tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt"
    for p in (a, b):
        p.parent.mkdir()
        shutil.copy(ckpt, p)
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(a), str(b), "--data", str(data), "--out", str(out),
                 "--device", "cpu", "--no-progress", "--gallery", "1", "--samples", "3", "--no-authenticity"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert list(m) == ["a/last", "b/last"]
    assert all(set(REQUIRED) <= set(v) for v in m.values())
    assert m["a/last"]["ncc_mean"] == pytest.approx(m["b/last"]["ncc_mean"], abs=1e-6)  # the same weights
    assert "| metric | a/last | b/last | paper |" in (out / "report.md").read_text()
    assert (out / "a_last" / "per_case.csv").is_file() and (out / "b_last" / "gallery.png").is_file()
    # the later checkpoint is compared case by case with the first: the same weights, no difference
    assert "paired" not in m["a/last"] and m["b/last"]["paired"]["reference"] == "a/last"
    assert m["b/last"]["paired"]["ncc"]["diff"] == pytest.approx(0.0, abs=1e-6)
    assert m["b/last"]["paired"]["ncc_mean_of_samples"]["diff"] == pytest.approx(0.0, abs=1e-6)
    assert m["a/last"]["samples"] == 3 and m["a/last"]["coverage_90"] is not None
    assert "## Case by case against a/last" in (out / "report.md").read_text()


def test_paired_comparison_of_a_worse_model(data, tmp_path):
    """The real images (perfect) against a model whose strain is the real one, noisier: per
    case, the noisy model is worse on NCC and MAE, and the paired block says so."""
    cases = split_cases(data, "test")
    rng = np.random.default_rng(0)

    def noisy(real):
        return real.emode, np.clip(real.strain + rng.normal(0, 0.2, real.strain.shape), 0, 1).astype(np.float32)

    out = tmp_path / "pair"
    evaluate({"real": lambda real: (real.emode, real.strain), "noisy": noisy}, cases, out, gallery=0, authenticity=False)
    m = json.loads((out / "metrics.json").read_text())
    pair = m["noisy"]["paired"]
    per_case = {name: _read_csv(out / name / "per_case.csv") for name in ("real", "noisy")}
    ncc = [[float(r["ncc"]) for r in per_case[name]] for name in ("noisy", "real")]
    assert pair["ncc"]["n"] == len(cases) == 2
    assert pair["ncc"]["diff"] == pytest.approx(np.mean(ncc[0]) - np.mean(ncc[1]), abs=1e-5)
    assert pair["ncc"]["diff"] < 0 and pair["ncc"]["wins_b"] == 2  # the real model better in both cases
    assert pair["mae"]["diff"] > 0 and pair["mae"]["wins_a"] == 2
    md = (out / "report.md").read_text()
    assert "## Case by case against real" in md
    assert "| MAE, strain in the ROI (lower is better) |" in md and "better in 0 of 2" in md
    # make demo prints the NCC line of the paired block under its table
    from elastogan.demo import results_table

    table = results_table(out / "metrics.json")
    header, real_line = table.splitlines()[:2]
    assert header.split()[-9:] == ["retest", "K-mean", "oracle", "C2ST", "tex", "C2ST", "CNN", "SSIM", "MAE"]
    # the ceilings beside NCC; no observers ran here, so the C2ST columns say so
    r = m["real"]
    assert f"{r['ncc_retest_mean']:7.3f} {r['ncc_mean_of_samples_mean']:7.3f} {r['ncc_oracle_mean']:7.3f}" in real_line
    assert real_line.split()[-4:-2] == ["—", "—"]
    c = pair["ncc"]
    assert f"case by case, NCC noisy − real: {c['diff']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]" in table


def _fails(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_bad_input_is_one_line_and_exit_2(data, ckpt, tmp_path, capsys):
    def run(checkpoints, manifest=data, *extra):
        return ["evaluate", "--checkpoint", *map(str, checkpoints), "--data", str(manifest),
                "--out", str(tmp_path / "o"), "--device", "cpu", "--no-progress", *extra]

    _fails(capsys, run([tmp_path / "missing.pt"]), "missing.pt: checkpoint not found")
    other = tmp_path / "other.pt"
    save_checkpoint(other, {"config": {}})
    blob = torch.load(other, weights_only=True)
    blob["format_version"] = FORMAT_VERSION + 1
    torch.save(blob, other)
    _fails(capsys, run([ckpt, other]), f"checkpoint format version {FORMAT_VERSION + 1}")
    _fails(capsys, run([ckpt, ckpt]), "is given twice")
    resized = tmp_path / "resized.pt"  # weights of another architecture than its config builds
    blob = torch.load(ckpt, weights_only=True)
    blob["config"]["model"]["base_channels"] *= 2
    torch.save(blob, resized)
    _fails(capsys, run([resized]), "checkpoint does not hold a generator this code can build")
    no_test = make_manifest(tmp_path / "no_test", splits={"train": 2})
    _fails(capsys, run([ckpt], no_test), "no case in split 'test' (splits present: train)")
    bare = tmp_path / "bare"
    src = make_manifest(bare, splits={"test": 2})
    recs = [json.loads(line) for line in src.read_text().splitlines()]
    recs[1] = {k: v for k, v in recs[1].items() if k not in ("strain", "emode", "roi")}
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    _fails(capsys, run([ckpt], src), "1 case(s) of split 'test' have no real strain map (and ROI) to compare with: c001")
    _fails(capsys, run([ckpt], data, "--split", "tset"), "unknown split 'tset'")
    assert not (tmp_path / "o").exists()


# --- K draws: the mean's NCC and the calibration of the spread (issue 11 §3) ---------------


def _sampler(error_sd, spread: float = 1.0) -> Model:
    """A toy generator that knows its error: each case's draws are ``real + δ + spread · e_k``
    with the model's own error δ ~ N(0, σ²) fixed per case and draw noise e_k ~ N(0, σ²); with
    ``spread`` 1 the real value is one more draw of N(centre, σ²): a calibrated sampler.
    ``error_sd(shape)``: σ per pixel. The same case gives the same draws at every call."""
    def draws(real: RealCase, k: int) -> np.ndarray:
        rng = np.random.default_rng(int(np.nansum(real.strain) * 1000) % 2**31)
        sd = error_sd(real.strain.shape)
        centre = real.strain + sd * rng.standard_normal(real.strain.shape)
        return (centre + spread * sd * rng.standard_normal((k, *real.strain.shape))).astype(np.float32)

    def one(real: RealCase):
        strain = draws(real, 1)[0]
        return render_emode(real.bmode, strain, real.roi, alpha=real.alpha), strain

    return Model(one=one, samples=draws)


def test_a_calibrated_sampler_covers_90_percent_and_its_mean_beats_one_draw(data, tmp_path):
    cases = split_cases(data, "test")
    uniform = _sampler(lambda shape: np.full(shape, 0.05))
    # the error's scale grows from left to right: an sd that follows it is informative
    growing = _sampler(lambda shape: np.repeat(np.linspace(0.01, 0.15, shape[1])[None], shape[0], axis=0))
    out = tmp_path / "cal"
    evaluate({"uniform": uniform, "growing": growing}, cases, out, samples=8, gallery=0, authenticity=False)
    m = json.loads((out / "metrics.json").read_text())
    for name in ("uniform", "growing"):
        s = m[name]
        assert s["samples"] == 8 and s["coverage_90_n"] == 2
        assert s["coverage_90"] == pytest.approx(0.90, abs=0.03), name  # ≈ 4 000 ROI pixels
        # one draw carries the draw noise and the model's error, the mean of 8 nearly only the error
        assert s["ncc_mean_of_samples_mean"] > s["ncc_mean"]
    assert abs(m["uniform"]["sd_error_spearman"]) < 0.1  # sd estimates of one σ: noise
    assert m["growing"]["sd_error_spearman"] > 0.3
    assert m["uniform"]["sd_mean_mean"] == pytest.approx(0.05, rel=0.05)
    rows = _read_csv(out / "growing" / "per_case.csv")
    assert np.mean([float(r["coverage_90"]) for r in rows]) == pytest.approx(m["growing"]["coverage_90"])
    md = (out / "report.md").read_text()
    assert "| coverage of the 90 % predictive interval | 0.9" in md and "| 0.85–0.95 |" in md
    assert "## Case by case against uniform" in md and "NCC of the mean of K draws, strain in the ROI (higher" in md


def test_an_overconfident_sampler_undercovers(data, tmp_path):
    cases = split_cases(data, "test")
    narrow = _sampler(lambda shape: np.full(shape, 0.05), spread=0.3)
    evaluate({"narrow": narrow}, cases, tmp_path, samples=8, gallery=0, authenticity=False)
    assert json.loads((tmp_path / "metrics.json").read_text())["coverage_90"] < 0.6


def test_samples_1_draws_nothing_more_and_the_mean_is_the_single_draw(data, tmp_path):
    cases = split_cases(data, "test")
    calls = {"samples": 0}
    base = _sampler(lambda shape: np.full(shape, 0.05))

    def counted(real, k):
        calls["samples"] += 1
        return base.samples(real, k)

    evaluate({"m": Model(one=base.one, samples=counted)}, cases, tmp_path / "k1", samples=1, gallery=0, authenticity=False)
    m = json.loads((tmp_path / "k1" / "metrics.json").read_text())
    assert calls["samples"] == 0 and m["samples"] == 1
    assert m["ncc_mean_of_samples_mean"] == m["ncc_mean"] and m["coverage_90"] is None
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        evaluate({"m": base}, cases, tmp_path / "k0", samples=0, authenticity=False)


def test_reference_maps_resolve_against_the_manifest_and_missing_ones_are_named(data, tmp_path):
    cases = split_cases(data, "test")
    assert all(Path(c.source["true_strain"]).is_absolute() and Path(c.source["retest_strain"]).is_file() for c in cases)
    real = load_real_case(cases[0])
    assert real.true_strain.shape == real.retest_strain.shape == real.strain.shape
    copy = tmp_path / "copy"
    shutil.copytree(data.parent, copy)
    gone = copy / read_manifest(copy / "manifest.jsonl").split("test")[0].source["retest_strain"]
    gone.unlink()
    with pytest.raises(UserError, match=r"1 reference map\(s\) named in source are missing: .* \(retest_strain\)"):
        split_cases(copy / "manifest.jsonl", "test")


def test_clinical_data_has_no_ceiling_and_says_why(tmp_path):
    manifest = make_manifest(tmp_path / "clinic", size=(48, 48), splits={"test": 3})
    out = tmp_path / "out"
    evaluate({"self": lambda real: (real.emode, real.strain)}, split_cases(manifest, "test"), out, gallery=0,
             authenticity=False)
    m = json.loads((out / "metrics.json").read_text())
    assert m["ncc_oracle_mean"] is None and m["ncc_oracle_n"] == 0 and m["ncc_over_oracle"] is None
    assert m["ncc_retest_mean"] is None and m["ncc_over_retest"] is None
    assert any("no case has the true strain" in n for n in m["notes"])
    assert any("elastogan simulate --retest" in n for n in m["notes"])
    assert all(r["note"] is None or "oracle" not in r["note"] for r in _read_csv(out / "per_case.csv"))


# --- authenticity without readers, wired into evaluate ---------------------------------------


def test_observers_run_per_checkpoint_and_the_real_images_are_their_own_twin(tmp_path):
    """The real maps as the 'synthetic' ones: the same texture (Fréchet distance 0) and as novel
    as themselves (memorisation ratio exactly 1); a blurred copy is told apart."""
    from scipy import ndimage

    manifest = make_manifest(tmp_path / "set", size=(48, 48), splits={"train": 6, "test": 8})

    def blurred(real):
        s = real.strain.copy()
        inside = np.isfinite(s)
        s[inside] = ndimage.gaussian_filter(np.nan_to_num(s, nan=0.5), 2.0)[inside]
        return render_emode(real.bmode, s, real.roi, colorbar=False), s

    out = tmp_path / "eval"
    evaluate({"self": lambda real: (real.emode, real.strain), "blurred": blurred}, split_cases(manifest, "test"), out,
             gallery=0, train=train_cases(manifest), cnn=False)  # the CNN observer is tested in test_authenticity
    m = json.loads((out / "metrics.json").read_text())
    same, blur = m["self"], m["blurred"]
    assert same["fd_texture"] == pytest.approx(0.0, abs=1e-9) and same["memorisation_ratio"] == 1.0
    assert blur["fd_texture"] > 1.0
    for key in ("c2st_texture", "c2st_texture_emode"):
        for s in (same, blur):
            assert 0 <= s[f"{key}_accuracy"] <= 1 and len(s[f"{key}_ci"]) == 2 and 0 <= s[f"{key}_p"] <= 1, key
    assert same["c2st_cnn_accuracy"] is None and any("CNN observer not run" in n for n in same["notes"])
    assert blur["c2st_texture_accuracy"] > 0.8 and blur["c2st_folds"] == 5
    assert "texture_table" not in same and "spectrum" not in same and "memorisation" not in same
    assert "texture_diagnosis" not in same
    assert "texture_table_emode" not in same and "texture_diagnosis_emode" not in same
    for name in ("self", "blurred"):
        for fig in ("spectrum.png", "memorisation.png"):
            with Image.open(out / name / fig) as im:
                assert im.format == "PNG"
    md = (out / "report.md").read_text()
    assert "| feature | real, mean ± sd | synthetic, mean ± sd | d | sd ratio | observer on it alone |" in md
    assert "![radially averaged power spectrum" in md
    # the blurred maps' diagnosis: less local variation than the real ones, by over a pooled sd
    blurred_section = md[md.index("## blurred"):]
    row = next(line for line in blurred_section.splitlines() if line.startswith("| local_sd_3 |"))
    assert float(row.split("|")[4]) < -1.0, row
    assert "Most telling pair:" in blurred_section and "Whole mean shift:" in blurred_section
    # the E-mode as a reader sees it, with its own diagnosis: the twin's E-modes are the real
    # ones (d 0 on every feature), the blurred strain's E-modes are smoother too
    emode_table = "Texture statistics of the E-mode in the ROI as a reader sees it"
    for name, section in (("self", md[md.index("## self"):md.index("## blurred")]), ("blurred", blurred_section)):
        assert section.count(emode_table) == 1 and section.index("mapped strain in the ROI") < section.index(emode_table)
        rows = [line.split("|") for line in section[section.index(emode_table):].split("\n\n", 2)[1].splitlines()[2:]]
        assert [r[1].strip() for r in rows] == list(FEATURE_NAMES), name
        if name == "self":
            assert all(float(r[4]) == 0.0 for r in rows)
        else:
            assert float(next(r for r in rows if r[1].strip() == "local_sd_3")[4]) < -1.0
    assert blurred_section.count("Most telling pair:") == 2
    assert f"| texture observer C2ST accuracy [95 % CI], mapped strain | {same['c2st_texture_accuracy']:.3f} [" in md


def test_finite_box_trims_a_resized_map_s_nan_rim_and_keeps_a_clean_box():
    from elastogan.eval.evaluate_report import finite_box

    m = np.full((20, 30), np.nan, np.float32)
    m[4:16, 5:25] = 0.5
    assert finite_box(m, (5, 4, 25, 16)) == (5, 4, 25, 16)
    m[4, 5:25] = np.nan  # the rim a resize leaves
    m[4:16, 24] = np.nan
    x0, y0, x1, y1 = finite_box(m, (5, 4, 25, 16))
    assert (x0, y0, x1, y1) == (5, 5, 24, 16)
    assert np.isfinite(m[y0:y1, x0:x1]).all()


def test_reference_maps_resolve_from_a_manifest_named_by_a_relative_path(tmp_path, monkeypatch):
    """`make demo` names its manifest relative to the working folder (runs/demo/data/…)."""
    from elastogan.eval.evaluate_report import load_real_case, split_cases

    data = tmp_path / "rel"
    data.mkdir()
    (data / "cases").mkdir()
    real = np.full((16, 16), np.nan, np.float32)
    real[2:14, 2:14] = np.linspace(0, 1, 144, dtype=np.float32).reshape(12, 12)
    from elastogan.data.images import write_png, write_strain

    write_png(data / "cases" / "a_bmode.png", np.zeros((16, 16), np.uint8))
    write_strain(data / "cases" / "a_strain.npy", real)
    write_strain(data / "cases" / "a_true_strain.npy", real)
    line = {"id": "a", "patient_id": "p", "split": "test", "bmode": "cases/a_bmode.png", "strain": "cases/a_strain.npy",
            "roi": [2, 2, 14, 14], "source": {"true_strain": "cases/a_true_strain.npy"}}
    (data / "manifest.jsonl").write_text(json.dumps(line) + "\n")
    monkeypatch.chdir(tmp_path)
    case = load_real_case(split_cases("rel/manifest.jsonl", "test")[0])
    assert np.array_equal(case.true_strain, real, equal_nan=True)


def test_evaluate_at_a_size_resamples_the_real_side_as_training_does(tmp_path):
    """--size N: the real maps are resampled as training resamples its frames, so the real
    images used as the model agree with themselves perfectly at that size too."""
    from elastogan.data.images import read_strain
    from elastogan.data.resize import resize_case_arrays
    from elastogan.eval.evaluate import resize_real_case
    from elastogan.eval.evaluate_report import evaluate, load_real_case, split_cases

    data = make_manifest(tmp_path / "data", size=(48, 48), splits={"test": 4})
    cases = split_cases(data, "test")
    real = load_real_case(cases[0])
    small = resize_real_case(real, 16)
    expected = resize_case_arrays({"bmode": real.bmode, "emode": real.emode, "strain": real.strain,
                                   "lesion": real.lesion, "roi": real.roi}, 16)
    assert small.bmode.shape == (16, 16) and small.roi == expected["roi"]
    assert np.array_equal(small.strain, expected["strain"], equal_nan=True)
    assert np.array_equal(read_strain(cases[0].strain), real.strain, equal_nan=True)  # the case is untouched

    def itself(r):
        return r.emode, r.strain

    evaluate({"real": itself}, cases, tmp_path / "out", size=16, samples=1, authenticity=False, gallery=0)
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["ncc_mean"] == pytest.approx(1.0) and m["size"] == 16
    with pytest.raises(UserError, match="--size must be at least 8"):
        evaluate({"real": itself}, cases, tmp_path / "out2", size=4, samples=1, authenticity=False, gallery=0)
