"""``elastogan ingest``: scanner exports → a validated, pseudonymised, patient-split data set.

The exports are screens drawn the way scanners draw them (``tests/scanner_screens.py``):
B-mode | E-mode panels from ``render_emode`` with burned-in patient text around them, as PNG
and as DICOM (with and without ultrasound regions, with and without an extension), plus
pydicom's real ultrasound files and every kind of bad file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom.examples
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from elastogan.cli import main
from elastogan.data.images import read_gray, read_rgb, read_strain
from elastogan.data.ingest import assign_splits, pseudonym
from elastogan.data.manifest import validate_manifest
from scanner_screens import PATIENT_NAME, dual_screen, png_header_only, write_dicom

TOLERANCE = 0.02  # strain error, share of the display range


def save_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A folder of five dual-display exports from three patients, and the truth of each."""
    root = tmp_path_factory.mktemp("exports")
    truths = {}
    s = dual_screen(seed=0, alpha=0.5)
    truths["patient_a/screen1.png"] = (s, "patient_a")
    save_png(root / "patient_a" / "screen1.png", s.rgb)
    s = dual_screen(seed=1, alpha=0.6, emode_left=True)
    truths["patient_a/screen2.png"] = (s, "patient_a")
    save_png(root / "patient_a" / "screen2.png", s.rgb)
    # DICOM, no extension, two tissue regions: the elastogram is told by its colour.
    s = dual_screen(seed=2, alpha=0.45)
    write_dicom(root / "US0001", [s.rgb], regions=[(s.bmode_box, 1), (s.emode_box, 1)])
    truths["US0001"] = (s, "0012345")
    # DICOM whose regions say which panel is the colour one (data type 2), same patient.
    s = dual_screen(seed=3, alpha=0.55, emode_left=True)
    write_dicom(root / "US0002.dcm", [s.rgb], regions=[(s.emode_box, 2), (s.bmode_box, 1)])
    truths["US0002.dcm"] = (s, "0012345")
    s = dual_screen(seed=4, alpha=0.5)
    truths["other/x.png"] = (s, "other")
    save_png(root / "other" / "x.png", s.rgb)
    return root, truths


def run(*args: str) -> int:
    return main(["ingest", *map(str, args)])


def read_cases(out: Path):
    cases, problems = validate_manifest(out / "manifest.jsonl")
    assert problems == []
    return cases


def match_truth(case, truths):
    """The export a case came from: the one whose B-mode panel it holds, pixel for pixel."""
    bmode = read_gray(case.bmode)
    found = [k for k, (s, _) in truths.items() if s.bmode.shape == bmode.shape and np.array_equal(s.bmode, bmode)]
    assert len(found) == 1, "each case's B-mode must be exactly one export's B-mode panel"
    return found[0]


