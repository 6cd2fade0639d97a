"""Split-conformal calibration of a sampling generator's intervals (``elastogan calibrate``):
the quantile rule, the coverage it restores on held-out cases, and the command end to end."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from elastogan.checkpoint import export_for_inference, load_checkpoint
from elastogan.cli import main
from elastogan.eval.uncertainty import calibration as cal
from elastogan.eval.uncertainty.conformal import MIN_RATIO_CASES, fit_calibration
from elastogan.predict import Predictor
from elastogan.training.config import CONFIG_DIR, load_config
from elastogan.training.trainer import train
from elastogan.uncertainty import IntervalCalibration, conformal_scale, interval_scores, summarise_samples

sys.path.insert(0, str(Path(__file__).parent))
from tiny_manifest import make_manifest  # noqa: E402


def test_conformal_quantile_is_the_finite_sample_rank():
    assert conformal_scale(np.arange(1.0, 21.0), 0.9) == 19.0  # ⌈21 · 0.9⌉ = 19
    assert conformal_scale(np.arange(1.0, 101.0), 0.9) == 91.0  # ⌈101 · 0.9⌉ = 91 (not the 90th)
    assert conformal_scale(np.array([3.0, np.nan, 1.0, 2.0, 5.0, 4.0, 6.0, 7.0, 8.0, 9.0]), 0.8) == 8.0  # NaN dropped
    with pytest.raises(ValueError, match="too few for a 90% interval"):
        conformal_scale(np.arange(8.0), 0.9)
    with pytest.raises(ValueError, match="do not vary"):
        conformal_scale(np.r_[np.zeros(50), np.full(50, np.inf)], 0.9)


def test_scores_leave_out_nan_and_the_mask_and_give_inf_for_a_wrong_zero_width_interval():
    real = np.array([[0.5, 0.7], [np.nan, 0.2]])
    mean = np.array([[0.5, 0.5], [0.5, 0.2]])
    sd = np.array([[0.0, 0.0], [0.1, 0.1]])
    s = interval_scores(real, mean, sd, samples=4, mask=np.array([[True, True], [True, False]]))
    assert s.tolist() == [0.0, np.inf]


@dataclass
class ToyCase:
    strain: np.ndarray
    roi: tuple[int, int, int, int]
    roi_mask: np.ndarray
    lesion: np.ndarray | None
    draws: np.ndarray


def toy_cases(n: int, *, confidence: float, k: int = 8, seed: int = 0) -> list[ToyCase]:
    """Cases whose real map is one draw of N(mu, sd²) while the sampler draws from
    N(mu, (confidence · sd)²): over-confident for confidence < 1. The lesion is stiffer by a
    case-wise factor the sampler also under-states."""
    rng = np.random.default_rng(seed)
    out = []
    h = w = 24
    lesion = np.zeros((h, w), bool)
    lesion[8:16, 8:16] = True
    for _ in range(n):
        sd = rng.uniform(0.02, 0.08, (h, w))
        mu = np.where(lesion, 0.3, 0.7) + 0.05 * rng.standard_normal()
        real = np.clip(mu + sd * rng.standard_normal((h, w)), 0.01, 1)
        draws = np.clip(mu + confidence * sd * rng.standard_normal((k, h, w)), 0.01, 1)
        out.append(ToyCase(real.astype(np.float32), (0, 0, w, h), np.ones((h, w), bool), lesion, draws))
    return out


def coverage(cases: list[ToyCase], scale: float) -> float:
    return float(np.mean([cal.interval_coverage(c.strain, *_interval(c, scale)) for c in cases]))


def _interval(c: ToyCase, scale: float):
    s = summarise_samples(c.draws, level=0.9, scale=scale)
    return s.lo, s.hi


def test_calibration_on_held_out_cases_restores_the_coverage_of_new_ones():
    fit_on, new = toy_cases(60, confidence=0.5, seed=1), toy_cases(60, confidence=0.5, seed=2)
    fitted = fit_calibration(lambda c: c.draws, fit_on, samples=8, source={"split": "toy"})
    assert fitted.coverage_before < 0.65  # the draws say 90 %, they cover far fewer
    assert fitted.pixel_scale == pytest.approx(2.0, rel=0.1)  # the sampler's sd is half the truth
    assert coverage(new, 1.0) < 0.65
    assert 0.88 <= coverage(new, fitted.pixel_scale) <= 0.92
    assert fitted.cases == 60 and fitted.ratio_cases == 60 and fitted.ratio_scale is not None
    # a calibrated sampler needs no widening
    honest = fit_calibration(lambda c: c.draws, toy_cases(60, confidence=1.0, seed=3), samples=8)
    assert honest.pixel_scale == pytest.approx(1.0, abs=0.08)
    assert IntervalCalibration.from_dict(fitted.to_dict()) == fitted


def test_too_few_lesions_give_no_ratio_factor_and_identical_draws_are_refused():
    few = toy_cases(MIN_RATIO_CASES - 1, confidence=0.5)
    assert fit_calibration(lambda c: c.draws, few, samples=8).ratio_scale is None
    with pytest.raises(ValueError, match="do not vary"):
        fit_calibration(lambda c: np.repeat(c.draws[:1], 8, axis=0), few, samples=8)


@pytest.fixture(scope="module")
def sampler_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformal")
    data = make_manifest(root / "data", splits={"train": 4, "val": 10})
    cfg = load_config(CONFIG_DIR / "tiny.yaml", [
        "model.base_channels=4", "model.max_channels=16", "model.num_levels=2", "model.embed_dim=16",
        "model.transformer_depth=1", "model.num_heads=2", "model.norm_groups=2", "model.noise=true",
        "model.noise_init=0.5", "loss.adv_emode=0", "loss.adv_strain=0", "loss.recon_samples=2",
        "optim.batch_size=2", "optim.steps=2", "data.image_size=32", "data.workers=0",
        "run.log_every=1", "run.val_every=2", "run.ckpt_every=2", "run.samples=1",
    ])
    last = train(cfg, data=data, out=root / "run", progress=False)
    return data, Path(last)


def test_calibrate_command_stores_the_factors_and_every_reader_of_the_checkpoint_uses_them(sampler_run, tmp_path, capsys):
    data, last = sampler_run
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--checkpoint", str(last), "--data", str(data), "--samples", "4", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "val: 10 case(s), K = 4" in printed and "strain ratio not fitted" in printed
    stored = load_checkpoint(out)["uncertainty"]
    assert stored["samples"] == 4 and stored["cases"] == 10 and stored["source"]["split"] == "val"
    assert "uncertainty" not in load_checkpoint(last)  # --out leaves the original alone
    # the inference export keeps the factors, and the predictor applies them
    export_for_inference(out, tmp_path / "export.pt")
    p = Predictor.from_checkpoint(tmp_path / "export.pt", device="cpu")
    assert p.interval_scale == pytest.approx(stored["pixel_scale"]) and p.ratio_scale == 1.0
    draws = p.sample(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8), samples=4)
    wide, raw = p.summarise(draws), summarise_samples(draws)
    inside = np.isfinite(raw.sd) & (raw.sd > 0)
    assert np.allclose((wide.hi - wide.mean)[inside], p.interval_scale * (raw.hi - raw.mean)[inside], rtol=1e-4)
    assert np.array_equal(wide.sd, raw.sd)  # the sd map itself is not rescaled


def test_calibrate_refuses_a_generator_that_does_not_sample_and_bad_options(sampler_run, tmp_path, capsys):
    data, last = sampler_run
    ckpt = load_checkpoint(last)
    det = tmp_path / "det.pt"
    from elastogan.checkpoint import save_checkpoint
    cfg = dict(ckpt["config"], model=dict(ckpt["config"]["model"], noise=False))
    state = {k: v for k, v in ckpt["generator_ema"].items() if ".noise" not in k and "noise." not in k}
    save_checkpoint(det, {"config": cfg, "step": 1, "generator_ema": state})
    if Predictor.from_checkpoint(det, device="cpu").stochastic:
        pytest.fail("the stripped checkpoint should build a deterministic generator")
    before = det.read_bytes()
    assert main(["calibrate", "--checkpoint", str(det), "--data", str(data), "--no-progress"]) == 2
    assert "draws one output" in capsys.readouterr().err
    assert det.read_bytes() == before
    assert main(["calibrate", "--checkpoint", str(last), "--data", str(data), "--samples", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_evaluate_reports_coverage_with_and_without_the_stored_factor(sampler_run, tmp_path):
    import json

    data, last = sampler_run
    cal_pt = tmp_path / "cal.pt"
    assert main(["calibrate", "--checkpoint", str(last), "--data", str(data), "--samples", "4", "--out", str(cal_pt),
                 "--no-progress"]) == 0
    scale = load_checkpoint(cal_pt)["uncertainty"]["pixel_scale"]
    for ckpt, expected in ((last, 1.0), (cal_pt, scale)):
        out = tmp_path / f"eval_{ckpt.stem}"
        assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--split", "val", "--samples", "4",
                     "--no-authenticity", "--gallery", "0", "--no-progress", "--out", str(out)]) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert m["interval_scale"] == pytest.approx(expected)
        if expected == 1.0:
            assert m["coverage_90"] == pytest.approx(m["coverage_90_raw"])
        else:
            # fitted on these very cases: the widened interval covers at least 90 % of their pixels
            assert scale > 1.0 and m["coverage_90"] >= 0.89 > m["coverage_90_raw"]
