"""Where a run's numbers go: ``RUN/metrics.jsonl`` always, Weights & Biases when asked.

``metrics.jsonl`` gets one JSON object per record (``step`` first), appended and flushed, so
a crashed run keeps what it logged. On resume the records past the resumed step (logged
after the last checkpoint by the run that died) are dropped first, so each step appears once.

wandb runs offline by default (``run.wandb: offline``): a local run in ``RUN/wandb/`` that
``wandb sync`` can upload later, so training never needs the network or an account. Online
only when asked (``run.wandb: online`` or ``WANDB_MODE=online``); ``WANDB_MODE`` in the
environment overrides the mode (``disabled`` switches it off; empty counts as unset; any
other value is refused). If the package is missing, the run says so once and goes on with
``metrics.jsonl`` alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from elastogan.atomic import atomic_write_text
from elastogan.errors import UserError


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records of ``path`` whose ``step`` is beyond ``step`` (rewritten atomically)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if rec.get("step", 0) <= step:
            kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


WANDB_MODES = ("offline", "online", "disabled")


def wandb_env_mode() -> str | None:
    """``WANDB_MODE`` from the environment, checked; ``None`` when unset or empty.

    Raises:
        UserError: a value other than ``WANDB_MODES`` (wandb would fail later, inside its
            own settings, with a traceback).
    """
    mode = os.environ.get("WANDB_MODE", "")
    if not mode:
        return None
    if mode not in WANDB_MODES:
        raise UserError(f"WANDB_MODE={mode!r} in the environment: expected one of {', '.join(WANDB_MODES)} (or unset)")
    return mode


def wandb_mode(asked: str) -> str | None:
    """The wandb mode to use (``offline``/``online``), or ``None`` for no wandb."""
    env = wandb_env_mode()
    if asked == "disabled":
        return None
    mode = env or asked
    return None if mode == "disabled" else mode


class RunLog:
    """Metrics of one run (process 0 only).

    Args:
        run_dir: the run folder; ``metrics.jsonl`` is written there.
        config: the resolved config as a dict (given to wandb).
        wandb: ``run.wandb`` of the config.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any], wandb: str) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.file = open(self.path, "a", encoding="utf-8")
        self.wandb = None
        mode = wandb_mode(wandb)
        if mode is not None:
            if importlib.util.find_spec("wandb") is None:
                print("elastogan: wandb asked for but not installed; logging to metrics.jsonl only", file=sys.stderr)
            else:
                import wandb as wandb_module

                if os.environ.get("WANDB_MODE") == "":
                    del os.environ["WANDB_MODE"]  # empty means unset here; wandb's own settings refuse it
                self.wandb = wandb_module.init(
                    project="elastogan", dir=str(run_dir), name=run_dir.name, config=config,
                    mode=mode, resume="allow", id=_wandb_id(run_dir),
                    # its banner and git probing are noise here; the line below says where it went
                    settings=wandb_module.Settings(silent=True),
                )
                where = "online" if mode == "online" else f"offline in {run_dir / 'wandb'}"
                print(f"elastogan: wandb run {where}", file=sys.stderr)

    def log(self, step: int, values: dict[str, float]) -> None:
        rec = {"step": step, **{k: float(v) for k, v in values.items()}}
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def images(self, step: int, name: str, image: np.ndarray) -> None:
        """An RGB uint8 image (sample grid) to wandb; the caller also writes it to ``RUN/samples/``."""
        if self.wandb is not None:
            import wandb as wandb_module

            self.wandb.log({name: wandb_module.Image(image)}, step=step)

    def close(self) -> None:
        self.file.close()
        if self.wandb is not None:
            self.wandb.finish()


def _wandb_id(run_dir: Path) -> str:
    """A stable wandb run id per run folder, so a resumed run continues its wandb run."""
    import hashlib

    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]