def test_dual_display_exports_become_a_validated_manifest(exports, tmp_path, capsys):
    root, truths = exports
    out = tmp_path / "dataset"
    assert run("--input", root, "--out", out, "--seed", 7) == 0
    stdout = capsys.readouterr().out
    assert "ingested 5 case(s) from 3 patient(s)" in stdout and "(validated)" in stdout
    cases = read_cases(out)
    assert len(cases) == 5
    assert sorted(p.name for p in out.iterdir()) == ["bmode", "emode", "manifest.jsonl", "strain"]

    by_export = {}
    for case in cases:
        key = match_truth(case, truths)
        by_export[key] = case
        s, _ = truths[key]
        # Only the image panels leave ingestion: B-mode and E-mode are the panels exactly,
        # so none of the burned-in text around them can be in them.
        np.testing.assert_array_equal(read_gray(case.bmode), s.bmode)
        np.testing.assert_array_equal(read_rgb(case.emode), s.emode)
        assert case.roi == s.roi
        strain = read_strain(case.strain)
        x0, y0, x1, y1 = s.roi
        err = np.abs(strain - s.strain)[y0:y1, x0:x1]
        assert err.max() < TOLERANCE, f"{key}: max strain error {err.max():.4f}"
        inside = np.zeros(strain.shape, bool)
        inside[y0:y1, x0:x1] = True
        assert np.isnan(strain[~inside]).all() and not np.isnan(strain[inside]).any()
        assert case.colormap == "hitachi" and case.source["poor_match_fraction"] == 0.0
    assert len(by_export) == 5

    dicom_case = by_export["US0001"]
    assert dicom_case.pixel_spacing_mm == pytest.approx((0.1, 0.1))
    assert dicom_case.source["panels"] == "dicom regions"
    assert dicom_case.source["emode_chosen_by"] == "colour saturation"
    assert by_export["US0002.dcm"].source["emode_chosen_by"] == "dicom region data type"
    assert by_export["US0002.dcm"].source["emode_panel"] == "left"
    assert by_export["patient_a/screen1.png"].source["panels"] == "twin panels"
    assert by_export["patient_a/screen1.png"].pixel_spacing_mm is None

    # Pseudonyms: one per patient, the same for a patient's cases, never the real id.
    pids = {k: c.patient_id for k, c in by_export.items()}
    assert pids["US0001"] == pids["US0002.dcm"] and pids["patient_a/screen1.png"] == pids["patient_a/screen2.png"]
    assert len(set(pids.values())) == 3
    splits = {c.patient_id: set() for c in cases}
    for c in cases:
        splits[c.patient_id].add(c.split)
    assert all(len(s) == 1 for s in splits.values())

    text = (out / "manifest.jsonl").read_text()
    for identifier in ("0012345", "DOE", "ELSEWHERE", "patient_a", "screen1", "US0001", "x.png", "1961"):
        assert identifier not in text
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"0012345" not in data and PATIENT_NAME.encode() not in data


def test_seeded_split_is_stable_while_pseudonyms_change(exports, tmp_path):
    root, truths = exports
    runs = []
    for name in ("one", "two"):
        assert run("--input", root, "--out", tmp_path / name, "--seed", 3) == 0
        runs.append({match_truth(c, truths): c for c in read_cases(tmp_path / name)})
    assert {k: c.split for k, c in runs[0].items()} == {k: c.split for k, c in runs[1].items()}
    assert all(runs[0][k].patient_id != runs[1][k].patient_id for k in runs[0])


def test_keep_identifiers(exports, tmp_path):
    root, truths = exports
    out = tmp_path / "named"
    assert run("--input", root, "--out", out, "--keep-identifiers") == 0
    for case in read_cases(out):
        key = match_truth(case, truths)
        assert case.patient_id == truths[key][1]
        assert case.source["files"] == [key]


def test_colour_bar_map_and_grey_map(tmp_path):
    root = tmp_path / "in"
    hitachi = dual_screen(seed=5, alpha=0.5)
    save_png(root / "h.png", hitachi.rgb)
    assert run("--input", root, "--out", tmp_path / "bar", "--colormap", "bar") == 0
    (case,) = read_cases(tmp_path / "bar")
    assert case.colormap is None and case.source["colormap_from"] == "colour bar"
    assert np.nanmax(np.abs(read_strain(case.strain) - hitachi.strain)) < TOLERANCE

    # Grey maps: the elastogram is the panel with the bar; opaque, or blended over the speckle.
    grey_root = tmp_path / "grey"
    greys = {
        "opaque.png": dual_screen(seed=6, colormap="grey-white-soft", alpha=1.0, emode_left=True),
        "blended.png": dual_screen(seed=7, colormap="grey-white-soft", alpha=0.6),
    }
    for name, screen in greys.items():
        save_png(grey_root / name, screen.rgb)
    assert run("--input", grey_root, "--out", tmp_path / "g", "--colormap", "grey-white-soft") == 0
    for case in read_cases(tmp_path / "g"):
        screen = next(g for g in greys.values() if np.array_equal(g.bmode, read_gray(case.bmode)))
        assert case.source["emode_chosen_by"] == "colour bar" and case.roi == screen.roi
        assert case.source["alpha"] == pytest.approx(1.0 if screen is greys["opaque.png"] else 0.6, abs=0.005)
        assert np.nanmax(np.abs(read_strain(case.strain) - screen.strain)) < TOLERANCE


