"""The training configuration: typed dataclasses, set from YAML and ``--set a.b=value``.

``TrainConfig`` is the whole truth of a run. A YAML file only sets values: an unknown key is
an error naming its dotted path, a wrong type an error naming the path, the expected type and
the value. Overrides (``--set optim.lr_g=1e-4``) are parsed as YAML scalars and applied before
the dataclasses are built, so they pass the same checks. The resolved config is written to
``RUN/config.yaml`` and stored in every checkpoint.

Example:
    >>> cfg = load_config(None, ["optim.batch_size=2", "model.name=pix2pix"])
    >>> cfg.optim.batch_size, cfg.model.name
    (2, 'pix2pix')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from elastogan.errors import InputFileError
from elastogan.models.config import LossConfig, ModelConfig
from elastogan.typed_config import ConfigError, from_dict, to_dict

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class OptimConfig:
    """Optimisers (Adam for G and for the discriminators) and the length of the run.

    Args:
        lr_g: generator learning rate. Default 2e-4 (pix2pix).
        lr_d: discriminator learning rate. Default 2e-4.
        betas: Adam betas for both. Default (0.5, 0.999) (pix2pix, DCGAN).
        batch_size: images per process per step (the global batch is this × world size).
        steps: optimiser steps of the whole run (``--steps`` may stop an invocation earlier).
        ema_decay: generator EMA decay per step; 0 copies the generator. Default 0.999.
        grad_clip: clip each network's gradient norm to this; 0 switches clipping off.
    """

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 4
    steps: int = 10_000
    ema_decay: float = 0.999
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lr_g", "lr_d"):
            if getattr(self, name) <= 0:
                raise ValueError(f"optim.{name} must be positive, got {getattr(self, name)!r}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optim.betas must be in [0, 1), got {self.betas!r}")
        if self.batch_size < 1 or self.steps < 1:
            raise ValueError(f"optim.batch_size and optim.steps must be positive, got {self.batch_size}, {self.steps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.grad_clip < 0:
            raise ValueError(f"optim.grad_clip must be >= 0 (0 = off), got {self.grad_clip!r}")


@dataclass
class AugmentConfig:
    """Physical augmentations (``elastogan.data.dataset.Augment``); ``enabled: false`` for none."""

    enabled: bool = True
    hflip: float = 0.5
    gain: float = 0.1
    gamma: float = 0.1


@dataclass
class DataConfig:
    """Loading.

    Args:
        image_size: side every sample is resized to (square), or null to keep the frames as
            they are (then all must share one size divisible by the generator's divisor).
        workers: DataLoader worker processes per training process.
        augment: augmentation settings.
        val_cases: validate on at most this many cases of the val split (0 = all).
    """

    image_size: int | None = 256
    workers: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_cases: int = 0

    def __post_init__(self) -> None:
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f"data.image_size must be >= 8 or null, got {self.image_size!r}")
        if self.workers < 0 or self.val_cases < 0:
            raise ValueError(f"data.workers and data.val_cases must be >= 0, got {self.workers}, {self.val_cases}")


@dataclass
class RunConfig:
    """Seeding, cadence, precision and logging.

    Args:
        seed: the one seed of the run (weights, data order, augmentations, dropout).
        log_every: steps between ``metrics.jsonl`` records (and progress-bar updates).
        val_every: steps between validations (EMA generator, NCC of the strain head in the ROI).
        ckpt_every: steps between ``last.pt`` checkpoints (one is also written at the end).
        amp: mixed precision on CUDA: ``"bf16"`` (no loss scaling needed), ``"fp16"`` (with a
            gradient scaler, for GPUs without bf16) or ``"fp32"``. Ignored on CPU, which trains
            in float32.
        tf32: allow TF32 matmuls and convolutions on CUDA.
        wandb: Weights & Biases mode: ``"offline"`` (the default: a local run folder in
            ``RUN/wandb/``, no network, no account), ``"online"`` or ``"disabled"``. ``WANDB_MODE``
            in the environment overrides the mode of a run that has not disabled wandb.
        samples: validation cases drawn to ``RUN/samples/`` (and wandb) at each validation.
    """

    seed: int = 0
    log_every: int = 10
    val_every: int = 500
    ckpt_every: int = 500
    amp: Literal["fp32", "bf16", "fp16"] = "bf16"
    tf32: bool = True
    wandb: Literal["disabled", "offline", "online"] = "offline"
    samples: int = 4

    def __post_init__(self) -> None:
        for name in ("log_every", "val_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"run.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.samples < 0:
            raise ValueError(f"run.samples must be >= 0, got {self.samples!r}")


@dataclass
class TrainConfig:
    """A whole training run: model, loss weights, optimisers, data, run settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` → ``(["a", "b"], value)`` with the value parsed as a YAML scalar."""
    key, sep, raw = text.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(k.strip() for k in keys):
        raise ConfigError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. optim.lr_g=1e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: value is not a YAML scalar ({e.problem})") from None
    return [k.strip() for k in keys], value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the mapping ``raw`` with each ``a.b=value`` set (sections created as needed)."""
    out = _deep_copy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for i, k in enumerate(keys[:-1]):
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text!r}: '{'.'.join(keys[: i + 1])}' is a value, not a section")
            node = nxt
        node[keys[-1]] = value
    return out


def _deep_copy(d: Any) -> Any:
    return {k: _deep_copy(v) for k, v in d.items()} if isinstance(d, dict) else d


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file (an empty file is an empty mapping)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(path, "config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"cannot read config ({e})") from None
    except yaml.YAMLError as e:
        raise InputFileError(path, f"not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """The resolved ``TrainConfig`` of a YAML file (defaults if ``None``) plus overrides."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    source = str(path) if path is not None else "config"
    if overrides:
        source += " with --set"
    return from_dict(TrainConfig, raw, source=source)


def config_from_dict(data: dict[str, Any], *, source: str = "config") -> TrainConfig:
    """A ``TrainConfig`` from its plain-dict form (a checkpoint's ``config``)."""
    return from_dict(TrainConfig, data, source=source)


def dump_config(cfg: TrainConfig) -> str:
    """YAML text of the resolved config, sections in declaration order."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)
