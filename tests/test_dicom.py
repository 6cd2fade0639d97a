"""Ultrasound DICOM: the real scanner files that ship inside pydicom, and built ones."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pydicom
import pydicom.examples
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless

from elastogan.data.dicom import decoder_install_hint, has_dicom_marker, read_dicom
from elastogan.errors import InputFileError
from scanner_screens import write_dicom


def example(name: str):
    return pydicom.examples.get_path(name)


def test_palette_color_philips_frame_through_its_lut():
    d = read_dicom(example("palette_color"))
    assert d.rgb.shape == (350, 800, 3) and d.rgb.dtype == np.uint8
    assert d.source["photometric"] == "PALETTE COLOR" and d.source["modality"] == "US"
    assert d.source["manufacturer"] == "Philips Medical Systems"
    assert d.patient_id == "11-05-25-142825"
    # The palette turns 8-bit indices into colour: the header band is blue, the B-mode grey.
    r, g, b = (d.rgb[20, 400].astype(int))
    assert b > r + 20
    # Its regions were written for a taller frame (Y up to 576 in a 350-row image): they do
    # not describe these pixels, so they and their spacing are ignored, with a warning.
    assert d.regions == () and "outside the 350×800 frame" in d.warnings[0]


def test_ybr_multiframe_decodes_only_the_frame_asked_for():
    path = example("ybr_color")
    full = pydicom.dcmread(path).pixel_array  # every frame, the reference
    assert full.shape == (30, 240, 320, 3)
    for i in (0, 17, 29):
        d = read_dicom(path, frame=i)
        assert d.n_frames == 30 and d.frame == i
        assert d.source["photometric"] == "YBR_FULL_422"
        assert d.source["transfer_syntax"] == "JPEG Baseline (Process 1)"
        np.testing.assert_array_equal(d.rgb, full[i])
    assert not np.array_equal(read_dicom(path, frame=0).rgb, read_dicom(path, frame=29).rgb)
    with pytest.raises(InputFileError, match="frame 30 asked for, but the file has 30 frame"):
        read_dicom(path, frame=30)


def test_rgb_and_jpeg2k_ge_dual_doppler_screens():
    rgb = read_dicom(example("rgb_color"))
    assert rgb.rgb.shape == (240, 320, 3) and rgb.source["photometric"] == "RGB"
    assert rgb.regions == () and rgb.warnings == []
    j2k = read_dicom(example("jpeg2k"))
    assert j2k.rgb.shape == (480, 640, 3)
    assert j2k.source["transfer_syntax"] == "JPEG 2000 Image Compression (Lossless Only)"
    assert j2k.source["photometric"] == "YBR_RCT"
    np.testing.assert_array_equal(j2k.rgb, pydicom.dcmread(example("jpeg2k")).pixel_array)
    # The same GE screen at two sizes: the JPEG 2000 one is the RGB one at twice the size.
    small = j2k.rgb[::2, ::2].astype(int)
    assert np.abs(small - rgb.rgb.astype(int)).mean() < 20


def test_ybr_full_422_is_converted_to_rgb():
    ybr = read_dicom(get_testdata_file("SC_ybr_full_422_uncompressed.dcm")).rgb.astype(int)
    rgb = read_dicom(get_testdata_file("SC_rgb_rle.dcm")).rgb.astype(int)
    assert np.abs(ybr - rgb).max() <= 8  # chroma subsampling and rounding only


def test_regions_are_inclusive_and_give_spacing_in_mm(tmp_path):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    path = write_dicom(tmp_path / "us.dcm", [frame], regions=[((5, 6, 25, 36), 1), ((30, 6, 50, 36), 2)], delta_cm=0.0125)
    stored = pydicom.dcmread(path).SequenceOfUltrasoundRegions[0]
    assert (stored.RegionLocationMaxX1, stored.RegionLocationMaxY1) == (24, 35)  # inclusive on disk
    d = read_dicom(path)
    assert [r.box for r in d.regions] == [(5, 6, 25, 36), (30, 6, 50, 36)]
    assert [r.data_type for r in d.regions] == [1, 2]
    assert d.regions[0].spacing_mm == pytest.approx((0.125, 0.125))
    crop = d.regions[0].crop(d.rgb)
    np.testing.assert_array_equal(crop, frame[6 : 35 + 1, 5 : 24 + 1])


def test_only_the_asked_frame_is_read(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    path = write_dicom(tmp_path / "cine.dcm", frames)
    np.testing.assert_array_equal(read_dicom(path, frame=1).rgb, frames[1])
    # Cut the file inside the last frame: the first two still decode, the last is refused.
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - frames[2].nbytes + 10])
    np.testing.assert_array_equal(read_dicom(cut, frame=1).rgb, frames[1])
    with pytest.raises(InputFileError, match=r"cut\.dcm: cannot decode frame 2"):
        read_dicom(cut, frame=2)


def test_monochrome_ultrasound_becomes_grey_rgb(tmp_path):
    path = write_dicom(tmp_path / "mono.dcm", [np.zeros((8, 8, 3), np.uint8)])
    ds = pydicom.dcmread(path)
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    del ds.PlanarConfiguration
    ds.PixelData = grey.tobytes()
    ds.save_as(path, enforce_file_format=True)
    d = read_dicom(path)
    assert d.rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(d.rgb[..., 1], grey)
    ds.PhotometricInterpretation = "MONOCHROME1"  # 0 = white
    ds.save_as(path, enforce_file_format=True)
    np.testing.assert_array_equal(read_dicom(path).rgb[..., 0], 255 - grey)


def test_ct_where_ultrasound_expected(tmp_path):
    ct = shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "IMG0001")
    with pytest.raises(InputFileError) as e:
        read_dicom(ct)
    assert str(e.value) == f"{ct}: expected an ultrasound image (Modality US), got CT (CT Image Storage)"


def test_missing_decoder_names_the_plugin():
    # A real JPEG-LS file: no JPEG-LS decoder is installed here.
    path = get_testdata_file("SC_rgb_jls_lossy_line.dcm")
    with pytest.raises(InputFileError, match="no decoder installed for JPEG-LS.*pip install pylibjpeg pylibjpeg-libjpeg.*pyjpegls"):
        read_dicom(path)


def test_missing_jpeg2000_decoder_names_the_plugin(monkeypatch):
    decoder = get_decoder(JPEG2000Lossless)
    assert decoder.is_available  # pillow decodes it here …
    monkeypatch.setattr(decoder, "_available", {})  # … but not on a machine without it
    monkeypatch.setitem(decoder._unavailable, "pillow", ("pillow>=10.0",))
    with pytest.raises(InputFileError) as e:
        read_dicom(example("jpeg2k"))
    msg = str(e.value)
    assert "no decoder installed for JPEG 2000 Image Compression (Lossless Only)" in msg
    assert "pip install pylibjpeg pylibjpeg-openjpeg" in msg and "pip install pillow" in msg
    assert "\n" not in msg


def test_install_hint():
    assert decoder_install_hint(["pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0"]) == "pip install pylibjpeg pylibjpeg-openjpeg"
    assert decoder_install_hint(["gdcm - requires gdcm>=3.0.10", "pyjpegls - requires numpy and pyjpegls>=1.2"]) == "pip install python-gdcm or pip install pyjpegls"


def test_bad_dicom_files(tmp_path):
    rgb = tmp_path / "rgb.dcm"
    shutil.copy(example("rgb_color"), rgb)
    assert has_dicom_marker(rgb)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(rgb.read_bytes()[:50_000])
    with pytest.raises(InputFileError, match=r"truncated\.dcm: cannot decode frame 0 .*: truncated pixel data: "
                       r"the file holds \d+ of the 230400 bytes it declares"):
        read_dicom(truncated)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty file"):
        read_dicom(empty)
    not_dicom = tmp_path / "notes.dcm"
    not_dicom.write_text("patient notes\n" * 20)
    assert not has_dicom_marker(not_dicom)
    with pytest.raises(InputFileError, match="not a DICOM file"):
        read_dicom(not_dicom)
    sr = get_testdata_file("test-SR.dcm")
    with pytest.raises(InputFileError, match="expected an ultrasound image"):
        read_dicom(sr)


def test_frame_too_large_is_refused_before_decoding(tmp_path):
    path = write_dicom(tmp_path / "bomb.dcm", [np.zeros((4, 4, 3), np.uint8)])
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 10_000, 10_000  # 100 Mpixel header, 48 bytes of pixels
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputFileError, match="10000×10000 pixels exceeds 64000000; not an ultrasound frame"):
        read_dicom(path)


def _tag(data: bytes, group: int, element: int) -> int:
    """Offset of a little-endian data element's tag in a file's bytes."""
    at = data.find(group.to_bytes(2, "little") + element.to_bytes(2, "little"), 132)
    assert at > 0
    return at


@pytest.mark.parametrize(
    "where, problem",
    [
        (lambda d: _tag(d, 0x0008, 0x0060), "truncated or corrupt DICOM header: the file ends after {n} bytes, before its Modality"),
        (lambda d: _tag(d, 0x0008, 0x0016) + 8 + 10, "truncated or corrupt DICOM header: the file ends after {n} bytes, before its Modality"),
        (lambda d: _tag(d, 0x0008, 0x0060) + 8 + 1, "the file ends after {n} bytes, before the end of its last element"),
        (lambda d: _tag(d, 0x0028, 0x0010), "the file ends after {n} bytes, before its image size (Rows/Columns)"),
        (lambda d: _tag(d, 0x7FE0, 0x0010), "truncated DICOM file: it ends after its header ({n} bytes), before the pixel data"),
        (lambda d: _tag(d, 0x7FE0, 0x0010) + 6, "truncated DICOM file: it ends after its header ({n} bytes), before the pixel data"),
    ],
)
def test_a_file_cut_in_its_header_is_reported_as_truncated_without_warnings(tmp_path, where, problem):
    # GE LOGIQ 700 (rgb_color): cut before its Modality, inside its SOP Class UID (pydicom
    # warns about the cut UID), inside the Modality value, before Rows, before the pixel data
    # and inside the pixel data element's tag.
    data = open(example("rgb_color"), "rb").read()
    n = where(data)
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:n])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputFileError) as e:
            read_dicom(path)
    assert str(e.value).startswith(f"{path}: ") and problem.format(n=n) in str(e.value), str(e.value)
    assert "got no modality" not in str(e.value)
    assert [str(w.message) for w in caught] == []


def test_a_corrupt_value_representation_is_a_corrupt_header(tmp_path):
    data = bytearray(open(example("rgb_color"), "rb").read())
    rows = _tag(data, 0x0028, 0x0010)
    assert data[rows + 4 : rows + 6] == b"US"
    data[rows + 4 : rows + 6] = b"Ug"  # no such VR
    path = tmp_path / "corrupt.dcm"
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"corrupt\.dcm: truncated or corrupt DICOM header \(Unknown Value Representation 'Ug'"):
        read_dicom(path)


# --------------------------------------------------------------------------- issue 15

def _pydicom_rendering(path) -> np.ndarray:
    """The frame as pydicom renders it: ``pixel_array`` through ``apply_color_lut``, as 8 bits."""
    from pydicom.pixels import apply_color_lut

    ds = pydicom.dcmread(path)
    rgb = apply_color_lut(ds.pixel_array, ds)
    return (rgb >> 8).astype(np.uint8) if rgb.max() > 255 else rgb.astype(np.uint8)


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "OBXXXX1A_expb.dcm", "OBXXXX1A_rle.dcm",
                                  "gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm"])
def test_palette_color_in_every_byte_order_decodes_as_pydicom_renders_it(name):
    """pydicom-data's Philips and Aloka palette files: little- and big-endian, RLE."""
    from scanner_screens import real_file

    d = read_dicom(real_file(name))
    expected = _pydicom_rendering(real_file("OBXXXX1A.dcm" if name.startswith("OBX") else "gdcm-US-ALOKA-16.dcm"))
    np.testing.assert_array_equal(d.rgb, expected)
    assert d.rgb.mean() > 10  # not the black frame a byte-swapped 16-bit palette gives
    if name == "OBXXXX1A_expb.dcm":
        # pydicom itself renders the big-endian file with 8-bit values (its palette bytes read
        # little-endian): the same picture.
        np.testing.assert_array_equal(d.rgb, _pydicom_rendering(real_file(name)))