def test_colour_bar_contradicting_the_named_map_is_an_error(tmp_path, capsys):
    root = tmp_path / "in"
    path = save_png(root / "h.png", dual_screen(seed=5).rgb)
    assert run("--input", root, "--out", tmp_path / "out", "--colormap", "grey-white-soft") == 2
    err = capsys.readouterr().err
    assert err == f"elastogan: error: {path}: the image's colour bar does not match the grey-white-soft map; pass the right --colormap (or --colormap bar)\n"
    assert not (tmp_path / "out").exists()


def test_pairs_by_name(tmp_path, capsys):
    root = tmp_path / "in"
    s = dual_screen(seed=7, alpha=0.5)
    # Each file a screen of its own, burned-in text above the panel.
    for role, box in (("bmode", s.bmode_box), ("emode", s.emode_box)):
        screen = s.rgb.copy()
        other = s.emode_box if role == "bmode" else s.bmode_box
        screen[other[1] : other[3], other[0] : other[2]] = 0
        save_png(root / f"c1_{role}.png", screen)
    t = dual_screen(seed=8, alpha=0.6)
    write_dicom(root / "c2-b.dcm", [t.rgb], regions=[(t.bmode_box, 1)], patient_id="P2")
    write_dicom(root / "c2-e.dcm", [t.rgb], regions=[(t.emode_box, 1)], patient_id="P2")
    assert run("--input", root, "--out", tmp_path / "out", "--layout", "pairs") == 0
    cases = read_cases(tmp_path / "out")
    assert len(cases) == 2
    for case in cases:
        truth = s if np.array_equal(read_gray(case.bmode), s.bmode) else t
        np.testing.assert_array_equal(read_gray(case.bmode), truth.bmode)
        np.testing.assert_array_equal(read_rgb(case.emode), truth.emode)
        assert case.roi == truth.roi and case.source["layout"] == "pairs"

    save_png(root / "c3_bmode.png", s.rgb)
    assert run("--input", root, "--out", tmp_path / "out2", "--layout", "pairs") == 2
    assert capsys.readouterr().err == f"elastogan: error: {root / 'c3_bmode.png'}: no E-mode partner for 'c3'\n"


def test_one_dicom_region_around_both_panels(tmp_path):
    """Some scanners declare one region for the whole dual display: the panels are found in it."""
    s = dual_screen(seed=10, alpha=0.5)
    x0, y0 = s.bmode_box[:2]
    x1, y1 = s.emode_box[2:]
    write_dicom(tmp_path / "in" / "dual.dcm", [s.rgb], regions=[((x0 - 2, y0 - 2, x1 + 2, y1 + 2), 1)], delta_cm=0.02)
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out") == 0
    (case,) = read_cases(tmp_path / "out")
    np.testing.assert_array_equal(read_rgb(case.emode), s.emode)
    assert case.source["panels"] == "twin panels within dicom region" and case.roi == s.roi
    assert case.pixel_spacing_mm == pytest.approx((0.2, 0.2))


def test_jpeg_export(tmp_path):
    """Lossy JPEG: colour bleeds over the ROI edge and speckle gets noisy, yet the strain holds."""
    s = dual_screen(seed=11, alpha=0.5, h=144, w=192)
    (tmp_path / "in").mkdir()
    Image.fromarray(s.rgb).save(tmp_path / "in" / "screen.jpg", quality=95)
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out") == 0
    (case,) = read_cases(tmp_path / "out")
    assert all(abs(a - b) <= 2 for a, b in zip(case.roi, s.roi))
    assert case.source["bmode_under_roi"] == "given"
    x0, y0, x1, y1 = case.roi
    err = np.abs(read_strain(case.strain) - s.strain)[y0:y1, x0:x1]
    assert err.mean() < TOLERANCE and case.source["poor_match_fraction"] < 0.1


