"""Test patterns are refused as B-mode input; real B-modes are not (issue 15).

Refused: grey ramps (horizontal, vertical, diagonal, radial), bars (wide, narrow, one pixel,
rotated), grey steps, checkerboards (1, 8 and 32 px), SMPTE-like grey bars and a flat frame,
each as drawn, as JPEG 75 and scaled ×2 with interpolation. Accepted: every real ultrasound file
of pydicom and pydicom-data that decodes here, the same B-modes scaled ×1.5 and ×2 and saved as
JPEG 50, the Aloka screen turned into a strain display, and phantom B-modes.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from elastogan.bmode_input import read_bmode_input, speckle_problem
from elastogan.cli import main
from elastogan.data.images import read_gray, write_png
from elastogan.errors import InputFileError

sys.path.insert(0, str(Path(__file__).parent))
from tiny_manifest import make_manifest  # noqa: E402

pytest.importorskip("pydicom")
from scanner_screens import real_dual_screen  # noqa: E402

UNDECODABLE = {"JPGLosslessP14SV1_1s_1f_8b.dcm"}  # needs a decoder plugin this environment lacks


def patterns(h: int = 300, w: int = 400) -> dict[str, np.ndarray]:
    """Grey test patterns, H×W uint8."""
    yy, xx = np.mgrid[:h, :w]
    out = {
        "ramp-h": xx * 255 // (w - 1),
        "ramp-v": yy * 255 // (h - 1),
        "ramp-diag": (xx + yy) * 255 // (h + w - 2),
        "ramp-radial": np.clip(np.hypot(xx - w / 2, yy - h / 2), 0, 255),
        "bars-32": (xx // 32) % 2 * 200 + 30,
        "bars-4-horizontal": (yy // 4) % 2 * 200 + 30,
        "bars-1": xx % 2 * 200 + 30,
        "bars-32-rotated-30": ndimage.rotate(((xx // 32) % 2 * 200 + 30).astype(float), 30, reshape=False, order=1,
                                             mode="nearest"),
        "grey-steps": xx * 8 // w * 32,
        "checker-1": (xx + yy) % 2 * 200 + 30,
        "checker-8": (xx // 8 + yy // 8) % 2 * 200 + 30,
        "checker-32": (xx // 32 + yy // 32) % 2 * 200 + 30,
        "flat": np.full((h, w), 128),
    }
    levels = np.array([235, 210, 180, 150, 120, 90, 60])
    smpte = np.empty((h, w))
    smpte[: h * 2 // 3] = levels[xx[0] * 7 // w]
    smpte[h * 2 // 3 : h * 3 // 4] = levels[::-1][xx[0] * 7 // w]
    smpte[h * 3 // 4 :] = np.where(xx[0] < w // 3, 30, np.where(xx[0] < 2 * w // 3, 235, 16))
    out["smpte-like"] = smpte
    return {k: np.clip(np.rint(v), 0, 255).astype(np.uint8) for k, v in out.items()}


def _jpeg(grey: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("L"))


def _scaled(grey: np.ndarray, factor: float, resample=Image.BILINEAR) -> np.ndarray:
    h, w = grey.shape
    return np.asarray(Image.fromarray(grey).resize((round(w * factor), round(h * factor)), resample))


def _variants(name: str, grey: np.ndarray) -> dict[str, np.ndarray]:
    return {name: grey, f"{name}-jpeg75": _jpeg(grey, 75), f"{name}-x2": _scaled(grey, 2)}


def _real_bmodes() -> dict[str, np.ndarray]:
    from elastogan.eval.measurements.ood_scores import pydicom_ultrasound_files

    files = [f for f in pydicom_ultrasound_files() if f.name not in UNDECODABLE]
    assert len(files) >= 18, [f.name for f in files]
    return {f.name: read_bmode_input(f).bmode for f in files}  # none refused


def test_every_grey_test_pattern_is_refused_naming_the_file(tmp_path):
    refused = []
    for name, grey in patterns().items():
        for variant, img in _variants(name, grey).items():
            path = tmp_path / f"{variant}.png"
            write_png(path, img)
            with pytest.raises(InputFileError, match="no ultrasound speckle, so not a B-mode") as e:
                read_bmode_input(path)
            assert str(path) in str(e.value)
            refused.append(variant)
    assert len(refused) == 3 * 14


def test_real_ultrasound_files_are_not_refused_nor_scaled_or_compressed_copies(tmp_path):
    bmodes = _real_bmodes()
    for name, grey in bmodes.items():
        if min(grey.shape) < 32:
            continue  # too small to judge (ExplVR_BigEnd.dcm: 4×36)
        for label, img in (("x1.5", _scaled(grey, 1.5, Image.BICUBIC)), ("x2", _scaled(grey, 2)),
                           ("jpeg50", _jpeg(grey, 50))):
            assert speckle_problem(img) is None, (name, label)
    screen = real_dual_screen()
    write_png(tmp_path / "aloka_screen.png", screen.rgb)
    assert read_bmode_input(tmp_path / "aloka_screen.png").bmode.shape[0] == screen.bmode.shape[0]  # not refused


def test_phantom_bmodes_are_not_refused(tmp_path):
    manifest = make_manifest(tmp_path / "data", size=(128, 128), splits={"train": 6}, seed=3)
    for png in sorted(manifest.parent.glob("*_bmode.png")):
        assert speckle_problem(read_gray(png)) is None, png.name
        read_bmode_input(png)


def test_predict_refuses_a_test_pattern_before_writing_anything(tmp_path, capsys):
    from test_predict import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "native.pt", "null")
    write_png(tmp_path / "ramp.png", patterns()["ramp-h"])
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "ramp.png"), "--out", str(out),
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "ramp.png" in err and "no ultrasound speckle" in err and not out.exists()
