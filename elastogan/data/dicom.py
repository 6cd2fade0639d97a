"""Ultrasound DICOM: one frame as 8-bit RGB, its ultrasound regions and physical spacing.

pydicom 3 decodes; this module adds what ultrasound exports need (DESIGN §2):

- every colour model scanners write — RGB, YBR_FULL / YBR_FULL_422 (converted to RGB),
  PALETTE COLOR (through its lookup table), MONOCHROME1/2 — as H×W×3 uint8;
- multi-frame files decode only the frame asked for (``pydicom.pixels.pixel_array(path,
  index=…)`` reads just that frame's bytes);
- ``SequenceOfUltrasoundRegions``: region boxes (inclusive in DICOM, end-exclusive here:
  the crop is ``y0:y1+1``) and spacing (``PhysicalDeltaX/Y`` in cm when the unit code is 3);
- refusals with one line naming the file and the problem: not DICOM, not an ultrasound
  (a CT where an ultrasound was expected), no pixels, a frame far too large, a file cut short
  in its header or its pixel stream, a transfer syntax with no decoder installed (the message
  names the plugin). pydicom's own warnings never reach the terminal.
"""

from __future__ import annotations

import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elastogan.data.images import MAX_PIXELS
from elastogan.errors import InputFileError

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, end-exclusive

# DICOM PS3.3 C.8.5.5.1: Region Spatial Format 1 = 2-D tissue or flow image; Region Data
# Type 1 = tissue, 2 = colour flow; Physical Units code 3 = cm.
SPATIAL_FORMAT_2D = 1
DATA_TYPE_TISSUE = 1
UNITS_CM = 3

US_MODALITY = "US"
# Ultrasound storage classes (current and retired) and Secondary Capture, the class a
# screenshot of a scanner's display is exported as.
ULTRASOUND_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (retired)
})
SECONDARY_CAPTURE_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.7.1",
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4",
})
# Modalities a screen capture of an ultrasound display may carry.
CAPTURE_MODALITIES = frozenset({"", "US", "OT", "SC"})