def test_colour_bar_beside_the_image_region(tmp_path, capsys):
    """The bar drawn on the screen outside the E-mode's region, as many scanners do."""
    from elastogan.colormaps import get_colormap
    from elastogan.display import render_emode

    s = dual_screen(seed=12, alpha=0.5)
    screen = s.rgb.copy()
    x0, y0, x1, y1 = s.emode_box
    emode = render_emode(s.bmode, s.strain, s.roi, colormap="hitachi", alpha=0.5, colorbar=False)
    screen[y0:y1, x0:x1] = emode
    ramp = get_colormap("hitachi").colorize(np.linspace(1.0, 0.0, y1 - y0 - 20))  # soft on top
    screen[y0 + 10 : y1 - 10, x1 + 2 : x1 + 7] = np.rint(ramp[:, None, :] * 255).astype(np.uint8)
    write_dicom(tmp_path / "in" / "a.dcm", [screen], regions=[(s.bmode_box, 1), (s.emode_box, 1)])
    write_dicom(tmp_path / "in" / "b.dcm", [screen, np.zeros_like(screen)], regions=[(s.bmode_box, 1), (s.emode_box, 1)])
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out", "--colormap", "bar") == 0
    assert f"warning: {tmp_path / 'in' / 'b.dcm'}: 2 frames; frame 0 ingested" in capsys.readouterr().err
    for case in read_cases(tmp_path / "out"):
        assert case.source["colorbar"] == {"box": [x1 + 2, y0 + 10, x1 + 7, y1 - 10], "in": "screen"}
        np.testing.assert_array_equal(read_rgb(case.emode), emode)
        assert np.nanmax(np.abs(read_strain(case.strain) - s.strain)) < TOLERANCE
    assert run("--input", tmp_path / "in", "--out", tmp_path / "grey", "--colormap", "grey-black-soft") == 2
    assert "colour bar does not match the grey-black-soft map" in capsys.readouterr().err


def test_an_elastogram_over_the_only_bmode_is_read_with_the_bmode_estimated(tmp_path, capsys):
    """A screen with one picture, the elastogram drawn over it (no B-mode beside it): the
    strain is read from the colour and the B-mode under the ROI estimated; a plain B-mode or a
    grey map over the only B-mode is refused, named."""
    from elastogan.display import colorbar_mask, render_emode
    from scanner_screens import bmode_image, standard_roi, strain_image

    root = tmp_path / "in"
    truths = {}
    for name, (h, w) in {"square.png": (96, 128), "wide.png": (96, 240)}.items():
        b, st = bmode_image(h, w, 0), strain_image(h, w, 0)
        screen = np.zeros((h + 20, w + 20, 3), np.uint8)
        screen[10 : 10 + h, 10 : 10 + w] = render_emode(b, st, standard_roi(h, w))
        save_png(root / name, screen)
        truths[name] = (b, st, standard_roi(h, w))
    assert run("--input", root, "--out", tmp_path / "out", "--keep-identifiers") == 0
    cases = read_cases(tmp_path / "out")
    assert len(cases) == 2
    for case in cases:
        b, st, roi = truths[case.source["files"][0]]
        assert case.source["layout"] == "overlay" and case.source["bmode_under_roi"] == "estimated"
        assert case.roi == roi
        x0, y0, x1, y1 = roi
        assert np.nanmax(np.abs(read_strain(case.strain) - st)[y0:y1, x0:x1]) < TOLERANCE
        # The B-mode under the ROI comes back from the colour to within rounding; outside it
        # (but for the bar and its labels) the panel is the B-mode.
        err = np.abs(read_gray(case.bmode).astype(int) - b)
        assert err[y0:y1, x0:x1].max() <= 3
        outside = ~colorbar_mask(*b.shape)
        outside[y0:y1, x0:x1] = False
        assert err[outside].max() == 0

    grey = tmp_path / "grey"
    b, st = bmode_image(96, 128, 1), strain_image(96, 128, 1)
    screen = np.zeros((116, 148, 3), np.uint8)
    screen[10:106, 10:138] = render_emode(b, st, standard_roi(96, 128), colormap="grey-white-soft")
    save_png(grey / "grey_overlay.png", screen)
    assert run("--input", grey, "--out", tmp_path / "g", "--colormap", "grey-white-soft") == 2
    err = capsys.readouterr().err
    assert f"{grey / 'grey_overlay.png'}: one image panel (1 found, no two of one size): a grey-map elastogram drawn over the only B-mode cannot be told from that B-mode" in err
    plain = tmp_path / "plain"
    screen[10:106, 10:138] = b[..., None]
    save_png(plain / "plain.png", screen)
    assert run("--input", plain, "--out", tmp_path / "p") == 2
    err = capsys.readouterr().err
    assert err == f"elastogan: error: {plain / 'plain.png'}: no dual display found (found 1 image panel(s)) and no coloured elastogram over a B-mode; is this a plain B-mode? (try --layout pairs)\n"


