"""Inference: any frame size in, the same size out; files labelled synthetic; DICOM through the data layer."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from elastogan.cli import main
from elastogan.data.images import read_rgb, read_strain, write_png
from elastogan.predict import Predictor, label_synthetic, pad_to_multiple
from elastogan.training.checkpoint import seed_all, write_training_checkpoint
from elastogan.training.config import CONFIG_DIR, load_config
from elastogan.training.trainer import build_nets

sys.path.insert(0, str(Path(__file__).parent))
from test_training import TINY  # noqa: E402


def make_checkpoint(path: Path, image_size: str) -> Path:
    cfg = load_config(CONFIG_DIR / "tiny.yaml", [*TINY, f"data.image_size={image_size}", "model.dropout=0.0"])
    seed_all(0)
    write_training_checkpoint(path, cfg=cfg, step=3, nets=build_nets(cfg, torch.device("cpu")), best_ncc=None)
    return path


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt")
    make_checkpoint(d / "native.pt", "null")
    make_checkpoint(d / "resized.pt", "32")
    return d


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


@pytest.mark.parametrize("name", ["native.pt", "resized.pt"])
@pytest.mark.parametrize("shape", [(37, 53), (64, 32), (5, 7)])
def test_any_frame_size_gives_outputs_of_that_size(ckpt_dir, name, shape):
    p = Predictor.from_checkpoint(ckpt_dir / name, device="cpu")
    emode, strain = p.predict(frame(*shape))
    assert emode.shape == (*shape, 3) and emode.dtype == np.uint8
    assert strain.shape == shape and strain.dtype == np.float32
    assert np.isfinite(strain).all() and 0 <= strain.min() and strain.max() <= 1


def test_padding_crops_back_the_same_pixels(ckpt_dir):
    """A frame already of a multiple of the divisor predicts the same as its padded self, cropped."""
    p = Predictor.from_checkpoint(ckpt_dir / "native.pt", device="cpu")
    assert p.input_size is None and p.divisor == 4
    x = pad_to_multiple(torch.zeros(1, 1, 37, 53), p.divisor)
    assert x.shape[-2:] == (40, 56)
    b = frame(40, 56)
    _, full = p.predict(b)
    with torch.no_grad():
        direct = p.generator(torch.from_numpy(b)[None, None].float() / 127.5 - 1)["strain"][0, 0].numpy()
    assert np.allclose(full, direct, atol=1e-6)


def test_batching_does_not_change_results(ckpt_dir):
    p = Predictor.from_checkpoint(ckpt_dir / "native.pt", device="cpu")
    frames = [frame(37, 53, 1), frame(20, 24, 2), frame(37, 53, 3)]
    together = p.predict_many(frames, batch_size=2)
    for f, (e, s) in zip(frames, together):
        e1, s1 = p.predict(f)
        assert np.allclose(s, s1, atol=1e-5)
        assert np.abs(e.astype(int) - e1).max() <= 1


def test_roi_limits_strain_and_colour(ckpt_dir):
    p = Predictor.from_checkpoint(ckpt_dir / "native.pt", device="cpu")
    b = frame(40, 60)
    emode, strain = p.predict(b, roi=(5, 4, 30, 36), colorbar=False)
    assert np.isnan(strain[:4]).all() and np.isnan(strain[:, 30:]).all()
    assert np.isfinite(strain[4:36, 5:30]).all()
    assert (emode[:4] == b[:4, :, None]).all()  # grey B-mode outside the ROI
    with pytest.raises(ValueError, match=r"ROI \(5, 4, 70, 36\) is not inside the 40×60 frame"):
        p.predict(b, roi=(5, 4, 70, 36))
    with pytest.raises(ValueError, match="expected an H×W uint8 B-mode, got float64"):
        p.predict(b.astype(float))


def test_label_burns_text_into_the_corner_only():
    img = np.full((64, 96, 3), 128, np.uint8)
    out = label_synthetic(img)
    changed = np.argwhere((out != img).any(axis=-1))
    assert len(changed) > 50
    assert changed[:, 0].max() < 32 and changed[:, 1].max() < 96
    assert (img == 128).all()  # the input is not modified


def test_predict_cli_writes_labelled_same_size_outputs(ckpt_dir, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_png(inputs / "a.png", frame(37, 53))
    write_png(inputs / "b.png", np.repeat(frame(30, 41)[..., None], 3, axis=-1))  # RGB input
    (inputs / "notes.txt").write_text("not an image")  # skipped inside a folder
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(ckpt_dir / "native.pt"), "--input", str(inputs), "--out", str(out), "--batch-size", "1", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    p = Predictor.from_checkpoint(ckpt_dir / "native.pt", device="cpu")
    for name, shape in (("a", (37, 53)), ("b", (30, 41))):
        emode = read_rgb(out / f"{name}_SYNTHETIC_emode.png")
        npy = np.load(out / f"{name}_SYNTHETIC_strain.npy")
        png = read_strain(out / f"{name}_SYNTHETIC_strain.png")
        assert emode.shape == (*shape, 3) and npy.shape == shape and npy.dtype == np.float32
        assert np.abs(png - npy).max() <= 1 / 65534 + 1e-7
        clean, strain = p.predict(frame(*shape) if name == "a" else frame(30, 41))
        assert np.allclose(npy, strain, atol=1e-6)
        assert (emode != clean).any() and (emode == label_synthetic(clean)).all()
    assert sorted(x.name for x in out.iterdir()) == sorted(
        f"{n}_SYNTHETIC_{k}" for n in "ab" for k in ("emode.png", "strain.npy", "strain.png")
    )


def test_predict_cli_on_real_ultrasound_dicom(ckpt_dir, tmp_path, capsys):
    examples = pytest.importorskip("pydicom.examples")
    src = Path(examples.get_path("ybr_color"))
    noext = tmp_path / "US0001"  # scanner exports often have no extension
    shutil.copy(Path(examples.get_path("rgb_color")), noext)
    code = main(["predict", "--checkpoint", str(ckpt_dir / "resized.pt"), "--input", str(src), str(noext), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    for stem in (src.stem, "US0001"):
        assert read_rgb(tmp_path / "o" / f"{stem}_SYNTHETIC_emode.png").shape == (240, 320, 3)
        assert np.load(tmp_path / "o" / f"{stem}_SYNTHETIC_strain.npy").shape == (240, 320)


def test_predict_cli_uses_the_grey_region_of_a_dual_display_dicom(ckpt_dir, tmp_path, capsys):
    """E-mode | B-mode screen with burned-in text and a region per panel: the B-mode region alone
    reaches the network, and the outputs have its size."""
    pytest.importorskip("pydicom")
    from scanner_screens import dual_screen, write_dicom

    screen = dual_screen(h=40, w=52, emode_left=True)  # the colour panel comes first
    path = write_dicom(tmp_path / "dual.dcm", [screen.rgb], regions=[(screen.emode_box, 1), (screen.bmode_box, 1)])
    assert screen.rgb.shape[:2] != screen.bmode.shape
    code = main(["predict", "--checkpoint", str(ckpt_dir / "native.pt"), "--input", str(path), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    strain = np.load(tmp_path / "o" / "dual_SYNTHETIC_strain.npy")
    emode = read_rgb(tmp_path / "o" / "dual_SYNTHETIC_emode.png")
    assert strain.shape == (40, 52) and emode.shape == (40, 52, 3)
    clean, expected = Predictor.from_checkpoint(ckpt_dir / "native.pt", device="cpu").predict(screen.bmode)
    assert np.allclose(strain, expected, atol=1e-6)
    assert (emode == label_synthetic(clean)).all()


def test_predict_cli_errors(ckpt_dir, tmp_path, capsys):
    txt = tmp_path / "x.txt"
    txt.write_text("hello")
    args = ["--out", str(tmp_path / "o"), "--device", "cpu"]
    assert main(["predict", "--checkpoint", str(ckpt_dir / "native.pt"), "--input", str(txt), *args]) == 2
    assert "not a supported image" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(tmp_path / "none.pt"), "--input", str(txt), *args]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    (tmp_path / "d1").mkdir(), (tmp_path / "d2").mkdir()
    write_png(tmp_path / "d1" / "f.png", frame(8, 8))
    write_png(tmp_path / "d2" / "f.png", frame(8, 8))
    assert main(["predict", "--checkpoint", str(ckpt_dir / "native.pt"), "--input", str(tmp_path / "d1"), str(tmp_path / "d2"), *args]) == 2
    assert "two inputs share the name 'f'" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(ckpt_dir / "native.pt"), "--input", str(tmp_path / "nothing"), *args]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(ckpt_dir / "native.pt"), "--input", str(tmp_path / "d1"), "--roi", "0", "0", "9", "4", *args]) == 2
    assert f"--roi: {tmp_path / 'd1' / 'f.png'}: ROI (0, 0, 9, 4) is not inside the 8×8 frame" in capsys.readouterr().err
    # a frame too small without --roi names the file, not --roi
    write_png(tmp_path / "dot.png", frame(1, 1))
    assert main(["predict", "--checkpoint", str(ckpt_dir / "native.pt"), "--input", str(tmp_path / "dot.png"), *args]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'dot.png'}: a 1×1 frame is too small" in err and "--roi" not in err
    # an --out that is a file, or lies under one: named, before any model is loaded
    for out, problem in ((txt, "is a file"), (txt / "o", f"lies under {txt}, which is a file")):
        code = main(["predict", "--checkpoint", str(tmp_path / "none.pt"), "--input", str(tmp_path / "d1"), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and f"--out {out}: {problem}, not a folder" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_predict_cli_roi(ckpt_dir, tmp_path):
    write_png(tmp_path / "f.png", frame(20, 30))
    assert main(["predict", "--checkpoint", str(ckpt_dir / "native.pt"), "--input", str(tmp_path / "f.png"),
                 "--out", str(tmp_path / "o"), "--roi", "2", "3", "20", "15", "--device", "cpu"]) == 0
    strain = np.load(tmp_path / "o" / "f_SYNTHETIC_strain.npy")
    assert np.isfinite(strain[3:15, 2:20]).all() and np.isnan(strain).sum() == 20 * 30 - 12 * 18
    assert np.isnan(read_strain(tmp_path / "o" / "f_SYNTHETIC_strain.png")).sum() == 20 * 30 - 12 * 18


def test_exported_checkpoint_predicts_the_same(ckpt_dir, tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(ckpt_dir / "native.pt"), "--out", str(out)]) == 0
    assert "EMA generator (transunet, step 3)" in capsys.readouterr().out
    assert out.stat().st_size < (ckpt_dir / "native.pt").stat().st_size / 2
    b = frame(37, 53)
    full, small = (Predictor.from_checkpoint(p, device="cpu").predict(b) for p in (ckpt_dir / "native.pt", out))
    assert np.array_equal(full[0], small[0]) and np.array_equal(full[1], small[1])
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]) == 2
