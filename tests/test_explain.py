"""The explanation map (issue 14 §2): integrated gradients of the mean predicted strain in a
box — complete, in the B-mode's pixels, tied to what ``predict`` computes — and Adebayo et
al.'s (2018) model-randomisation sanity check on a trained model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from elastogan.data.images import read_mask
from elastogan.bmode_input import load_bmode
from elastogan.data.manifest import read_manifest
from elastogan.explain import edge_correlation, integrated_gradients, randomized_predictor, rank_correlation
from elastogan.models.config import ModelConfig
from elastogan.models.registry import build_generator
from elastogan.predict import Predictor
from elastogan.training.config import CONFIG_DIR, load_config
from elastogan.training.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from tiny_manifest import make_manifest  # noqa: E402

SMALL = dict(name="transunet", base_channels=4, max_channels=16, num_levels=2, embed_dim=16, transformer_depth=1,
             num_heads=2, norm_groups=2)


def small_predictor(input_size: int | None, *, noise: bool = False, seed: int = 0) -> Predictor:
    torch.manual_seed(seed)
    cfg = ModelConfig(**SMALL, noise=noise)
    return Predictor(build_generator(cfg), cfg, input_size=input_size, device="cpu")


def speckle(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    lesion = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 5) ** 2
    return np.clip(rng.rayleigh(60, (h, w)) * np.where(lesion, 0.4, 1.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("input_size", [None, 32])
def test_attributions_add_up_to_the_change_from_the_black_baseline(input_size):
    p = small_predictor(input_size)
    e = integrated_gradients(p, speckle(20, 28), (6, 4, 18, 14), steps=64)
    assert e.attribution.shape == (20, 28) and e.attribution.dtype == np.float32
    change = e.value - e.baseline_value
    assert abs(change) > 1e-4  # the B-mode moves the prediction, so completeness is not 0 = 0
    assert abs(e.completeness_gap) < 0.02 * abs(change)


def test_the_explained_value_is_the_mean_strain_predict_shows_in_the_box():
    bmode = speckle(24, 40, seed=1)
    for p in (small_predictor(None), small_predictor(32), small_predictor(None, noise=True)):
        box = (5, 3, 30, 20)
        _, strain = p.predict(bmode, seed=3)
        e = integrated_gradients(p, bmode, box, steps=2, seed=3)
        assert e.value == pytest.approx(float(strain[3:20, 5:30].mean()), abs=1e-5)
    whole = integrated_gradients(small_predictor(None), bmode, steps=2)
    assert whole.box == (0, 0, 40, 24)


def test_bad_input_is_refused():
    p = small_predictor(None)
    with pytest.raises(ValueError, match="not inside"):
        integrated_gradients(p, speckle(16, 16), (0, 0, 20, 8))
    with pytest.raises(ValueError, match="H×W uint8"):
        integrated_gradients(p, np.zeros((16, 16), np.float32))
    with pytest.raises(ValueError, match="steps and batch_size must be positive"):
        integrated_gradients(p, speckle(16, 16), steps=0)


def test_rank_and_edge_correlation():
    a = np.arange(12.0).reshape(3, 4)
    assert rank_correlation(a, -2 * a) == pytest.approx(1.0)  # absolute maps: a sign flip is the same map
    assert rank_correlation(a, a[::-1, ::-1].copy()) == pytest.approx(-1.0)
    bmode = np.zeros((16, 16), np.uint8)
    bmode[:, 8:] = 200  # one vertical edge
    grad = np.hypot(*np.gradient(bmode.astype(float)))
    assert edge_correlation(grad, bmode) > 0.9  # an edge map is recognised as one
    with pytest.raises(ValueError, match="size"):
        edge_correlation(np.zeros((4, 4)), bmode)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    data = make_manifest(root / "data", size=(32, 32), splits={"train": 16, "val": 4})
    cfg = load_config(CONFIG_DIR / "tiny.yaml", [f"model.{k}={v}" for k, v in SMALL.items()] + [
        "loss.adv_emode=0", "loss.adv_strain=0", "optim.batch_size=4", "optim.steps=30", "optim.lr_g=0.003",
        "data.image_size=32", "data.workers=0", "run.log_every=10", "run.val_every=30", "run.ckpt_every=30",
        "run.samples=0"])
    last = train(cfg, data=data, out=root / "run", progress=False)
    return data, Predictor.from_checkpoint(last, device="cpu")


def test_the_map_changes_when_the_weights_are_randomised(trained):
    """Adebayo et al. 2018: a saliency map that survives randomising the model explains the
    input, not the model. Spearman of |IG| between the trained and a re-initialised generator,
    on the lesions of the val phantoms."""
    data, p = trained
    correlations = []
    for case in read_manifest(data).split("val"):
        bmode, lesion = load_bmode(case.bmode), read_mask(case.lesion)
        ys, xs = np.nonzero(lesion)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        mine = integrated_gradients(p, bmode, box, steps=16)
        for seed in (1, 2):
            other = integrated_gradients(randomized_predictor(p, seed), bmode, box, steps=16)
            correlations.append(rank_correlation(mine.attribution, other.attribution))
        # the randomised model is another function: its maps differ from each other too
    assert np.median(correlations) < 0.5, correlations
    # re-initialising with one seed is reproducible: the check compares maps, not noise
    again = integrated_gradients(randomized_predictor(p, 1), bmode, box, steps=16)
    first = integrated_gradients(randomized_predictor(p, 1), bmode, box, steps=16)
    np.testing.assert_array_equal(again.attribution, first.attribution)
    assert not any(torch.equal(a, b) for a, b in zip(p.generator.state_dict().values(),
                                                      randomized_predictor(p, 1).generator.state_dict().values())
                   if a.dtype.is_floating_point and a.numel() > 1)