def test_a_region_one_pixel_past_the_frame_is_clipped_not_dropped():
    """Philips OBXXXX1A.dcm writes RegionLocationMaxX1 = 800 = Columns for its image region."""
    from scanner_screens import real_file

    d = read_dicom(real_file("OBXXXX1A.dcm"))
    assert d.warnings == []
    image = d.image_regions
    assert [r.box for r in image] == [(120, 60, 800, 519)]
    assert image[0].spacing_mm == pytest.approx((0.2622878766, 0.2622878766))


def test_regions_far_outside_the_frame_are_each_named_when_dropped(tmp_path):
    frame = np.zeros((100, 120, 3), np.uint8)
    path = write_dicom(tmp_path / "a.dcm", [frame], regions=[((0, 0, 60, 100), 1), ((60, 0, 130, 100), 1), ((0, 0, 60, 140), 1)])
    d = read_dicom(path)
    assert d.regions == ()
    assert d.warnings == ["2 ultrasound region(s) reach outside the 100×120 frame ((60, 0, 129, 99), (0, 0, 59, 139), inclusive); "
                          "ignoring all 3 of the file's regions and their spacing"]


@pytest.mark.parametrize("name, family", [("US1_J2KR.dcm", "JPEG 2000"), ("OBXXXX1A_rle.dcm", "RLE"),
                                          ("color3d_jpeg_baseline.dcm", "JPEG")])
def test_corrupt_compressed_pixel_data_is_named_in_words(tmp_path, name, family):
    """Not the plugins' list of exceptions ending at a colon, nor numpy's broadcast error."""
    from scanner_screens import real_file

    data = real_file(name).read_bytes()
    assert pydicom.dcmread(real_file(name), stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
    start = data.rfind(b"\xe0\x7f\x10\x00")  # the Pixel Data element
    bad = [tmp_path / "cut.dcm"]
    bad[0].write_bytes(data[: start + 2000])  # cut inside frame 0's compressed stream
    if family == "RLE":  # RLE decodes garbage to a wrong length, which numpy cannot place
        scrambled = bytearray(data)
        middle = start + (len(data) - start) // 4
        scrambled[middle : middle + 4000] = bytes(range(256)) * 15 + bytes(160)
        bad.append(tmp_path / "scrambled.dcm")
        bad[1].write_bytes(bytes(scrambled))
    for path in bad:
        with pytest.raises(InputFileError) as e:
            read_dicom(path)
        assert str(e.value) == f"{path}: cannot decode frame 0: corrupt or truncated {family} data"
