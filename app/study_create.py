"""``elastogan study create``: a blinded reader study from a manifest split and a checkpoint.

For every case the real elastogram (the case's mapped strain) and the synthetic one (the
generator's strain head) are drawn by one function, ``render_study_image``: the same
``render_emode`` call (colour map, opacity, ROI, colour bar), the same size, and the same PNG
encoder with no metadata. Each image gets a random opaque name; which is which, the
pathology and the NCC live only in the study database. The study is built in a temporary
sibling folder and renamed into place when complete, so a crash never leaves a half study.

The reading design (``split`` by default, ``paired-sessions``, ``staged``; ``repeat``) is
recorded in the database; each reader's list follows it when the reader is added
(``elastogan.app.designs``). The images are the same for every design.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elastogan.atomic import atomic_write_bytes
from elastogan.bmode_input import load_bmode
from elastogan.data.images import encode_png, read_strain
from elastogan.data.manifest import Case, read_manifest
from elastogan.display import Box, render_emode
from elastogan.errors import UserError

from elastogan.app import study_db

# Colour opacity of every study elastogram (real and synthetic alike).
STUDY_ALPHA = 0.5


@dataclass(frozen=True)
class CreatedStudy:
    """What ``create_study`` made."""

    path: Path
    study_id: str
    n_cases: int
    ncc_mean: float | None


def render_study_image(bmode: np.ndarray, strain: np.ndarray, roi: Box, colormap: str) -> bytes:
    """The PNG of one study elastogram: the only drawing path for real and synthetic images.

    Returns:
        PNG bytes (8-bit RGB, no text chunks, fixed compression settings).
    """
    return encode_png(render_emode(bmode, strain, roi, colormap=colormap, alpha=STUDY_ALPHA, colorbar=True))


def _roi(case: Case, shape: tuple[int, int]) -> Box:
    h, w = shape
    return tuple(case.roi) if case.roi is not None else (0, 0, w, h)  # type: ignore[return-value]


def _check_cases(cases: list[Case], split: str, source: Path) -> None:
    if not cases:
        raise UserError(f"{source}: no cases in split {split!r}")
    problems = []
    for c in cases:
        if c.strain is None:
            problems.append(f"case {c.id} (line {c.line}): no strain (the real mapped E-mode is needed to draw it "
                            "the same way as the synthetic one)")
        if c.pathology not in ("benign", "malignant"):
            problems.append(f"case {c.id} (line {c.line}): no pathology (benign/malignant is the truth of the BI-RADS analysis)")
    if problems:
        raise UserError(f"{source}: {len(problems)} case(s) cannot go into a study:\n  " + "\n  ".join(problems))


def _ncc(real: np.ndarray, synthetic: np.ndarray, roi: Box) -> float | None:
    from elastogan.eval.metrics import MetricError, ncc

    mask = np.zeros(real.shape, bool)
    mask[roi[1] : roi[3], roi[0] : roi[2]] = True
    try:
        return ncc(real, synthetic, mask)
    except MetricError:
        return None


def create_study(
    data: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    *,
    split: str = "test",
    n_cases: int | None = None,
    seed: int = 0,
    device: str | None = None,
    design: str = "split",
    repeat: float = 0.0,
    washout_days: float = 0.0,
    log=print,
) -> CreatedStudy:
    """Render the study images and write the study database (see the module docstring).

    Args:
        data: manifest (JSON Lines).
        checkpoint: generator checkpoint written by ``elastogan train``.
        out: the new study folder (must not exist, or be empty).
        split: manifest split to draw the cases from.
        n_cases: draw this many cases at random (default: all of the split).
        seed: seed of that draw, and of each case's synthetic elastogram (``case_seed``).
        device: where the generator runs (default CUDA when available).
        design: ``split``, ``paired-sessions`` or ``staged`` (``elastogan.app.designs``).
        repeat: fraction of each reader's readings shown again at the end (0 to 1).
        washout_days: days between the two sessions of ``paired-sessions``.
        log: progress messages go here.

    Raises:
        UserError: ``out`` is not empty, the split is empty or its cases lack strain or
            pathology, ``n_cases`` is out of range, a bad design, or a file cannot be read.
    """
    from elastogan.predict import Predictor, case_seed

    if design not in study_db.CREATE_DESIGNS:
        raise UserError(f"--design {study_db.short(design)} is not one of {', '.join(study_db.CREATE_DESIGNS)}")
    study_db.check_design(design, repeat, washout_days)

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not empty; a study is never overwritten (its answers live there)")
    manifest = read_manifest(data)
    cases = manifest.split(split)
    _check_cases(cases, split, manifest.path)
    if n_cases is not None:
        if not 1 <= n_cases <= len(cases):
            raise UserError(f"--n-cases must be between 1 and {len(cases)} (cases in split {split!r}), got {n_cases}")
        cases = random.Random(seed).sample(cases, n_cases)
    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    colormap = predictor.model.colormap

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        images = tmp / study_db.IMAGES_DIR
        images.mkdir()
        study_id = uuid.uuid4().hex
        order = list(range(len(cases)))
        random.Random(secrets.randbits(64)).shuffle(order)  # database order says nothing either
        with study_db.connect(tmp, create=True) as con:
            study_db.init_schema(con)
            nccs = []
            with study_db.transaction(con):
                for k, i in enumerate(order):
                    case = cases[i]
                    bmode = load_bmode(case.bmode)  # the one B-mode rule of predict, the Preview and evaluate
                    real = read_strain(case.strain)
                    if real.shape != bmode.shape:
                        raise UserError(f"case {case.id}: strain {real.shape} and B-mode {bmode.shape} differ in size")
                    roi = _roi(case, bmode.shape)
                    _, synthetic = predictor.predict(bmode, roi=roi, seed=case_seed(seed, case.id))  # no shared noise
                    ncc = _ncc(real, synthetic, roi)
                    if ncc is not None:
                        nccs.append(ncc)
                    bmode_id = secrets.token_hex(16)
                    atomic_write_bytes(images / f"{bmode_id}.png", encode_png(bmode))
                    con.execute("INSERT INTO cases (case_id, malignant, bmode, ncc, position) VALUES (?, ?, ?, ?, ?)",
                                (case.id, int(case.pathology == "malignant"), bmode_id, ncc, k))
                    kinds = [("real", real), ("synthetic", synthetic)]
                    random.Random(secrets.randbits(64)).shuffle(kinds)
                    for kind, strain in kinds:
                        image_id = secrets.token_hex(16)
                        atomic_write_bytes(images / f"{image_id}.png", render_study_image(bmode, strain, roi, colormap))
                        con.execute("INSERT INTO images (image, case_id, kind) VALUES (?, ?, ?)", (image_id, case.id, kind))
                    log(f"case {k + 1}/{len(cases)}")
                meta = {
                    "schema_version": str(study_db.SCHEMA_VERSION),
                    "study_id": study_id,
                    "created": f"{time.time():.3f}",
                    "manifest": str(manifest.path.resolve()),
                    "split": split,
                    "n_cases": str(len(cases)),
                    "seed": str(seed),
                    "checkpoint": str(Path(checkpoint).resolve()),
                    "checkpoint_step": str(predictor.step),
                    "colormap": colormap,
                    "complete": "1",
                }
                con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
                study_db.set_design(con, design, repeat, washout_days)
        os.chmod(tmp, 0o700)  # the truth is in there: owner only
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    mean = float(np.mean(nccs)) if nccs else None
    return CreatedStudy(out, study_id, len(cases), mean)
