"""The shipped model: ``default.pt`` (an inference checkpoint written by ``elastogan export``)
and its model card, ``MODEL_CARD.md``. ``predict``, ``evaluate``, ``study create`` and the app
use it when no ``--checkpoint`` is given.

This module stays import-light (no torch), so command-line parsers can name the default.
"""

from __future__ import annotations

from pathlib import Path

from elastogan.errors import UserError

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default.pt"


def resolve_checkpoint(path: str | Path | None) -> Path:
    """The checkpoint to load: ``path`` if given, else the shipped default (a clear error if the
    installation lacks it)."""
    if path is not None:
        return Path(path)
    default = DEFAULT_CHECKPOINT
    if not default.is_file():
        raise UserError(f"no checkpoint given and the default {default} is not installed; "
                        "pass --checkpoint RUN/checkpoints/best.pt (from `elastogan train`)")
    return default
