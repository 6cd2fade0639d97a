"""``elastogan predict`` on real scanner screens (issue 15): no burned-in text in any output,
no silent guess about frames or colour, every bad input named before anything is written.

The screens: pydicom-data's Philips ``OBXXXX1A.dcm`` (a B-mode with the date, time, hospital
and patient ID burned in above its image region, whose region overruns the frame by one
pixel) and its two-frame copy; the Aloka dual display turned into a strain display
(``scanner_screens.real_dual_screen``) as PNG and JPEG screenshots; GE's power-Doppler screen.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elastogan.cli import main
from elastogan.data.images import read_rgb
from elastogan.data.loaders import load_image
from elastogan.predict import label_synthetic

sys.path.insert(0, str(Path(__file__).parent))
from scanner_screens import ALOKA_PANELS, real_dual_screen, real_file  # noqa: E402
from test_predict import make_checkpoint  # noqa: E402

PHILIPS_REGION = (120, 60, 800, 519)  # OBXXXX1A.dcm's image region, clipped to the frame


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "native.pt", "null")


def predict(ckpt: Path, out: Path, *inputs: Path | str, extra: tuple[str, ...] = ()) -> int:
    return main(["predict", "--checkpoint", str(ckpt), "--input", *map(str, inputs), "--out", str(out), "--device", "cpu", *extra])


def screen_text(rgb: np.ndarray, boxes) -> np.ndarray:
    """H×W bool: every non-black pixel outside the image panels (burned-in text, markers, strips)."""
    mask = rgb.max(axis=-1) > 0
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = False
    return mask


def assert_nothing_outside(emode: np.ndarray, strain: np.ndarray, box) -> None:
    """Outside the panel the outputs hold only the SYNTHETIC label on black, and NaN strain."""
    x0, y0, x1, y1 = box
    outside = np.ones(strain.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert np.isnan(strain[outside]).all() and np.isfinite(strain[~outside]).all()
    label_only = label_synthetic(np.zeros_like(emode))
    np.testing.assert_array_equal(emode[outside], label_only[outside])


def test_the_philips_header_never_reaches_the_outputs(ckpt, tmp_path, capsys):
    src = real_file("OBXXXX1A.dcm")
    screen = load_image(src).rgb
    text = screen_text(screen, [PHILIPS_REGION])
    assert text[:60].sum() > 2000  # the header: date, time, "Philips Healthcare", patient ID
    assert predict(ckpt, tmp_path / "o", src) == 0, capsys.readouterr().err
    emode = read_rgb(tmp_path / "o" / "OBXXXX1A_SYNTHETIC_emode.png")
    strain = np.load(tmp_path / "o" / "OBXXXX1A_SYNTHETIC_strain.npy")
    assert emode.shape == screen.shape
    assert_nothing_outside(emode, strain, PHILIPS_REGION)
    # Not one pixel of the header survives: where the screen had text, the output is black
    # or the SYNTHETIC label.
    label_only = label_synthetic(np.zeros_like(emode))
    assert (emode[text] == label_only[text]).all()
    assert predict(ckpt, tmp_path / "c", src, extra=("--crop",)) == 0
    x0, y0, x1, y1 = PHILIPS_REGION
    assert read_rgb(tmp_path / "c" / "OBXXXX1A_SYNTHETIC_emode.png").shape == (y1 - y0, x1 - x0, 3)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_a_screenshot_gives_its_bmode_panel_and_no_text(ckpt, tmp_path, capsys, fmt):
    s = real_dual_screen()
    path = tmp_path / f"screen.{'png' if fmt == 'png' else 'jpg'}"
    Image.fromarray(s.rgb).save(path, **({"quality": 90} if fmt == "jpeg" else {}))
    assert predict(ckpt, tmp_path / "o", path) == 0, capsys.readouterr().err
    emode = read_rgb(tmp_path / "o" / "screen_SYNTHETIC_emode.png")
    strain = np.load(tmp_path / "o" / "screen_SYNTHETIC_strain.npy")
    finite = np.argwhere(np.isfinite(strain))
    (y0, x0), (y1, x1) = finite.min(axis=0), finite.max(axis=0) + 1
    # The B-mode panel (left), found in the picture: inside the real panel, nearly all of it.
    left = ALOKA_PANELS[0]
    tolerance = 0 if fmt == "png" else 1  # JPEG blurs the panel's edge by a pixel
    assert left[0] - tolerance <= x0 and left[1] - tolerance <= y0 and x1 <= left[2] + tolerance and y1 <= left[3] + tolerance
    assert (x1 - x0) * (y1 - y0) >= 0.95 * (left[2] - left[0]) * (left[3] - left[1])
    assert_nothing_outside(emode, strain, (x0, y0, x1, y1))
    text = s.text_mask
    assert text[:24].sum() > 1000  # "*WESTWAY MEDICAL*", "ULTRASOUND", the date and time
    label_only = label_synthetic(np.zeros_like(emode))
    assert (emode[text] == label_only[text]).all()


def test_multi_frame_files_say_which_frames(ckpt, tmp_path, capsys):
    src = tmp_path / "loop.dcm"
    shutil.copy(real_file("OBXXXX1A_2frame.dcm"), src)
    assert predict(ckpt, tmp_path / "first", src) == 0
    assert f"warning: {src}: 2 frames; frame 0 used (--frames all or --frames N for others)" in capsys.readouterr().err
    # pydicom-data's second frame is the first through another palette: blue, not a B-mode.
    assert predict(ckpt, tmp_path / "all", src, extra=("--frames", "all")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"elastogan: error: {src}: frame 1: a colour image (") and not (tmp_path / "all").exists()
    assert predict(ckpt, tmp_path / "all", src, extra=("--frames", "all", "--allow-colour")) == 0
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names == sorted(f"loop_frame{i:03d}_SYNTHETIC_{k}" for i in (0, 1) for k in ("emode.png", "strain.npy", "strain.png"))
    assert predict(ckpt, tmp_path / "one", src, extra=("--frames", "1", "--allow-colour")) == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir())[0] == "loop_SYNTHETIC_emode.png"
    assert predict(ckpt, tmp_path / "past", src, extra=("--frames", "2")) == 2
    assert capsys.readouterr().err.endswith(f"error: {src}: frame 2 asked for (--frames), but the file has 2 frames\n")
    assert predict(ckpt, tmp_path / "bad", src, extra=("--frames", "last")) == 2
    assert "--frames must be 'first', 'all' or a frame index >= 0, got 'last'" in capsys.readouterr().err
    assert not (tmp_path / "past").exists() and not (tmp_path / "bad").exists()


def test_every_bad_input_is_named_at_once_and_nothing_written(ckpt, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(real_file("OBXXXX1A.dcm"), inputs / "good.dcm")
    shutil.copy(real_file("US1_UNCR.dcm"), inputs / "doppler.dcm")  # GE power Doppler, colour
    data = real_file("US1_J2KR.dcm").read_bytes()
    (inputs / "cut.dcm").write_bytes(data[: data.rfind(b"\xe0\x7f\x10\x00") + 2000])
    Image.fromarray(np.full((40, 60, 3), (200, 30, 30), np.uint8)).save(inputs / "pattern.png")  # a colour test card
    out = tmp_path / "out"
    assert predict(ckpt, out, inputs) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == f"elastogan: error: {inputs / 'cut.dcm'}: cannot decode frame 0: corrupt or truncated JPEG 2000 data"
    assert lines[1].startswith(f"elastogan: error: {inputs / 'doppler.dcm'}: a colour image (") and "not a grey B-mode" in lines[1]
    assert lines[2].startswith(f"elastogan: error: {inputs / 'pattern.png'}: a colour image (100% of")
    assert lines[3] == "elastogan: error: 3 bad files; nothing written (--skip-bad goes on with the good ones)"
    assert not out.exists()

    assert predict(ckpt, out, inputs, extra=("--skip-bad",)) == 0
    err = capsys.readouterr().err
    for name in ("cut.dcm", "doppler.dcm", "pattern.png"):
        assert f"elastogan: skipped {inputs / name}: " in err
    assert "skipped 3 input(s)" in err
    assert sorted(p.name for p in out.iterdir()) == [f"good_SYNTHETIC_{k}" for k in ("emode.png", "strain.npy", "strain.png")]

    (inputs / "good.dcm").unlink()
    assert predict(ckpt, tmp_path / "none", inputs, extra=("--skip-bad",)) == 2
    assert capsys.readouterr().err.endswith("error: no input could be used (3 skipped); nothing written\n")
    assert not (tmp_path / "none").exists()


def test_roi_is_in_the_outputs_pixels_and_must_lie_in_the_bmode_panel(ckpt, tmp_path, capsys):
    src = real_file("OBXXXX1A.dcm")
    assert predict(ckpt, tmp_path / "o", src, extra=("--roi", "200", "100", "400", "300")) == 0
    strain = np.load(tmp_path / "o" / "OBXXXX1A_SYNTHETIC_strain.npy")
    assert np.isfinite(strain[100:300, 200:400]).all() and np.isfinite(strain).sum() == 200 * 200
    capsys.readouterr()
    assert predict(ckpt, tmp_path / "x", src, extra=("--roi", "0", "0", "200", "200")) == 2
    assert capsys.readouterr().err == (f"elastogan: error: {src}: --roi (0, 0, 200, 200) is not inside the "
                                       f"B-mode panel {PHILIPS_REGION} of the 600×800 frame\n")