BAD = {
    "empty.png": "empty file",
    "notes.txt": "not a supported image (expected PNG, JPEG, .npy or DICOM)",
    "truncated.png": "not a readable image",
    "corrupt.png": "not a readable image",
    "bomb.png": "image has more than 64000000 pixels; not an ultrasound frame",
    "IMG_CT": "expected an ultrasound image (Modality US), got CT (CT Image Storage)",
    "bmode_only.png": "no elastogram found",
}


def make_bad(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("referral letter\n")
    good = dual_screen(seed=9)
    save_png(root / "ok.png", good.rgb)
    data = (root / "ok.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[200:260] = b"\x00" * 60
    (root / "corrupt.png").write_bytes(bytes(corrupt))
    png_header_only(root / "bomb.png", 20_000, 20_000)
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "IMG_CT")
    (root / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)  # an index, not an image
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    plain = good.rgb.copy()
    x0, y0, x1, y1 = good.emode_box
    plain[y0:y1, x0:x1] = np.repeat(good.bmode[..., None], 3, axis=-1)  # B-mode | B-mode
    save_png(root / "bmode_only.png", plain)


@pytest.mark.parametrize("bad", sorted(BAD))
def test_each_bad_file_stops_the_run_with_one_line(tmp_path, capsys, bad):
    root = tmp_path / "in"
    make_bad(root)
    for name in BAD:
        if name != bad:
            (root / name).unlink()
    out = tmp_path / "out"
    assert run("--input", root, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"elastogan: error: {root / bad}: ") and BAD[bad] in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and list(tmp_path.glob(".out*")) == []  # nothing half-written


def test_skip_bad_goes_on_with_the_good_files(tmp_path, capsys):
    root = tmp_path / "in"
    make_bad(root)
    out = tmp_path / "out"
    assert run("--input", root, "--out", out, "--skip-bad") == 0
    captured = capsys.readouterr()
    for name, problem in BAD.items():
        assert f"elastogan: skipped {root / name}: {problem}" in captured.err
    assert "skipped 7 file(s)" in captured.out and "Traceback" not in captured.err
    assert "DICOMDIR" not in captured.err and ".DS_Store" not in captured.err
    assert len(read_cases(out)) == 1


def test_pydicoms_real_ultrasound_files_are_reported_not_guessed(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("palette_color", "ybr_color", "rgb_color", "jpeg2k"):
        shutil.copy(pydicom.examples.get_path(name), root / name)
    assert run("--input", root, "--out", tmp_path / "out", "--skip-bad") == 2
    err = capsys.readouterr().err
    # A Philips B-mode: no colour anywhere.
    assert f"skipped {root / 'palette_color'}: no elastogram found" in err
    # A SonoSite cine with a toolbar: no dual display and no colour over its B-mode.
    assert f"skipped {root / 'ybr_color'}: no dual display found" in err
    # GE dual power-Doppler screens: their colour bar is no Hitachi strain bar.
    for name in ("rgb_color", "jpeg2k"):
        assert f"skipped {root / name}: the image's colour bar does not match the hitachi map" in err
    assert f"elastogan: error: {root}: no case could be ingested (4 file(s) skipped)" in err
    assert not (tmp_path / "out").exists()


def test_folder_errors(exports, tmp_path, capsys):
    root, _ = exports
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run("--input", root, "--out", out) == 2
    assert "output folder exists and is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert run("--input", tmp_path / "missing", "--out", tmp_path / "o") == 2
    assert "input folder not found" in capsys.readouterr().err
    assert run("--input", root, "--out", tmp_path / "o", "--colormap", "jet") == 2
    assert "unknown colour map 'jet'" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out, problem in [(afile, f"{afile}: is a file, not a folder"),
                         (afile / "sub", f"{afile / 'sub'}: lies under {afile}, which is a file, not a folder")]:
        assert run("--input", root, "--out", out) == 2
        err = capsys.readouterr().err
        assert err == f"elastogan: error: {problem}\n"
    assert afile.read_text() == "mine"
    assert run("--input", afile, "--out", tmp_path / "o") == 2
    assert f"{afile}: input is a file, not a folder" in capsys.readouterr().err
    assert run("--input", root, "--out", tmp_path / "o", "--seed", "-1") == 2
    assert "seed must be a non-negative integer, got -1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


def test_pseudonyms_and_splits():
    key = b"k" * 32
    assert pseudonym("0012345", key) == pseudonym("0012345", key) != pseudonym("0012345", b"j" * 32)
    assert pseudonym("0012345", key).startswith("p") and len(pseudonym("0012345", key)) == 17
    ids = [f"P{i}" for i in range(20)]
    split = assign_splits(ids, seed=1)
    assert split == assign_splits(list(reversed(ids)), seed=1)
    counts = {s: list(split.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 14, "val": 3, "test": 3}
    assert sorted(assign_splits(["a", "b", "c"], seed=0).values()) == ["test", "train", "val"]
    assert set(assign_splits(["a", "b"], seed=0).values()) == {"train"}


def _cine(tmp_path: Path, n: int = 3, *, name: str = "loop.dcm", blank: int | None = None):
    """A dual-display cine loop: frame i is the screen of seed 30 + i (its own B-mode and strain)."""
    screens = [dual_screen(seed=30 + i) for i in range(n)]
    frames = [np.zeros_like(s.rgb) if i == blank else s.rgb for i, s in enumerate(screens)]
    s0 = screens[0]
    write_dicom(tmp_path / "in" / name, frames, regions=[(s0.bmode_box, 1), (s0.emode_box, 1)])
    return screens


def test_cine_loop_every_frame_a_case_of_one_patient(tmp_path, capsys):
    screens = _cine(tmp_path)
    write_dicom(tmp_path / "in" / "still.dcm", [dual_screen(seed=40).rgb], patient_id="0099999")
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out", "--frames", "all") == 0
    assert "frames; frame 0 ingested" not in capsys.readouterr().err
    cases = read_cases(tmp_path / "out")
    loop = [c for c in cases if c.source.get("n_frames") == 3]
    assert [c.source["frame"] for c in loop] == [0, 1, 2] and len(cases) == 4
    assert len({c.patient_id for c in loop}) == 1 and len({c.split for c in loop}) == 1
    for case, s in zip(loop, screens):  # frame i holds screen i's images, not frame 0's
        np.testing.assert_array_equal(read_gray(case.bmode), s.bmode)
        x0, y0, x1, y1 = case.roi
        assert np.nanmean(np.abs(read_strain(case.strain) - s.strain)[y0:y1, x0:x1]) < TOLERANCE


def test_cine_loop_one_chosen_frame(tmp_path, capsys):
    screens = _cine(tmp_path)
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out", "--frames", "2") == 0
    (case,) = read_cases(tmp_path / "out")
    assert case.source["frame"] == 2
    np.testing.assert_array_equal(read_gray(case.bmode), screens[2].bmode)
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out5", "--frames", "5") == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("loop.dcm: frame 5 asked for (--frames), but the file has 3 frames") and "\n" not in err
    assert not (tmp_path / "out5").exists()


def test_cine_loop_frame_without_elastogram_is_named(tmp_path, capsys):
    _cine(tmp_path, blank=1)
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out", "--frames", "all") == 2
    assert "loop.dcm: frame 1: " in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out", "--frames", "all", "--skip-bad") == 0
    assert "skipped" in capsys.readouterr().err
    assert [c.source["frame"] for c in read_cases(tmp_path / "out")] == [0, 2]


def test_frames_option_is_checked(tmp_path, capsys):
    _cine(tmp_path)
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out", "--frames", "some") == 2
    assert "frames must be 'first', 'all' or a frame index >= 0, got 'some'" in capsys.readouterr().err


def test_pairs_with_different_frame_counts_refuse_all_frames(tmp_path, capsys):
    s = dual_screen(seed=50)
    (bx0, by0, bx1, by1), (ex0, ey0, ex1, ey1) = s.bmode_box, s.emode_box
    b = np.ascontiguousarray(s.rgb[by0:by1, bx0:bx1])
    e = np.ascontiguousarray(s.rgb[ey0:ey1, ex0:ex1])
    write_dicom(tmp_path / "in" / "x_bmode.dcm", [b, b])
    write_dicom(tmp_path / "in" / "x_emode.dcm", [e, e, e])
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out", "--layout", "pairs", "--frames", "all") == 2
    err = capsys.readouterr().err
    assert "--frames all needs as many frames in the B-mode as in the E-mode file; x_bmode.dcm has 2, x_emode.dcm has 3" in err
    assert run("--input", tmp_path / "in", "--out", tmp_path / "out", "--layout", "pairs", "--frames", "1") == 0
    (case,) = read_cases(tmp_path / "out")
    assert case.source["frame"] == 1


def _parts(exports, tmp_path: Path) -> tuple[Path, Path]:
    """The exports split into two deliveries of one study, both holding patients a and 0012345."""
    root, _ = exports
    parts = {"part1": ["patient_a/screen1.png", "US0001"], "part2": ["patient_a/screen2.png", "US0002.dcm", "other/x.png"]}
    for part, names in parts.items():
        for name in names:
            (tmp_path / part / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / name, tmp_path / part / name)
    return tmp_path / "part1", tmp_path / "part2"


def test_a_study_ingested_in_parts_keeps_pseudonyms_and_splits_with_a_key(exports, tmp_path, capsys):
    from elastogan.data.pseudonyms import read_key

    _, truths = exports
    part1, part2 = _parts(exports, tmp_path)
    key_file = tmp_path / "secrets" / "study.key"
    key_file.parent.mkdir()
    assert run("--input", part1, "--out", tmp_path / "d1", "--key", key_file, "--seed", 5) == 0
    assert f"new pseudonym key: {key_file}" in capsys.readouterr().out
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = read_key(key_file)
    assert run("--input", part2, "--out", tmp_path / "d2", "--key", key_file, "--seed", 5) == 0
    assert "new pseudonym key" not in capsys.readouterr().out and read_key(key_file) == key

    seen: dict[str, set[tuple[str, str]]] = {}
    for d in ("d1", "d2"):
        for case in read_cases(tmp_path / d):
            real = truths[match_truth(case, truths)][1]
            assert case.patient_id == pseudonym(real, key)  # the key in the file is the key used
            seen.setdefault(real, set()).add((case.patient_id, case.split))
    assert set(seen) == {"patient_a", "0012345", "other"}
    assert all(len(v) == 1 for v in seen.values()), seen  # one pseudonym and one split per patient
    merged = tmp_path / "study.jsonl"
    assert main(["manifest", "merge", str(tmp_path / "d1" / "manifest.jsonl"), str(tmp_path / "d2" / "manifest.jsonl"),
                 "--out", str(merged)]) == 0
    cases, problems = validate_manifest(merged)
    assert problems == [] and len(cases) == 5 and len({c.patient_id for c in cases}) == 3


def test_without_a_key_the_parts_do_not_share_pseudonyms(exports, tmp_path):
    _, truths = exports
    part1, part2 = _parts(exports, tmp_path)
    ids = []
    for part, d in ((part1, "d1"), (part2, "d2")):
        assert run("--input", part, "--out", tmp_path / d) == 0
        ids.append({truths[match_truth(c, truths)][1]: c.patient_id for c in read_cases(tmp_path / d)})
    assert ids[0]["patient_a"] != ids[1]["patient_a"] and ids[0]["0012345"] != ids[1]["0012345"]


def test_key_file_errors_are_named_and_leave_nothing(exports, tmp_path, capsys):
    root, _ = exports
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not hex\n")
    out = tmp_path / "o"
    cases = [
        (["--key", out / "study.key"], f"--key {out / 'study.key'}: lies inside the output folder {out}"),
        (["--key", root / "study.key"], f"--key {root / 'study.key'}: lies inside the input folder {root}"),
        (["--key", bad_key], f"{bad_key}: not a pseudonym key file: expected one line of 64 hex digits"),
        (["--key", tmp_path], f"--key {tmp_path}: is a folder"),
        (["--key", tmp_path / "no" / "such" / "k"], "cannot make a new key file there"),
        (["--key", tmp_path / "k", "--keep-identifiers"], "give one or the other"),
    ]
    for extra, message in cases:
        assert run("--input", root, "--out", out, *extra) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not out.exists() and not (tmp_path / "k").exists()
    # a run that fails on a bad file writes no new key: a key never outlives a failed run
    bad_root = tmp_path / "with_bad"
    shutil.copytree(root, bad_root)
    (bad_root / "notes.png").write_bytes(b"not a png")
    assert run("--input", bad_root, "--out", out, "--key", tmp_path / "k") == 2
    assert "notes.png" in capsys.readouterr().err
    assert not (tmp_path / "k").exists() and not out.exists()
    assert not list(tmp_path.glob(".k.*"))


def test_keyed_splits_are_per_patient_in_the_reference_proportions():
    import doctest

    from elastogan.data import pseudonyms
    from elastogan.data.ingest import SPLIT_FRACTIONS

    assert doctest.testmod(pseudonyms).failed == 0
    key = bytes(range(32))
    ids = [f"P{i:05d}" for i in range(20000)]
    split = [pseudonyms.keyed_split(i, key, 0, SPLIT_FRACTIONS) for i in ids]
    share = {s: split.count(s) / len(ids) for s in ("train", "val", "test")}
    assert abs(share["test"] - 0.15) < 0.01 and abs(share["val"] - 0.15) < 0.01 and abs(share["train"] - 0.70) < 0.01
    # a patient's split is theirs alone: the same whoever else is ingested, another with another seed or key
    assert [pseudonyms.keyed_split(i, key, 0, SPLIT_FRACTIONS) for i in ids[:50]] == split[:50]
    assert [pseudonyms.keyed_split(i, key, 1, SPLIT_FRACTIONS) for i in ids[:200]] != split[:200]
    assert [pseudonyms.keyed_split(i, bytes(32), 0, SPLIT_FRACTIONS) for i in ids[:200]] != split[:200]
