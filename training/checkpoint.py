"""Training state in and out of a checkpoint (the file format is ``elastogan.checkpoint``).

A training checkpoint holds everything a resumed run needs to continue at the same step with
the same state: the networks, the EMA generator, the optimisers, the gradient scaler, the
step, the best validation NCC, and process 0's random-number generators. Other processes of a
data-parallel run re-seed from ``(seed, rank, step)`` on resume; nothing they draw changes the
sample order, which is a function of the step alone (``training.data.StepSampler``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elastogan.checkpoint import save_checkpoint
from elastogan.typed_config import to_dict


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's generators, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    # Python's random state is nested tuples; keep them tuples whatever the loader returns.
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def seed_all(seed: int, rank: int = 0, step: int = 0) -> None:
    """Seed Python, NumPy and torch for process ``rank`` (the one place a run is seeded)."""
    s = (seed * 1_000_003 + rank * 7_919 + step) % 2**32
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def write_training_checkpoint(path: Path, *, cfg, step: int, nets, best_ncc: float | None) -> None:
    """Save the whole training state (``nets`` is a ``training.trainer.Nets``) atomically."""
    save_checkpoint(
        path,
        {
            "config": to_dict(cfg),
            "step": step,
            "generator": nets.generator.state_dict(),
            "generator_ema": nets.generator_ema.state_dict(),
            "discriminators": nets.discriminators.state_dict(),
            "opt_g": nets.opt_g.state_dict(),
            "opt_d": nets.opt_d.state_dict() if nets.opt_d is not None else None,
            "scaler": nets.scaler.state_dict(),
            "rng": rng_state(),
            "best_ncc": best_ncc,
        },
    )


def restore_training_state(ckpt: dict[str, Any], nets, *, restore_rng: bool) -> None:
    """Load the state dicts of ``ckpt`` into ``nets`` (and the RNGs if ``restore_rng``)."""
    nets.generator.load_state_dict(ckpt["generator"])
    nets.generator_ema.load_state_dict(ckpt["generator_ema"])
    nets.discriminators.load_state_dict(ckpt["discriminators"])
    nets.opt_g.load_state_dict(ckpt["opt_g"])
    if nets.opt_d is not None:
        nets.opt_d.load_state_dict(ckpt["opt_d"])
    if ckpt["scaler"]:
        nets.scaler.load_state_dict(ckpt["scaler"])
    if restore_rng:
        set_rng_state(ckpt["rng"])
