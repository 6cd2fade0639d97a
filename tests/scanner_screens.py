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