# pydicom names its plugins' dependencies by import name; pip names differ for these.
_PIP_NAMES = {"gdcm": "python-gdcm"}


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of ``SequenceOfUltrasoundRegions``, in pixel coordinates of the frame.

    Attributes:
        box: ``(x0, y0, x1, y1)`` end-exclusive (DICOM's inclusive ``Max`` plus one).
        spatial_format: Region Spatial Format (1 = 2-D image).
        data_type: Region Data Type (1 = tissue, 2 = colour flow, …).
        spacing_mm: ``(dy, dx)`` in mm when both directions are in cm (unit code 3).
    """

    box: Box
    spatial_format: int
    data_type: int
    spacing_mm: tuple[float, float] | None

    @property
    def is_image(self) -> bool:
        return self.spatial_format == SPATIAL_FORMAT_2D

    def crop(self, arr: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        return arr[y0:y1, x0:x1]


@dataclass
class DicomFrame:
    """One decoded frame of an ultrasound DICOM file.

    Attributes:
        path: the file.
        rgb: H×W×3 uint8.
        frame: index of the decoded frame; ``n_frames`` how many the file holds.
        regions: ultrasound regions, all inside the frame (empty if the file has none or if
            they do not describe this frame; ``warnings`` then says why).
        patient_id: ``PatientID`` or ``None``.
        source: provenance without identifiers (transfer syntax, colour model, modality, …).
        warnings: things the caller should tell the user.
    """

    path: Path
    rgb: np.ndarray
    frame: int
    n_frames: int
    regions: tuple[UltrasoundRegion, ...]
    patient_id: str | None
    source: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def image_regions(self) -> tuple[UltrasoundRegion, ...]:
        return tuple(r for r in self.regions if r.is_image)


def has_dicom_marker(path: str | Path) -> bool:
    """True if the file has the ``DICM`` marker at offset 128 (the Part 10 preamble)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def decoder_install_hint(missing: list[str]) -> str:
    """``pip install …`` alternatives from pydicom's ``missing_dependencies`` strings.

    >>> decoder_install_hint(["pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0"])
    'pip install pylibjpeg pylibjpeg-openjpeg'
    """
    options = []
    for line in missing:
        _, _, reqs = line.partition(" - requires ")
        pkgs = [re.match(r"[A-Za-z0-9_.\-]+", p.strip()).group(0) for p in reqs.split(" and ") if p.strip()]
        pkgs = [_PIP_NAMES.get(p, p) for p in pkgs if p != "numpy"]
        if pkgs:
            options.append("pip install " + " ".join(pkgs))
    return " or ".join(options) if options else "a pydicom pixel-data plugin for it"


def _check_ultrasound(path: Path, ds: Any) -> None:
    modality = str(ds.get("Modality", "") or "").upper()
    sop = str(ds.get("SOPClassUID", "") or "")
    sop_name = getattr(ds.get("SOPClassUID"), "name", sop) or "unknown class"
    if modality == US_MODALITY or sop in ULTRASOUND_SOP_CLASSES:
        return
    if sop in SECONDARY_CAPTURE_SOP_CLASSES and modality in CAPTURE_MODALITIES:
        return
    got = modality or "no modality"
    raise InputFileError(path, f"expected an ultrasound image (Modality US), got {got} ({sop_name})")


def _to_uint8(arr: np.ndarray, ds: Any, path: Path) -> np.ndarray:
    """Scale grey pixel values to 0..255 using the stored bit depth."""
    if arr.dtype == np.uint8:
        return arr
    bits = _header_int(path, ds, "BitsStored", 8) or 8
    if not 1 <= bits <= 32:
        raise InputFileError(path, f"corrupt DICOM header: BitsStored is {bits}")
    a = arr.astype(np.float64)
    if _header_int(path, ds, "PixelRepresentation", 0) == 1:
        a = a + 2 ** (bits - 1)
    return np.clip(np.rint(a * 255.0 / (2**bits - 1)), 0, 255).astype(np.uint8)


def _regions(ds: Any, h: int, w: int) -> tuple[tuple[UltrasoundRegion, ...], list[str]]:
    from pydicom.errors import BytesLengthException

    items = ds.get("SequenceOfUltrasoundRegions") or []
    regions = []
    notes = []
    for i, item in enumerate(items):
        try:
            x0 = int(item.RegionLocationMinX0)
            y0 = int(item.RegionLocationMinY0)
            x1 = int(item.RegionLocationMaxX1) + 1
            y1 = int(item.RegionLocationMaxY1) + 1
            spacing = None
            ux, uy = item.get("PhysicalUnitsXDirection"), item.get("PhysicalUnitsYDirection")
            dx, dy = item.get("PhysicalDeltaX"), item.get("PhysicalDeltaY")
            if ux == UNITS_CM and uy == UNITS_CM and dx and dy and float(dx) > 0 and float(dy) > 0:
                spacing = (float(dy) * 10.0, float(dx) * 10.0)
            region = UltrasoundRegion(
                (x0, y0, x1, y1), int(item.get("RegionSpatialFormat", 0) or 0),
                int(item.get("RegionDataType", 0) or 0), spacing,
            )
        except AttributeError:
            continue  # not a region with a box
        except (TypeError, ValueError, NotImplementedError, struct.error, BytesLengthException):
            notes.append(f"ultrasound region {i + 1} has unreadable values; ignoring it")
            continue
        regions.append(region)
    # Scanners write the inclusive Max as the frame's size (one past its last pixel, as
    # pydicom's Philips OBXXXX1A.dcm does): a box one pixel over the edge is the whole
    # width or height, clipped here rather than thrown away.
    regions = [r if _inside_frame(r.box, h, w) else _clip_one_pixel(r, h, w) for r in regions]
    outside = [r for r in regions if not _inside_frame(r.box, h, w)]
    if outside:
        # Regions further beyond the frame were written for another geometry (the frame was
        # resized or cropped after export): every box and spacing would be wrong for these
        # pixels, so none is used, and each one that does not fit is named.
        named = ", ".join(f"{_inclusive(r.box)}" for r in outside)
        return (), [
            *notes,
            f"{len(outside)} ultrasound region(s) reach outside the {h}×{w} frame ({named}, inclusive); "
            f"ignoring all {len(regions)} of the file's regions and their spacing",
        ]
    return tuple(regions), notes


def _inside_frame(box: Box, h: int, w: int) -> bool:
    return 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h


def _inclusive(box: Box) -> tuple[int, int, int, int]:
    return (box[0], box[1], box[2] - 1, box[3] - 1)


def _clip_one_pixel(region: UltrasoundRegion, h: int, w: int) -> UltrasoundRegion:
    """The region with a right or bottom edge one pixel past the frame pulled back onto it."""
    x0, y0, x1, y1 = region.box
    box = (x0, y0, w if x1 == w + 1 else x1, h if y1 == h + 1 else y1)
    return UltrasoundRegion(box, region.spatial_format, region.data_type, region.spacing_mm)


# The header elements read here; converted (and so checked) when the header is read.
_USED_ELEMENTS = (
    "SOPClassUID", "Modality", "Manufacturer", "PatientID", "Rows", "Columns", "NumberOfFrames",
    "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored",
    "PixelRepresentation", "SequenceOfUltrasoundRegions",
)


def _header_int(path: Path, ds: Any, keyword: str, default: int) -> int:
    value = ds.get(keyword)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputFileError(path, f"corrupt DICOM header: {keyword} is {value!r}, not a whole number") from None


def _read_header(path: Path) -> tuple[Any, int, int, bool]:
    """The dataset up to the pixel data, the file's size, where the pixel data element
    starts — the file's size if the header ran to its end (so that no pixel data follows: a
    file cut short, or one without pixels) — and whether the last element read is cut short.

    pydicom reads a header cut short without complaint — the missing elements are simply
    absent, a cut value comes back short — so the caller checks for the cut.
    """
    import pydicom
    from pydicom.errors import BytesLengthException, InvalidDicomError

    try:
        size = path.stat().st_size
        if size == 0:
            raise InputFileError(path, "empty file")
        with open(path, "rb") as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            pixels_at = f.tell()
            last_cut = _last_element_cut(ds)  # before any access converts the raw values
            for keyword in _USED_ELEMENTS:  # pydicom converts values on first access
                ds.get(keyword)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except InvalidDicomError:
        raise InputFileError(path, "not a DICOM file (no DICM marker at offset 128)") from None
    except (struct.error, BytesLengthException, NotImplementedError) as e:
        # A length or value the bytes left cannot hold, or bytes that are no VR at all.
        raise InputFileError(path, f"truncated or corrupt DICOM header ({e})") from None
    except (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise InputFileError(path, f"unreadable DICOM header ({type(e).__name__}: {e})") from None
    return ds, size, pixels_at, last_cut


def _pixel_data_cut(path: Path, ds: Any, pixels_at: int, size: int) -> str | None:
    """How a native Pixel Data element at ``pixels_at`` is cut short, or None if it is whole
    (or encapsulated: compressed frames carry no overall length to check against)."""
    implicit, little = getattr(ds, "original_encoding", (False, True))
    start = 8 if implicit else 12  # tag, (VR, reserved,) 32-bit length
    with open(path, "rb") as f:
        f.seek(pixels_at)
        head = f.read(start)
    if len(head) < start:
        return "truncated pixel data: the file ends inside the Pixel Data element's header"
    (length,) = struct.unpack("<I" if little is not False else ">I", head[start - 4 : start])
    have = size - pixels_at - start
    if length == 0xFFFFFFFF or have >= length:
        return None
    return f"truncated pixel data: the file holds {have} of the {length} bytes it declares"


def _last_element_cut(ds: Any) -> bool:
    """True if the dataset's last element holds fewer bytes than its length says."""
    if not len(ds):
        return True
    raw = ds.get_item(max(ds.keys()))
    value = getattr(raw, "value", None)
    length = getattr(raw, "length", None)
    return isinstance(value, bytes) and isinstance(length, int) and len(value) < length


def compression_name(tsyntax: Any) -> str:
    """The family of a compressed transfer syntax in words: "JPEG 2000", "RLE", "JPEG-LS", "JPEG"."""
    name = str(getattr(tsyntax, "name", "") or "")
    for family in ("JPEG 2000", "JPEG-LS", "RLE", "Deflate"):
        if family in name:
            return family
    return "JPEG" if "JPEG" in name else f"{name or tsyntax} compressed"


_PALETTE_DATA = tuple(f"{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue"))


def _palette_in_native_order(ds: Any) -> Any:
    """``ds`` with 16-bit palette tables in little-endian byte order, as ``apply_color_lut`` reads them.

    pydicom hands OW table data over as the file's raw bytes and ``apply_color_lut`` reads them
    as little-endian; in a big-endian file (pydicom's ``OBXXXX1A_expb.dcm``) every 16-bit entry
    then comes out byte-swapped: ``0xFF00`` (255 in the high byte) as ``0x00FF``, a black frame
    once scaled to 8 bits.
    """
    _, little = getattr(ds, "original_encoding", (False, True))
    desc = ds.get("RedPaletteColorLookupTableDescriptor")
    if little is not False or desc is None or not all(k in ds for k in _PALETTE_DATA):
        return ds
    entries = int(desc[0]) or 2**16
    if len(ds[_PALETTE_DATA[0]].value) != 2 * entries:
        return ds  # 8-bit entries have no byte order
    from pydicom.dataset import Dataset

    out = Dataset()
    for keyword in ("PhotometricInterpretation", "PixelRepresentation", "BitsStored", "BitsAllocated",
                    *(f"{c}PaletteColorLookupTableDescriptor" for c in ("Red", "Green", "Blue"))):
        if keyword in ds:
            setattr(out, keyword, ds[keyword].value)
    for keyword in _PALETTE_DATA:
        setattr(out, keyword, np.frombuffer(ds[keyword].value, dtype=">u2").astype("<u2").tobytes())
    return out


def read_dicom(path: str | Path, *, frame: int = 0) -> DicomFrame:
    """Read one frame of an ultrasound DICOM file as RGB, with its regions and spacing.

    pydicom's warnings (odd values, unknown character sets, values of a header cut short)
    are kept from the user's terminal: what makes a file unusable is raised, one line.

    Args:
        path: a DICOM Part 10 file (extension irrelevant).
        frame: 0-based frame index; only this frame is decoded.

    Returns:
        A ``DicomFrame``.

    Raises:
        InputFileError: not DICOM, not ultrasound, a header cut short or corrupt, no pixel
            data, too large, frame out of range, no decoder installed for the transfer
            syntax, or undecodable (e.g. truncated) pixels.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_dicom(Path(path), frame)


def _read_dicom(path: Path, frame: int) -> DicomFrame:
    from pydicom.pixels import apply_color_lut, get_decoder, pixel_array

    if frame < 0:
        raise InputFileError(path, f"frame index must be >= 0, got {frame}")
    ds, size, pixels_at, last_cut = _read_header(path)
    ended = pixels_at >= size

    def truncated(before: str) -> InputFileError:
        return InputFileError(path, f"truncated or corrupt DICOM header: the file ends after {size} bytes, before {before}")

    if ended and ("Modality" not in ds or last_cut):
        raise truncated("its Modality" if "Modality" not in ds else "the end of its last element")
    _check_ultrasound(path, ds)
    rows, cols = _header_int(path, ds, "Rows", 0), _header_int(path, ds, "Columns", 0)
    if not rows or not cols:
        if ended:
            raise truncated("its image size (Rows/Columns)")
        raise InputFileError(path, "DICOM file has no image (no Rows/Columns)")
    if ended:
        raise InputFileError(path, f"truncated DICOM file: it ends after its header ({size} bytes), before the pixel data")
    if rows * cols > MAX_PIXELS:
        raise InputFileError(path, f"frame of {rows}×{cols} pixels exceeds {MAX_PIXELS}; not an ultrasound frame")
    n_frames = _header_int(path, ds, "NumberOfFrames", 1) or 1
    if frame >= n_frames:
        raise InputFileError(path, f"frame {frame} asked for, but the file has {n_frames} frame(s)")

    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    if tsyntax is None:
        raise InputFileError(path, "DICOM file has no transfer syntax in its file meta header")
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise InputFileError(path, f"transfer syntax {tsyntax} ({tsyntax.name}) is not supported by pydicom") from None
    if not decoder.is_available:
        hint = decoder_install_hint(decoder.missing_dependencies)
        raise InputFileError(path, f"no decoder installed for {tsyntax.name}; install one: {hint}")

    try:
        arr = pixel_array(path, index=frame)
    except (ValueError, EOFError, OSError, RuntimeError, AttributeError, KeyError, TypeError, NotImplementedError, struct.error) as e:
        if tsyntax.is_compressed:
            # The plugins' own words (a list of every plugin's exception, or numpy's
            # broadcast error on a wrong decoded length) say nothing to a user.
            raise InputFileError(path, f"cannot decode frame {frame}: corrupt or truncated {compression_name(tsyntax)} data") from None
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        msg = _pixel_data_cut(path, ds, pixels_at, size) or msg
        raise InputFileError(path, f"cannot decode frame {frame} ({tsyntax.name}): {msg}") from None

    photometric = str(ds.get("PhotometricInterpretation", "") or "")
    if photometric == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, _palette_in_native_order(ds))
        except (ValueError, AttributeError, KeyError, TypeError, NotImplementedError, struct.error) as e:
            raise InputFileError(path, f"cannot apply the palette colour table ({e})") from None
        if arr.dtype != np.uint8:
            # 16-bit palette entries hold the 8-bit value in their high byte.
            arr = (arr >> 8).astype(np.uint8)
    elif arr.ndim == 2:
        arr = _to_uint8(arr, ds, path)
        if photometric == "MONOCHROME1":
            arr = 255 - arr
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] == 3:
        # pydicom has converted YBR_FULL / YBR_FULL_422 / YBR_ICT / YBR_RCT to RGB.
        if arr.dtype != np.uint8:
            arr = np.stack([_to_uint8(arr[..., c], ds, path) for c in range(3)], axis=-1)
    else:
        raise InputFileError(path, f"unexpected decoded frame shape {arr.shape} ({photometric})")
    if arr.shape[:2] != (rows, cols):
        raise InputFileError(path, f"decoded frame is {arr.shape[0]}×{arr.shape[1]}, header says {rows}×{cols}")

    regions, warnings = _regions(ds, rows, cols)
    pid = ds.get("PatientID")
    source = {
        "format": "dicom",
        "transfer_syntax": tsyntax.name,
        "photometric": photometric,
        "modality": str(ds.get("Modality", "") or ""),
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
        "frame": frame,
        "n_frames": n_frames,
        "rows": rows,
        "columns": cols,
    }
    return DicomFrame(
        path=path,
        rgb=np.ascontiguousarray(arr, dtype=np.uint8),
        frame=frame,
        n_frames=n_frames,
        regions=regions,
        patient_id=str(pid).strip() if pid not in (None, "") and str(pid).strip() else None,
        source=source,
        warnings=warnings,
    )
