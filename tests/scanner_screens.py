"""Test screens drawn the way scanners draw them: a speckled B-mode, its E-mode from
``elastogan.display.render_emode`` (colour blended in a ROI box, colour bar, SOFT/HARD), side
by side on a black screen with burned-in patient text around the panels, as PNG or DICOM;
and a decompression bomb's PNG header.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from elastogan.display import render_emode

# Burned-in text: the identifiers that must never leave ingestion.
PATIENT_NAME = "DOE^JANE"
HEADER = "DOE^JANE  ID 0012345  1961-04-02  ST ELSEWHERE HOSPITAL"
FOOTER = "2024-05-01 10:42  L12-5  ELASTO"
TEXT_COLOUR = (255, 255, 255)


def bmode_image(h: int, w: int, seed: int) -> np.ndarray:
    """A speckled B-mode with a hypoechoic oval lesion; no pixel near black at the edges."""
    rng = np.random.default_rng(seed)
    speckle = ndimage.gaussian_filter(rng.rayleigh(1.0, (h, w)), 0.7)
    img = 40 + 150 * speckle / speckle.max() * 1.6
    yy, xx = np.mgrid[:h, :w]
    lesion = ((yy - h * 0.55) / (h * 0.15)) ** 2 + ((xx - w * 0.45) / (w * 0.18)) ** 2 < 1
    img[lesion] *= 0.45
    return np.clip(np.rint(img), 20, 235).astype(np.uint8)


def standard_roi(h: int, w: int) -> tuple[int, int, int, int]:
    """The ROI box the test screens use (clear of the colour bar's margin)."""
    return (w // 8, h // 6, w * 3 // 4, h * 5 // 6)


def strain_image(h: int, w: int, seed: int) -> np.ndarray:
    """Relative strain 0..1: soft smooth background, a hard lesion, clipped at both ends of
    the display range as scanners do."""
    rng = np.random.default_rng(seed + 1)
    field = ndimage.gaussian_filter(rng.standard_normal((h, w)), 6)
    window = field[h // 6 : h * 5 // 6, w // 8 : w * 3 // 4]  # where the tests put the ROI
    field = (field - window.min()) / (window.max() - window.min())
    yy, xx = np.mgrid[:h, :w]
    lesion = ((yy - h * 0.55) / (h * 0.17)) ** 2 + ((xx - w * 0.45) / (w * 0.2)) ** 2 < 1
    return np.clip(np.where(lesion, 0.4 * field - 0.1, 0.3 + 0.8 * field), 0.0, 1.0).astype(np.float32)


@dataclass
class Screen:
    """A dual-display screen and the truth it was drawn from."""

    rgb: np.ndarray  # the whole screen, H×W×3 uint8
    bmode: np.ndarray  # h×w uint8
    emode: np.ndarray  # h×w×3 uint8, as render_emode drew it
    strain: np.ndarray  # h×w float32
    roi: tuple[int, int, int, int]  # in panel coordinates
    bmode_box: tuple[int, int, int, int]  # panels on the screen, end-exclusive
    emode_box: tuple[int, int, int, int]
    text_mask: np.ndarray  # H×W bool: burned-in text pixels


def dual_screen(
    *, h: int = 96, w: int = 128, seed: int = 0, colormap: str = "hitachi", alpha: float = 0.5, emode_left: bool = False
) -> Screen:
    """B-mode | E-mode (or E | B) on a black screen, burned-in text above and below."""
    bmode = bmode_image(h, w, seed)
    strain = strain_image(h, w, seed)
    roi = standard_roi(h, w)
    emode = render_emode(bmode, strain, roi, colormap=colormap, alpha=alpha)
    top, gap, left = 28, 16, 8
    screen_h, screen_w = h + top + 22, 2 * w + gap + 2 * left
    boxes = [(left, top, left + w, top + h), (left + w + gap, top, left + 2 * w + gap, top + h)]
    b_box, e_box = (boxes[1], boxes[0]) if emode_left else (boxes[0], boxes[1])

    canvas = Image.new("RGB", (screen_w, screen_h))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=10)
    draw.text((4, 3), HEADER, fill=TEXT_COLOUR, font=font)
    draw.text((4, 14), "PATIENT " + PATIENT_NAME, fill=TEXT_COLOUR, font=font)
    draw.text((4, top + h + 6), FOOTER, fill=TEXT_COLOUR, font=font)
    text_mask = np.asarray(canvas).max(axis=-1) > 0
    rgb = np.asarray(canvas).copy()
    for box, panel in ((b_box, np.repeat(bmode[..., None], 3, axis=-1)), (e_box, emode)):
        x0, y0, x1, y1 = box
        assert not text_mask[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2].any(), "text must not touch the panels"
        rgb[y0:y1, x0:x1] = panel
    return Screen(rgb, bmode, emode, strain, roi, b_box, e_box, text_mask)


def write_dicom(
    path: Path,
    frames: list[np.ndarray],
    *,
    patient_id: str = "0012345",
    regions: list[tuple[tuple[int, int, int, int], int]] = (),
    delta_cm: float = 0.01,
    modality: str = "US",
) -> Path:
    """An uncompressed RGB ultrasound DICOM (one or several frames).

    Args:
        regions: ``(box end-exclusive, region data type)``; written inclusive, as DICOM does,
            with ``PhysicalDeltaX/Y = delta_cm`` in cm (unit code 3).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, UltrasoundMultiFrameImageStorage, generate_uid

    sop_class = UltrasoundMultiFrameImageStorage if len(frames) > 1 else UltrasoundImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Manufacturer = "Test Scanner Co"
    ds.PatientID = patient_id
    ds.PatientName = PATIENT_NAME
    ds.PatientBirthDate = "19610402"
    ds.StudyDate = "20240501"
    h, w = frames[0].shape[:2]
    ds.Rows, ds.Columns = h, w
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    items = []
    for (x0, y0, x1, y1), data_type in regions:
        r = Dataset()
        r.RegionSpatialFormat = 1
        r.RegionDataType = data_type
        r.RegionFlags = 0
        r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, y0
        r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1 - 1, y1 - 1
        r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3
        r.PhysicalDeltaX = r.PhysicalDeltaY = delta_cm
        items.append(r)
    if items:
        ds.SequenceOfUltrasoundRegions = Sequence(items)
    ds.PixelData = np.ascontiguousarray(np.stack(frames), dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny PNG that declares a huge image (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- real screens

# pydicom-data's Aloka dual display (PALETTE COLOR, 480×640): two B-mode panels side by side
# under a burned-in header ("*WESTWAY MEDICAL*", "ULTRASOUND", date and time) and above a
# footer of settings, on a navy and black screen with green markers. Its regions, end-exclusive.
ALOKA = "gdcm-US-ALOKA-16.dcm"
ALOKA_PANELS = ((32, 24, 336, 416), (336, 24, 640, 416))
REAL_ROI = (48, 100, 240, 330)  # in panel coordinates: tissue, clear of the markers
REAL_BAR = (284, 40, 292, 300)  # the strain bar in the E-mode panel: over dark fluid at its foot
SCREEN_BACKGROUNDS = ((0, 0, 0), (40, 45, 65))  # the Aloka screen's black margin and navy strips


def real_file(name: str) -> Path:
    """A file of pydicom's or pydicom-data's test set (pydicom-data is a test dependency)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)  # never the network: pydicom-data or nothing
    if path is None:
        raise FileNotFoundError(f"{name} is not in pydicom's test files; pip install pydicom-data (requirements.txt)")
    return Path(path)


@dataclass
class RealScreen:
    """A strain display built on a real scanner screen, and the truth it was drawn from."""

    rgb: np.ndarray  # the whole screen, H×W×3 uint8
    bmode: np.ndarray  # the B-mode panel as grey (luminance), h×w uint8
    emode: np.ndarray  # the E-mode panel, h×w×3 uint8
    strain: np.ndarray  # h×w float32, NaN outside the ROI
    roi: tuple[int, int, int, int]  # in panel coordinates
    bmode_box: tuple[int, int, int, int]  # on the screen, end-exclusive
    emode_box: tuple[int, int, int, int]
    text_mask: np.ndarray  # H×W bool: burned-in text and markers outside the panels


def strain_bar(colormap: str, height: int) -> np.ndarray:
    """A ``height``×1×3 uint8 bar of the map, soft at the top (as scanners draw it)."""
    from elastogan.colormaps import get_colormap

    ramp = get_colormap(colormap).colorize(np.linspace(1.0, 0.0, height))
    return np.rint(ramp[:, None, :] * 255).astype(np.uint8)


def real_dual_screen(*, colormap: str = "hitachi", alpha: float = 0.5, seed: int = 0, bar_colormap: str | None = None,
                     gap: int = 0, bar_soft_at: str = "top") -> RealScreen:
    """pydicom-data's Aloka screen turned into a strain display, as a Hitachi dual display shows one.

    The left panel keeps the real B-mode (with its markers and depth ticks); the right panel
    shows the same frame with a strain overlay blended in ``REAL_ROI`` and a strain bar at
    ``REAL_BAR`` (drawn in ``bar_colormap``, default the overlay's map). The real header and
    footer stay. ``gap`` black columns are put between the panels (an export with a gap).
    ``bar_soft_at="bottom"`` draws the bar the other way up.
    """
    from elastogan.colormaps import get_colormap
    from elastogan.data.dicom import read_dicom
    from elastogan.data.loaders import rgb_to_grey

    base = read_dicom(real_file(ALOKA)).rgb
    (bx0, y0, bx1, y1), (ex0, _, ex1, _) = ALOKA_PANELS
    left = base[y0:y1, bx0:bx1]
    grey = rgb_to_grey(left)
    h, w = grey.shape
    strain_full = strain_image(h, w, seed)
    rx0, ry0, rx1, ry1 = REAL_ROI
    strain = np.full((h, w), np.nan, np.float32)
    strain[ry0:ry1, rx0:rx1] = strain_full[ry0:ry1, rx0:rx1]
    emode = left.copy()
    colour = get_colormap(colormap).colorize(strain[ry0:ry1, rx0:rx1])
    under = grey[ry0:ry1, rx0:rx1, None].astype(np.float32) / 255.0
    emode[ry0:ry1, rx0:rx1] = np.clip(np.rint(((1 - alpha) * under + alpha * colour) * 255), 0, 255).astype(np.uint8)
    cx0, cy0, cx1, cy1 = REAL_BAR
    bar = strain_bar(bar_colormap or colormap, cy1 - cy0)
    emode[cy0:cy1, cx0:cx1] = bar if bar_soft_at == "top" else bar[::-1]
    rgb = base.copy()
    rgb[y0:y1, ex0:ex1] = emode
    if gap:
        rgb = np.concatenate([rgb[:, :ex0], np.zeros((rgb.shape[0], gap, 3), np.uint8), rgb[:, ex0:]], axis=1)
    emode_box = (ex0 + gap, y0, ex1 + gap, y1)
    outside = np.ones(rgb.shape[:2], bool)
    for x0, _, x1, _ in ((bx0, y0, bx1, y1), emode_box):
        outside[y0:y1, x0:x1] = False
    background = np.zeros(rgb.shape[:2], bool)
    for colour_ in SCREEN_BACKGROUNDS:
        background |= (rgb == np.array(colour_, np.uint8)).all(axis=-1)
    return RealScreen(rgb, grey, emode, strain, REAL_ROI, (bx0, y0, bx1, y1), emode_box, outside & ~background)


def real_dicom(path: Path, rgb: np.ndarray, *, regions: list[tuple[tuple[int, int, int, int], int]] = (),
               overrun: bool = False) -> Path:
    """``rgb`` as an ultrasound DICOM with the Aloka file's patient and the given regions.

    ``overrun``: a region reaching the right edge gets ``RegionLocationMaxX1`` = Columns (one
    past the frame), as pydicom's Philips ``OBXXXX1A.dcm`` writes it.
    """
    import pydicom

    real = pydicom.dcmread(real_file(ALOKA), stop_before_pixels=True)
    w = rgb.shape[1]
    boxes = [((x0, y0, x1 + (1 if overrun and x1 == w else 0), y1), t) for (x0, y0, x1, y1), t in regions]
    return write_dicom(path, [rgb], patient_id=str(real.get("PatientID", "") or "ALOKA"), regions=boxes)
