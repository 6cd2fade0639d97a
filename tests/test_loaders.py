"""Loading users' files by content: PNG, JPEG, .npy, DICOM; and every kind of bad file."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom.examples
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from elastogan.data.images import MAX_PIXELS
from elastogan.data.loaders import load_image, rgb_to_grey, sniff_format
from elastogan.errors import InputFileError
from scanner_screens import png_header_only


@pytest.fixture
def rgb_image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)


def test_formats_are_recognised_by_content_not_name(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "screen.dcm", format="PNG")  # a PNG named .dcm
    smooth = np.repeat(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], 30, axis=0).repeat(3, axis=2)
    Image.fromarray(smooth).save(tmp_path / "photo.png", format="JPEG", quality=95)
    np.save(tmp_path / "array.npy", rgb_image)
    shutil.copy(pydicom.examples.get_path("rgb_color"), tmp_path / "IM000001")  # no extension
    assert sniff_format(tmp_path / "screen.dcm") == "png"
    assert sniff_format(tmp_path / "photo.png") == "jpeg"
    assert sniff_format(tmp_path / "array.npy") == "npy"
    assert sniff_format(tmp_path / "IM000001") == "dicom"

    png = load_image(tmp_path / "screen.dcm")
    np.testing.assert_array_equal(png.rgb, rgb_image)
    assert png.format == "png" and png.regions == () and png.patient_id is None
    jpeg = load_image(tmp_path / "photo.png")
    assert jpeg.format == "jpeg" and np.abs(jpeg.rgb.astype(int) - smooth).max() <= 6
    np.testing.assert_array_equal(load_image(tmp_path / "array.npy").rgb, rgb_image)
    dcm = load_image(tmp_path / "IM000001")
    assert dcm.format == "dicom" and dcm.rgb.shape == (240, 320, 3) and dcm.patient_id == "13US1"


def test_grey_images_and_arrays(tmp_path):
    grey = np.arange(200, dtype=np.uint8).reshape(10, 20)
    Image.fromarray(grey).save(tmp_path / "b.png")
    img = load_image(tmp_path / "b.png")
    assert img.is_grey and img.rgb.shape == (10, 20, 3)
    np.testing.assert_array_equal(img.grey, grey)
    np.save(tmp_path / "f.npy", grey.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(load_image(tmp_path / "f.npy").grey, grey)
    np.save(tmp_path / "bad.npy", grey.astype(np.float32))  # 0..199, not 0..1
    with pytest.raises(InputFileError, match="finite values in 0..1"):
        load_image(tmp_path / "bad.npy")
    np.save(tmp_path / "cube.npy", np.zeros((4, 5, 6, 7), np.uint8))
    with pytest.raises(InputFileError, match=r"cube\.npy: expected an H×W or H×W×3 array"):
        load_image(tmp_path / "cube.npy")
    with pytest.raises(InputFileError, match="one frame"):
        load_image(tmp_path / "b.png", frame=1)


def test_rgb_to_grey_matches_pil_luminance(rgb_image):
    pil = np.asarray(Image.fromarray(rgb_image).convert("L")).astype(int)
    assert np.abs(rgb_to_grey(rgb_image).astype(int) - pil).max() <= 1


def test_dicom_frames_through_the_loader():
    img = load_image(pydicom.examples.get_path("ybr_color"), frame=12)
    assert img.rgb.shape == (240, 320, 3) and img.source["frame"] == 12 and img.source["n_frames"] == 30
    assert img.warnings  # its regions do not fit the frame


@pytest.mark.parametrize(
    "name, make, problem",
    [
        ("empty.png", lambda p: p.write_bytes(b""), "empty file"),
        ("notes.txt", lambda p: p.write_text("not an image\n"), "not a supported image (expected PNG, JPEG, .npy or DICOM)"),
        ("scan.jpg", lambda p: p.write_bytes(b"\x00\x01garbage" * 50), "not a supported image"),
    ],
)
def test_non_images(tmp_path, name, make, problem):
    path = tmp_path / name
    make(path)
    with pytest.raises(InputFileError) as e:
        load_image(path)
    assert str(e.value).startswith(f"{path}: {problem}")


def test_truncated_and_corrupt_images(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[60:80] = b"\xff" * 20  # inside the pixel stream: bad CRC / zlib data
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    Image.fromarray(rgb_image).save(tmp_path / "ok.jpg", quality=90)
    jdata = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(jdata[: len(jdata) // 2])
    for name in ("truncated.png", "corrupt.png", "truncated.jpg"):
        with pytest.raises(InputFileError) as e:
            load_image(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name}: not a readable image")
        assert "\n" not in str(e.value)


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    png_header_only(tmp_path / "bomb.png", 20_000, 20_000)  # 400 Mpixel: PIL refuses
    png_header_only(tmp_path / "big.png", 9_000, 9_000)  # 81 Mpixel: over our limit
    for name in ("bomb.png", "big.png"):
        with pytest.raises(InputFileError, match=f"{MAX_PIXELS}.*not an ultrasound frame"):
            load_image(tmp_path / name)
    with open(tmp_path / "bomb.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (20_000, 20_000)})
    with pytest.raises(InputFileError, match="20000×20000 pixels exceeds"):
        load_image(tmp_path / "bomb.npy")


def test_ct_is_not_an_ultrasound(tmp_path):
    ct = shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct")
    with pytest.raises(InputFileError, match="expected an ultrasound image .Modality US., got CT"):
        load_image(ct)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputFileError, match="is a folder"):
        load_image(tmp_path)


def test_16_bit_grey_png_is_scaled_by_its_bit_depth_not_clipped(tmp_path):
    from elastogan.data.images import read_gray, read_rgb

    grey = np.arange(200, dtype=np.uint8).reshape(10, 20)
    path = tmp_path / "b16.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)  # full-range 16-bit, as PNG scales
    assert Image.open(path).mode == "I;16"
    img = load_image(path)
    assert img.is_grey
    np.testing.assert_array_equal(img.grey, grey)  # read_rgb used to give 255 for all but v = 0
    # The data model's readers take 8-bit images only, and say so instead of clipping.
    for read in (read_gray, read_rgb):
        with pytest.raises(InputFileError, match=r"b16\.png: expected an 8-bit image, got 16-bit grey \(mode I;16\)"):
            read(path)
