"""The checkpoint file: one ``torch.save`` dict, written atomically, read without flags.

Layout (``FORMAT_VERSION`` 1)::

    format          "elastogan-checkpoint"
    format_version  1
    config          the resolved training config as plain dicts (``model``, ``loss``, ...)
    step            optimiser steps done
    generator       state dict of the trained generator
    generator_ema   state dict of its EMA copy (what inference uses)
    discriminators  state dict of the discriminators (a ModuleDict; empty for l1unet)
    opt_g, opt_d    optimiser state dicts (opt_d is None without discriminators)
    scaler          gradient-scaler state dict (empty unless fp16)
    rng             RNG states of process 0 (python, numpy, torch CPU, torch CUDA)
    best_ncc        best validation NCC so far (None before the first validation)
    uncertainty     optional: the interval factors ``elastogan calibrate`` fitted on held-out
                    cases (``elastogan.uncertainty.IntervalCalibration.to_dict``)
    ood             optional: the out-of-distribution fingerprint of the training data
                    (``elastogan.ood.OodFingerprint.to_dict``; ``elastogan fingerprint``, ``train``)
    versions        elastogan, torch, numpy, python
    time            UTC ISO time of writing

``export_for_inference`` keeps only what inference needs (``config``, ``step``,
``generator_ema``, ``best_ncc``, ``uncertainty`` when calibrated, ``ood`` when fingerprinted, plus ``kind: "inference"``): a few MB instead of the
training state's tens, for shipping a model. ``elastogan.predict.Predictor`` reads both kinds.

The model is rebuilt from ``config["model"]`` alone (``elastogan.models.registry``), so no
architecture flag is ever needed to load one. A file of another format version is refused
with a message that says which version it has and which this code reads.
"""

from __future__ import annotations

import io
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elastogan import __version__
from elastogan.atomic import atomic_write_bytes
from elastogan.errors import InputFileError

FORMAT = "elastogan-checkpoint"
FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    """Versions recorded in every checkpoint."""
    return {
        "elastogan": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and versions) to ``path`` atomically."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload, "versions": library_versions()}
    buf = io.BytesIO()
    torch.save(data, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_problem(path: Path, error: Exception) -> str:
    """Why ``torch.load`` refused ``path``, in a few words rather than torch's paragraph."""
    import zipfile

    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        return "not a PyTorch file"
    if "Weights only load failed" in str(error):
        return "it holds Python objects other than tensors and plain data, and a checkpoint is never code"
    return f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint and check its format version.

    Raises:
        InputFileError: the file is missing, not a checkpoint, or of another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found")
    try:
        # weights_only: a checkpoint is data (tensors, dicts, numbers, strings), never code.
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise InputFileError(path, f"not a readable elastogan checkpoint ({_load_problem(path, e)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputFileError(path, "not an elastogan checkpoint (no 'format' marker)")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise InputFileError(
            path,
            f"checkpoint format version {version!r}, but this elastogan ({__version__}) reads version "
            f"{FORMAT_VERSION}; use the elastogan release that wrote it or retrain",
        )
    return data


def inference_payload(data: dict[str, Any], *, keep: tuple[str, ...] = ("uncertainty", "ood", "texture")) -> dict[str, Any]:
    """The inference part of a checkpoint's contents: resolved config, step, EMA generator, best
    validation NCC, and those of ``keep`` it has (calibration, fingerprint, texture stage).

    Raises:
        KeyError: ``data`` holds no EMA generator and config.
    """
    if "generator_ema" not in data or "config" not in data:
        raise KeyError("generator_ema")
    payload = {
        "kind": "inference",
        "config": data["config"],
        "step": data.get("step", 0),
        "generator_ema": data["generator_ema"],
        "best_ncc": data.get("best_ncc"),
    }
    payload.update({key: data[key] for key in keep if key in data})
    return payload


def export_for_inference(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write the inference part of training checkpoint ``src`` to ``dst`` (atomically); returns it.

    Raises:
        InputFileError: ``src`` is not a checkpoint of this format version, or holds no EMA
            generator.
    """
    try:
        payload = inference_payload(load_checkpoint(src))
    except KeyError:
        raise InputFileError(src, "checkpoint holds no EMA generator and config to export") from None
    save_checkpoint(dst, payload)
    return payload
