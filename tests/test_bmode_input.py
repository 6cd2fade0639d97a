"""One inference path: a file gives the same B-mode through every door of the product.

The doors: ``elastogan predict`` (``elastogan.bmode_input.load_bmode``), the app's Preview
upload, and — once the file is ingested into a manifest — ``elastogan study create`` and
``elastogan evaluate``. A dual display (E-mode | B-mode, each an ultrasound region, burned-in
text around them) is where loaders used to differ: the app took the first region, predict the
least colourful one.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from elastogan.bmode_input import check_unique_stems, collect_inputs, load_bmode
from elastogan.data.images import read_gray, write_png
from elastogan.errors import InputFileError, UserError

sys.path.insert(0, str(Path(__file__).parent))
from test_predict import make_checkpoint  # noqa: E402

pytest.importorskip("pydicom")
from scanner_screens import dual_screen, write_dicom  # noqa: E402


@pytest.fixture(scope="module")
def dual(tmp_path_factory):
    """A dual-display DICOM whose colour panel comes first (the app's old rule took it)."""
    root = tmp_path_factory.mktemp("dual")
    screen = dual_screen(h=64, w=80, seed=3, emode_left=True)
    path = write_dicom(root / "exports" / "US0001", [screen.rgb], regions=[(screen.emode_box, 1), (screen.bmode_box, 1)])
    return screen, path


def test_a_dual_display_dicom_gives_one_bmode_through_every_door(dual, tmp_path):
    from elastogan.app import study_db
    from elastogan.app.preview import preview
    from elastogan.app.study_create import create_study
    from elastogan.app.uploads import load_bmode_upload, load_upload
    from elastogan.data.ingest import IngestOptions, ingest
    from elastogan.data.manifest import read_manifest
    from elastogan.eval.evaluate_report import load_real_case
    from elastogan.predict import Predictor

    screen, dicom = dual
    assert screen.rgb.shape[:2] != screen.bmode.shape  # the screen is more than the B-mode
    ckpt = make_checkpoint(tmp_path / "model.pt", "null")
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")

    # predict
    via_predict = load_bmode(dicom)
    # the app's Preview
    via_upload = load_bmode_upload(dicom)
    via_preview = preview(predictor, dicom).bmode
    assert np.array_equal(via_preview[..., 0], via_preview[..., 2])
    # ingest → manifest → evaluate and study create
    data = tmp_path / "data"
    ingest(dicom.parent, data, IngestOptions(colormap="hitachi"))
    lines = (data / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = {**json.loads(lines[0]), "split": "test", "pathology": "malignant"}  # a study needs the truth
    (data / "manifest.jsonl").write_text(json.dumps(record) + "\n")
    (case,) = read_manifest(data / "manifest.jsonl").cases
    via_evaluate = load_real_case(case).bmode
    study = create_study(data / "manifest.jsonl", ckpt, tmp_path / "study", split="test", device="cpu", log=lambda *_: None)
    with sqlite3.connect(study.path / study_db.DB_NAME) as con:
        (bmode_id,) = con.execute("SELECT bmode FROM cases").fetchone()
    via_study = read_gray(study.path / study_db.IMAGES_DIR / f"{bmode_id}.png")

    for name, got in (("predict", via_predict), ("upload", via_upload), ("preview", via_preview[..., 0]),
                      ("evaluate", via_evaluate), ("study create", via_study)):
        assert got.dtype == np.uint8 and np.array_equal(got, screen.bmode), name
    # The real E-mode upload of the same file gives the elastogram panel.
    assert np.array_equal(load_upload(dicom, "real E-mode"), screen.emode)


def test_load_bmode_reads_every_format_to_the_same_grey_frame(dual, tmp_path):
    screen, _ = dual
    grey = screen.bmode
    write_png(tmp_path / "grey.png", grey)
    write_png(tmp_path / "rgb.png", np.repeat(grey[..., None], 3, axis=-1))
    np.save(tmp_path / "grey.npy", grey)
    np.save(tmp_path / "float.npy", grey.astype(np.float32) / 255)
    single = write_dicom(tmp_path / "single.dcm", [np.repeat(grey[..., None], 3, axis=-1)])
    for path in (tmp_path / "grey.png", tmp_path / "rgb.png", tmp_path / "grey.npy", tmp_path / "float.npy", single):
        assert np.array_equal(load_bmode(path), grey), path.name


def test_load_bmode_names_the_file_it_refuses(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    write_png(tmp_path / "dot.png", np.zeros((1, 5), np.uint8))
    for path, problem in ((tmp_path / "notes.txt", "not a supported image"), (tmp_path / "dot.png", "a 1×5 frame is too small"),
                          (tmp_path / "missing.png", "file not found")):
        with pytest.raises(InputFileError, match=problem) as e:
            load_bmode(path)
        assert str(e.value).startswith(f"{path}: ")


def test_collect_inputs_sniffs_folders_and_refuses_clashing_names(dual, tmp_path):
    _, dicom = dual
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    write_png(folder / "b.png", np.zeros((4, 4), np.uint8))
    (folder / "a.txt").write_text("skipped")
    (folder / "US0001").write_bytes(dicom.read_bytes())  # no extension: found by its DICM marker
    write_png(folder / "sub" / "deeper.png", np.zeros((4, 4), np.uint8))  # one level only
    files = collect_inputs([folder, tmp_path / "scans" / "b.png"])
    assert files == [folder / "US0001", folder / "b.png", folder / "b.png"]
    with pytest.raises(UserError, match="two inputs share the name 'b'"):
        check_unique_stems(files)
    check_unique_stems(files[:2])
    with pytest.raises(InputFileError, match="folder holds no PNG, JPEG, .npy or DICOM files"):
        collect_inputs([_empty(tmp_path)])
    with pytest.raises(InputFileError, match="no such file or folder"):
        collect_inputs([tmp_path / "nowhere"])


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "readme.md").write_text("no images here")
    return d


def test_a_screenshot_gives_its_bmode_panel_and_a_plain_picture_its_whole_frame(tmp_path):
    """Issue 15: a PNG screen (B-mode | E-mode, burned-in text around them) gives its B-mode
    panel, exactly; a plain B-mode picture, speckle to its edges or low in contrast, gives
    itself, whole."""
    from scanner_screens import bmode_image

    screen = dual_screen(h=64, w=80, seed=4)
    write_png(tmp_path / "screen.png", screen.rgb)
    assert np.array_equal(load_bmode(tmp_path / "screen.png"), screen.bmode)
    plain = bmode_image(96, 200, 1)
    flat = (plain // 8 + 100).astype(np.uint8)  # low-contrast speckle matches itself by chance
    for name, img in (("plain.png", plain), ("flat.png", flat)):
        write_png(tmp_path / name, img)
        assert np.array_equal(load_bmode(tmp_path / name), img), name
