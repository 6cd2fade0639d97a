"""The shipped model, elastogan/weights/default.pt: small, loadable, any frame size, and the
config its model card says it was trained with."""

from __future__ import annotations

import re
import shlex
from dataclasses import fields
from pathlib import Path

import numpy as np

from elastogan.checkpoint import load_checkpoint
from elastogan.models.config import ModelConfig
from elastogan.predict import Predictor
from elastogan.training.config import config_from_dict, load_config
from elastogan.typed_config import to_dict
from elastogan.weights import DEFAULT_CHECKPOINT

CARD = DEFAULT_CHECKPOINT.parent / "MODEL_CARD.md"
REPO = Path(__file__).resolve().parents[1]
# ModelConfig fields that size only the pix2pix/l1unet baselines, not the TransUNet
UNET_ONLY = {"unet_channels", "unet_levels", "unet_dropout"}


def card_train_command() -> list[str]:
    """The ``elastogan train …`` command of the model card's "exact commands" row, as argv."""
    commands = re.findall(r"`(elastogan train [^`]*)`", CARD.read_text(encoding="utf-8"))
    assert len(commands) >= 1
    argv = shlex.split(commands[0])
    assert argv[argv.index("--out") + 1] == "runs/default"  # the run that was exported
    return argv


def test_shipped_model_is_at_most_20_mb():
    assert DEFAULT_CHECKPOINT.stat().st_size <= 20 * 10**6


def test_shipped_model_predicts_a_non_square_frame_at_its_size():
    p = Predictor.from_checkpoint(DEFAULT_CHECKPOINT, device="cpu")
    assert p.model.name == "transunet" and p.input_size == 128
    rng = np.random.default_rng(0)
    bmode = np.clip(rng.rayleigh(60, (90, 150)), 0, 255).astype(np.uint8)
    bmode[30:60, 50:90] //= 3  # a dark lesion
    emode, strain = p.predict(bmode)
    assert emode.shape == (90, 150, 3) and emode.dtype == np.uint8
    assert strain.shape == (90, 150) and strain.dtype == np.float32
    assert np.isfinite(strain).all() and 0 <= strain.min() and strain.max() <= 1
    assert strain.std() > 0.01  # a trained model, not a constant


def test_stored_config_is_what_the_model_card_command_gives():
    """The card's train command (config file and --set flags) resolves to the stored config."""
    argv = card_train_command()
    config = REPO / argv[argv.index("--config") + 1]
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    # resolved by today's code: switches added since (model.noise, loss.recon_samples, …) take
    # their defaults, which are what the shipped run trained with
    stored = to_dict(config_from_dict(load_checkpoint(DEFAULT_CHECKPOINT)["config"], source=str(DEFAULT_CHECKPOINT)))
    assert to_dict(load_config(config, overrides)) == stored
    # the flags touch only the pix2pix sizing and logging: the TransUNet is default.yaml's as it stands
    assert {o.split("=")[0] for o in overrides} <= {f"model.{f}" for f in UNET_ONLY} | {"run.wandb"}
    current = to_dict(load_config(config))
    for f in fields(ModelConfig):
        if f.name not in UNET_ONLY:
            assert stored["model"][f.name] == current["model"][f.name], f"model.{f.name}"
    for section in ("loss", "optim", "data"):
        assert stored[section] == current[section], section


def test_model_card_numbers_match_the_file():
    card = CARD.read_text(encoding="utf-8")
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    params = Predictor.from_checkpoint(DEFAULT_CHECKPOINT, device="cpu").generator.parameters()
    assert float(re.search(r"(\d+\.\d+) M parameters", card).group(1)) == round(sum(p.numel() for p in params) / 1e6, 2)
    step = int(re.search(r"`best\.pt` = step (\d+)", card).group(1))
    assert step == ckpt["step"]
    # the validation table's bold entry is that step and its NCC
    assert f"**{step}**" in card and f"**{ckpt['best_ncc']:.3f}**" in card


def test_texture_stage_is_what_the_model_card_command_gives():
    """The card's ``elastogan train-texture`` command (its --set flags over the defaults) resolves to
    the stage's stored config, and the predictor runs the stage at the data's 256²."""
    from elastogan.training.texture import run_config

    commands = re.findall(r"`(elastogan train-texture [^`]*)`", CARD.read_text(encoding="utf-8"))
    assert len(commands) == 1
    argv = shlex.split(commands[0])
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    stored = load_checkpoint(DEFAULT_CHECKPOINT)["texture"]
    cfg = run_config(overrides)
    assert to_dict(cfg.texture) == stored["config"] and to_dict(cfg.train) == stored["train"]
    p = Predictor.from_checkpoint(DEFAULT_CHECKPOINT, device="cpu")
    assert p.texture is not None and p.texture.cfg.image_size == 256


def test_the_benchmarks_shipped_stage_is_the_shipped_models():
    """``elastogan bench model``'s ``transunet-noise-texture-shipped`` times the stage default.pt
    holds: the fields its config sets away from the defaults are the benchmark's."""
    from elastogan.models.bench import WITH_TEXTURE
    from elastogan.models.texture import TextureConfig

    stored = load_checkpoint(DEFAULT_CHECKPOINT)["texture"]["config"]
    defaults = to_dict(TextureConfig(image_size=stored["image_size"]))
    assert {k: v for k, v in stored.items() if v != defaults[k]} == WITH_TEXTURE["transunet-noise-texture-shipped"]
