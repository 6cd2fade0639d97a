"""Scanner exports → a data set: B-mode, E-mode, mapped strain, ROI, manifest (DESIGN §2).

Two layouts of a folder of exports:

- ``dual``: each file (DICOM or image) is one screen. The image panels come from
  ``elastogan.data.panels``: the DICOM ultrasound regions when the file has two, otherwise
  the picture (two panels showing one frame, touching or apart; else the largest blocks of
  image content). Which panel is the elastogram: the regions' data types when they differ,
  otherwise the panel with clearly more colour (with a grey map: the panel with the colour
  bar, else the one smoother where the two differ). A screen whose only B-mode carries the
  elastogram (one panel, or a main image beside a thumbnail of another size) is read as an
  ``overlay``: strain from the colour, the B-mode under the ROI estimated (colour maps only).
- ``pairs``: separate B-mode and E-mode files paired by name, ``NAME_bmode.*`` with
  ``NAME_emode.*`` (also ``-b-mode``, ``_b``/``_e`` …), each cropped to its image region.

In the E-mode panel the ROI is the coloured box (with a grey map: where it differs from the
B-mode) and the colour map is the one named, checked against the image's own colour bar
(in the panel, or beside it on the screen) — or, with ``--colormap bar`` (``bar-soft-bottom``),
read from that bar. JPEG exports are read above their coding noise.
Multi-frame files (cine loops) give their first frame with a warning, one chosen frame
(``frames=N``), or every frame as a case of its own (``frames="all"``): the frames of a loop
belong to one patient, so they always land in one split.

Only the image panels leave ingestion — the burned-in text around them (names, dates,
hospital) is cropped away — and patients become pseudonyms: an HMAC-SHA256 of the patient id
under a random key made for this output and never written anywhere, so the same patient gets
the same pseudonym within one run and the pseudonyms cannot be reversed (``keep_identifiers``
keeps the real ids and the source file names). ``key_file`` keeps the key in a file the user
holds instead, so that a study ingested in parts gets the same pseudonym and split for a
patient in every part (:mod:`elastogan.data.pseudonyms`). Splits are by patient, seeded.

Everything is written into a temporary folder beside the output, validated with
``validate_manifest``, then renamed into place: an error leaves nothing half-written.
A file with no elastogram is an error naming the file, never a guess; every file is read
before the run stops, so all bad files are named at once (``elastogan.data.bad_files``).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from elastogan.colormaps import COLORMAPS, DEFAULT_COLORMAP
from elastogan.data.bad_files import raise_if_bad
from elastogan.data.colormap_inversion import (
    colorbar_lut,
    detect_roi,
    find_colorbar,
    bmode_under_roi,
    invert_emode,
    is_grey_lut,
    lut_distance,
    resolve_lut,
)
from elastogan.folders import check_folder_path, make_folder
from elastogan.data.images import write_png, write_strain
from elastogan.data.loaders import LoadedImage, load_image, rgb_to_grey
from elastogan.data.panels import COLOURED_LEVEL, colour_fraction, crop, find_blocks, screen_panels
from elastogan.data.manifest import SPLITS, Case, dumps_records, validate_manifest
from elastogan.data.pseudonyms import key_for_run, keyed_case_id, keyed_split, pseudonym, save_new_key
from elastogan.errors import InputFileError, UserError

Box = tuple[int, int, int, int]

LAYOUTS = ("dual", "pairs")
BAR_COLORMAP = "bar"  # --colormap bar: read each image's own colour bar (soft end at the top)
# The bars read from the image, and where their soft end is: scanners label the top SOFT, but
# some draw the bar the other way up; which end is soft is never guessed from the picture.
BAR_COLORMAPS = {BAR_COLORMAP: "top", "bar-soft-bottom": "bottom"}
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}  # of patients; the rest train
MIN_COLOUR_FRACTION = 0.02  # a panel with less colour than this is grey (markers, calipers)
LOSSY_NOISE = 12  # grey levels of JPEG noise (quality >= 85) in a flat colour or a difference
LOSSY_BAR_END = 3  # grey levels: a JPEG bar's black or white end is this close to the extreme
COLOUR_LEAD = 3  # the elastogram panel holds at least this many times the other panel's colour
MIN_ROI_SIDE = 8  # pixels; a smaller coloured box is a marker, not an elastogram
BAR_MISMATCH = 0.08  # mean RGB distance above which a colour bar is not the named map
POOR_MATCH_WARN = 0.05  # share of ROI pixels matched poorly that earns a warning
POOR_MATCH_REFUSE = 0.25  # … and above which the region is not this map's elastogram
BMODE_MISMATCH = 0.05  # share of pixels outside the ROI where E-mode and B-mode panels may differ …
BMODE_NOISE = 16  # … by more than this (JPEG noise stays below; another frame's speckle does not)
EDGE_POOR = 0.5  # a ROI edge line matching the map this poorly is outline or colour bleed

_PAIR_NAME = re.compile(r"^(?P<key>.+?)[ _.\-](?P<role>b-?mode|e-?mode|b_mode|e_mode|elasto|b|e)$", re.IGNORECASE)


@dataclass(frozen=True)
class IngestOptions:
    """What ``ingest`` does; the CLI flags map one to one.

    Attributes:
        colormap: a name from ``elastogan.colormaps.COLORMAPS`` or ``"bar"``.
        layout: ``"dual"`` or ``"pairs"``.
        skip_bad: go on past bad files (reported) instead of stopping at the first.
        keep_identifiers: keep real patient ids and source file names in the manifest.
        seed: seed of the patient split.
        key_file: a file holding the pseudonym key (made on the first run, 0600, never inside
            the input or output folder): pseudonyms and splits then stay the same for a
            patient in every run with this key, so a study can be ingested in parts and the
            parts merged. ``None``: a key of this run only, never written.
        frames: which frames of a multi-frame file (cine loop) become cases: ``"first"``
            (frame 0, with a warning), ``"all"`` (each frame a case), or a frame index
            (0-based; single-frame files give their one frame).
    """

    colormap: str = DEFAULT_COLORMAP
    layout: str = "dual"
    skip_bad: bool = False
    keep_identifiers: bool = False
    seed: int = 0
    frames: str | int = "first"
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.colormap not in BAR_COLORMAPS and self.colormap not in COLORMAPS:
            known = ", ".join([*sorted(COLORMAPS), *BAR_COLORMAPS])
            raise UserError(f"unknown colour map {self.colormap!r}; known: {known}")
        if self.layout not in LAYOUTS:
            raise UserError(f"unknown layout {self.layout!r}; expected one of {', '.join(LAYOUTS)}")
        if isinstance(self.frames, str) and self.frames.isdigit():
            object.__setattr__(self, "frames", int(self.frames))  # "3" from the command line
        if not (self.frames in ("first", "all") or (isinstance(self.frames, int) and self.frames >= 0)):
            raise UserError(f"frames must be 'first', 'all' or a frame index >= 0, got {self.frames!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.key_file is not None and self.keep_identifiers:
            raise UserError("--key makes pseudonyms, --keep-identifiers keeps the real ids: give one or the other")


@dataclass
class IngestReport:
    """What ``ingest`` did."""

    out: Path
    cases: int
    patients: int
    splits: dict[str, int]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    new_key: Path | None = None  # the key file this run made (``key_file`` did not exist)


@dataclass
class Extracted:
    """One case cut out of the user's files, before it is written."""

    bmode: np.ndarray  # H×W uint8
    emode: np.ndarray  # H×W×3 uint8
    strain: np.ndarray  # H×W float32, NaN outside the ROI
    roi: Box
    pixel_spacing_mm: tuple[float, float] | None
    patient_id: str | None
    source: dict[str, Any]
    warnings: list[str]


# --------------------------------------------------------------------------- one case


def _colormap_lut(emode: np.ndarray, bar: Box | None, colormap: str, path: Path) -> tuple[np.ndarray, str]:
    """The LUT to invert with, checked against the image's own colour bar when there is one."""
    if colormap in BAR_COLORMAPS:
        if bar is None:
            raise InputFileError(path, "no colour bar found in the elastogram; name the map with --colormap")
        return colorbar_lut(emode, bar, soft_at=BAR_COLORMAPS[colormap]), "colour bar"
    lut = resolve_lut(colormap)
    if bar is not None:
        read = colorbar_lut(emode, bar, soft_at="top")
        if lut_distance(read, lut) > BAR_MISMATCH:
            if lut_distance(read[::-1], lut) <= BAR_MISMATCH:
                raise InputFileError(path, f"the colour bar is the {colormap} map upside down (soft end at the bottom); this scanner's polarity is not {colormap}'s")
            raise InputFileError(path, f"the image's colour bar does not match the {colormap} map; pass the right --colormap (or --colormap bar)")
    return lut, "named"


def extract_case(
    path: Path,
    bmode: np.ndarray | None,
    emode: np.ndarray,
    colormap: str,
    *,
    screen: np.ndarray | None = None,
    emode_box: Box | None = None,
    same_frame: bool = False,
    lossy: bool = False,
) -> tuple[np.ndarray, Box, dict[str, Any], list[str]]:
    """Strain and ROI of an E-mode panel, given the B-mode panel beside it (or paired with it).

    The colour bar is looked for in the E-mode panel, then beside it on the ``screen`` (the
    whole frame the panel was cut from, at ``emode_box``): scanners often draw it just left
    or right of the image region.

    Where the E-mode's background differs from the B-mode, the B-mode under the ROI is
    estimated (colour maps) with a warning — or, with ``same_frame``, the file is refused
    (the two panels were guessed by cutting one image block in half). ``bmode=None`` (the
    elastogram drawn over the only B-mode of the screen): estimated without a warning.
    ``lossy`` (JPEG): the ROI and the bar are looked for above the coding noise.

    Returns:
        ``(strain, roi, source, warnings)``.

    Raises:
        InputFileError: no elastogram, a colour bar that contradicts the named map, a region
            that does not match the map.
    """
    warnings: list[str] = []
    bmode_known = bmode is not None
    # The ROI is the largest coloured block (the colour bar is a smaller one); a grey ROI
    # shows only where it differs from the B-mode under it. The bar is then looked for
    # outside the ROI, where smooth strain cannot pass for one.
    grey_map = colormap not in BAR_COLORMAPS and is_grey_lut(resolve_lut(colormap))
    if bmode_known and (grey_map or colormap in BAR_COLORMAPS and colour_fraction(emode) < MIN_COLOUR_FRACTION):
        roi = detect_roi(emode, bmode=bmode, min_difference=LOSSY_NOISE if lossy else 3)
    else:
        roi = detect_roi(emode, min_saturation=COLOURED_LEVEL)
    if roi is None or roi[2] - roi[0] < MIN_ROI_SIDE or roi[3] - roi[1] < MIN_ROI_SIDE:
        raise InputFileError(path, "no elastogram found (no coloured ROI in the E-mode)")
    bar_options = _bar_options(lossy)
    bar = find_colorbar(emode, exclude=roi, **bar_options)
    bar_image, bar_in = emode, "panel"
    if bar is None and screen is not None and emode_box is not None:
        bar_image, bar_in = _beside(screen, emode_box), "screen"
        bar = find_colorbar(bar_image, **bar_options)
    lut, map_from = _colormap_lut(bar_image, bar, colormap, path)
    if bar is None:
        # Said, not silently trusted: a bar in another map would have been an error.
        warnings.append(f"no colour bar found to check the {colormap} map against; the map is taken as named")
    grey_map = is_grey_lut(lut)
    panel_bar = [bar] if bar and bar_in == "panel" else []
    if not bmode_known and grey_map:
        raise InputFileError(path, "a grey-map elastogram drawn over the only B-mode cannot be told from that B-mode; export the dual display, or B-mode and E-mode files (--layout pairs)")
    if bmode_known and not _same_background(emode, bmode, [roi] + panel_bar):
        if same_frame:
            raise InputFileError(path, "no dual display found: one image block, and its halves are not a B-mode and its elastogram")
        if grey_map:
            raise InputFileError(path, "the B-mode does not match the elastogram's background, and a grey map cannot be inverted without it")
        bmode_known = False
        warnings.append("the B-mode differs from the E-mode's background; estimating the B-mode under the ROI")
    try:
        inv = invert_emode(emode, roi, lut, bmode=bmode if bmode_known else None)
    except ValueError as e:  # a grey map's opacity unreadable: the file's problem, not a bug
        raise InputFileError(path, str(e)) from None
    trimmed = _trim_poor_edges(roi, inv.poor_match)
    if trimmed != roi:
        roi = trimmed
        inv = invert_emode(emode, roi, lut, bmode=bmode if bmode_known else None, alpha=inv.alpha)
    if inv.poor_fraction > POOR_MATCH_REFUSE:
        raise InputFileError(path, f"the coloured region does not match the {colormap} colour map ({inv.poor_fraction:.0%} of its pixels matched poorly): not an elastogram, or another map")
    if inv.poor_fraction > POOR_MATCH_WARN:
        warnings.append(f"{inv.poor_fraction:.1%} of the ROI's pixels matched the colour map poorly")
    source = {
        "colormap": colormap,
        "colormap_from": map_from,
        "colorbar": {"box": list(bar), "in": bar_in} if bar else None,
        "alpha": round(inv.alpha, 3),
        "bmode_under_roi": inv.bmode_source,
        "poor_match_fraction": round(inv.poor_fraction, 4),
    }
    return inv.strain, roi, source, warnings


def _beside(screen: np.ndarray, box: Box) -> np.ndarray:
    """The screen blanked except for strips left and right of ``box`` (a quarter of its width)."""
    x0, y0, x1, y1 = box
    margin = max(16, (x1 - x0) // 4)
    out = np.zeros_like(screen)
    for a, b in ((max(0, x0 - margin), x0), (x1, min(screen.shape[1], x1 + margin))):
        out[y0:y1, a:b] = screen[y0:y1, a:b]
    return out


def _trim_poor_edges(roi: Box, poor: np.ndarray) -> Box:
    """Drop ROI edge lines that mostly match the map poorly: a drawn ROI outline, or colour
    bled across the box edge by JPEG chroma subsampling."""
    x0, y0, x1, y1 = roi
    while x1 - x0 > MIN_ROI_SIDE and y1 - y0 > MIN_ROI_SIDE:
        edges = {
            "top": poor[y0, x0:x1].mean(), "bottom": poor[y1 - 1, x0:x1].mean(),
            "left": poor[y0:y1, x0].mean(), "right": poor[y0:y1, x1 - 1].mean(),
        }
        side, worst = max(edges.items(), key=lambda kv: kv[1])
        if worst <= EDGE_POOR:
            break
        if side == "top":
            y0 += 1
        elif side == "bottom":
            y1 -= 1
        elif side == "left":
            x0 += 1
        else:
            x1 -= 1
    return (x0, y0, x1, y1)


def _same_background(emode: np.ndarray, bmode: np.ndarray, boxes: list[Box]) -> bool:
    """True if the E-mode, outside ``boxes`` (ROI, colour bar), is the B-mode."""
    outside = np.ones(bmode.shape, bool)
    for x0, y0, x1, y1 in boxes:
        outside[y0:y1, x0:x1] = False
    if not outside.any():
        return False
    diff = np.abs(emode.astype(np.int16) - bmode[..., None].astype(np.int16)).max(axis=-1) > BMODE_NOISE
    return float(diff[outside].mean()) <= BMODE_MISMATCH


def extract_dual(img: LoadedImage, colormap: str) -> Extracted:
    """One screen → a case: a dual display (B-mode | E-mode), else an elastogram drawn over the
    screen's only B-mode (one panel, or a main image beside a thumbnail of another size)."""
    path = img.path
    found = screen_panels(img, 2)
    boxes, found_by = list(found.boxes), found.found_by
    if not boxes:
        raise InputFileError(path, "no image content found (blank screen)")
    sizes = [(b[3] - b[1], b[2] - b[0]) for b in boxes]
    if len(boxes) < 2 or sizes[0] != sizes[1]:
        main = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        if colormap not in BAR_COLORMAPS and is_grey_lut(resolve_lut(colormap)):
            raise InputFileError(path, f"one image panel ({len(boxes)} found, no two of one size): a grey-map elastogram drawn over the only B-mode cannot be told from that B-mode; export the dual display, or B-mode and E-mode files (--layout pairs)")
        if colour_fraction(crop(img.rgb, main)) < MIN_COLOUR_FRACTION:
            what = f"found {len(boxes)} image panel(s)" if len(boxes) < 2 else f"the two largest image blocks differ in size ({sizes[0][0]}×{sizes[0][1]} and {sizes[1][0]}×{sizes[1][1]})"
            raise InputFileError(path, f"no dual display found ({what}) and no coloured elastogram over a B-mode; is this a plain B-mode? (try --layout pairs)")
        return extract_overlay(img, main, colormap, found_by)
    panels = [crop(img.rgb, b) for b in boxes]
    colour = [colour_fraction(p) for p in panels]
    lossy = is_lossy(img)
    halves = boxes[0][2] == boxes[1][0] and found_by == "image"  # one block cut in two, a guess

    which: int | None = None
    chosen_by = ""
    regions = {r.box: r for r in img.regions if r.is_image}
    types = [regions[b].data_type if b in regions else None for b in boxes]
    grey_map = colormap not in BAR_COLORMAPS and is_grey_lut(resolve_lut(colormap))
    # Markers, calipers and JPEG's chroma around them colour a few per cent of a B-mode
    # panel: a colour elastogram is the panel with clearly more colour than the other.
    coloured = [c >= MIN_COLOUR_FRACTION for c in colour]
    clear = max(colour) >= MIN_COLOUR_FRACTION and max(colour) >= COLOUR_LEAD * min(colour)
    if None not in types and types[0] != types[1] and 1 in types:
        which, chosen_by = (0 if types[1] == 1 else 1), "dicom region data type"
    elif clear:
        # With a grey map named too: the coloured panel's bar then contradicts the name.
        which, chosen_by = int(np.argmax(colour)), "colour saturation"
    elif not grey_map and all(coloured) and colormap not in BAR_COLORMAPS:
        if halves:
            # Not two panels after all: one wide picture, coloured over its B-mode.
            x0, y0, _, _ = boxes[0]
            _, _, x1, y1 = boxes[1]
            return extract_overlay(img, (x0, y0, x1, y1), colormap, found_by)
        raise InputFileError(path, f"both image panels are coloured ({colour[0]:.0%} and {colour[1]:.0%} of their pixels): no grey B-mode panel; colour Doppler rather than elastography?")
    else:
        # A grey-map elastogram is the panel with the colour bar …
        bars = [find_colorbar(p, **_bar_options(lossy)) is not None for p in panels]
        if bars.count(True) == 1:
            which, chosen_by = bars.index(True), "colour bar"
        elif found.twins:
            # … or, one frame shown twice, the panel that is smoother where the two differ:
            # the strain blended over the speckle damps it.
            which, chosen_by = _smoother_where_different(panels), "smoother where the panels differ"
    if which is None:
        raise InputFileError(path, "no elastogram found: neither image panel holds a coloured ROI")

    emode = panels[which]
    bmode = rgb_to_grey(panels[1 - which])
    strain, roi, source, warnings = extract_case(path, bmode, emode, colormap, screen=img.rgb, emode_box=boxes[which], same_frame=halves, lossy=lossy)
    spacing = next((r.spacing_mm for r in img.regions if r.is_image and _inside(boxes[which], r.box)), None)
    source = {**img.source, "layout": "dual", "panels": found_by, "panel_boxes": {"bmode": list(boxes[1 - which]), "emode": list(boxes[which])},
              "emode_panel": "left" if which == 0 else "right", "emode_chosen_by": chosen_by, **source}
    return Extracted(bmode, np.ascontiguousarray(emode), strain, roi, spacing, img.patient_id, source, img.warnings + warnings)


def is_lossy(img: LoadedImage) -> bool:
    """True for JPEG files and DICOM with a lossy JPEG transfer syntax (coding noise, bleeding)."""
    if img.format == "jpeg":
        return True
    syntax = str(img.source.get("transfer_syntax", ""))
    return "JPEG" in syntax and "Lossless" not in syntax


def _bar_options(lossy: bool) -> dict[str, int]:
    """``find_colorbar`` tolerances: chroma subsampling spreads a bar's colour by ~12 levels."""
    return {"row_tolerance": LOSSY_NOISE, "end_noise": LOSSY_BAR_END} if lossy else {}


def _smoother_where_different(panels: list[np.ndarray]) -> int | None:
    """Index of the panel with less pixel-to-pixel change where the two grey panels differ,
    or None if they do not differ (two copies of one B-mode)."""
    a, b = (rgb_to_grey(p).astype(np.int16) for p in panels)
    differ = np.abs(a - b) > BMODE_NOISE
    if differ.mean() < MIN_COLOUR_FRACTION:
        return None
    rough = [float(np.abs(np.diff(g, axis=1))[differ[:, 1:]].mean()) for g in (a, b)]
    return int(np.argmin(rough))


def extract_overlay(img: LoadedImage, box: Box, colormap: str, found_by: str) -> Extracted:
    """A screen whose only B-mode carries the elastogram → a case; the B-mode under the ROI is
    estimated from the colour (``bmode_under_roi``: colour maps only)."""
    path = img.path
    emode = crop(img.rgb, box)
    strain, roi, source, warnings = extract_case(path, None, emode, colormap, screen=img.rgb, emode_box=box, lossy=is_lossy(img))
    lut = resolve_lut(colormap) if colormap not in BAR_COLORMAPS else None
    if lut is None:
        bar_box = source["colorbar"]["box"]
        bar_image = emode if source["colorbar"]["in"] == "panel" else img.rgb
        lut = colorbar_lut(bar_image, tuple(bar_box), soft_at=BAR_COLORMAPS[colormap])
    try:
        bmode = bmode_under_roi(emode, roi, strain, lut, source["alpha"])
    except ValueError as e:
        raise InputFileError(path, str(e)) from None
    spacing = next((r.spacing_mm for r in img.regions if r.is_image and _inside(box, r.box)), None)
    source = {**img.source, "layout": "overlay", "panels": found_by, "panel_boxes": {"emode": list(box)}, **source}
    return Extracted(bmode, np.ascontiguousarray(emode), strain, roi, spacing, img.patient_id, source, img.warnings + warnings)


def _inside(box: Box, outer: Box) -> bool:
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


def _single_panel(img: LoadedImage) -> tuple[Box, tuple[float, float] | None, str]:
    """The one image panel of a file: its largest DICOM image region, else its image block."""
    regions = [r for r in img.regions if r.is_image]
    if regions:
        r = max(regions, key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]))
        return r.box, r.spacing_mm, "dicom region"
    boxes = find_blocks(img.rgb, 1)
    if not boxes:
        raise InputFileError(img.path, "no image content found (blank screen)")
    return boxes[0], None, "image"


def extract_pair(bimg: LoadedImage, eimg: LoadedImage, colormap: str) -> Extracted:
    """A B-mode file and an E-mode file → a case."""
    bbox, bspacing, _ = _single_panel(bimg)
    ebox, espacing, found_by = _single_panel(eimg)
    bpanel, epanel = crop(bimg.rgb, bbox), crop(eimg.rgb, ebox)
    if bpanel.shape != epanel.shape:
        raise InputFileError(eimg.path, f"E-mode image region {epanel.shape[0]}×{epanel.shape[1]} differs in size from its B-mode's {bpanel.shape[0]}×{bpanel.shape[1]} ({bimg.path.name})")
    if colour_fraction(bpanel) >= MIN_COLOUR_FRACTION:
        raise InputFileError(bimg.path, "the B-mode file is coloured; expected a grey B-mode")
    if bimg.patient_id and eimg.patient_id and bimg.patient_id != eimg.patient_id:
        raise InputFileError(eimg.path, f"patient differs from its B-mode's ({bimg.path.name})")
    bmode = rgb_to_grey(bpanel)
    strain, roi, source, warnings = extract_case(eimg.path, bmode, epanel, colormap, screen=eimg.rgb, emode_box=ebox, lossy=is_lossy(eimg))
    source = {**eimg.source, "layout": "pairs", "panels": found_by, **source}
    return Extracted(bmode, np.ascontiguousarray(epanel), strain, roi, espacing or bspacing, eimg.patient_id or bimg.patient_id, source, bimg.warnings + eimg.warnings + warnings)


# --------------------------------------------------------------------------- the folder


def _input_files(root: Path) -> list[Path]:
    """Files under ``root``, sorted; hidden files and DICOMDIR indexes are not images."""
    files = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.name.upper() == "DICOMDIR":
            continue
        files.append(p)
    return files


def _fallback_patient(root: Path, path: Path, key: str) -> str:
    """Without a DICOM PatientID: the first subfolder (one folder per patient), else the case."""
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else key


def assign_splits(patients: list[str], seed: int) -> dict[str, str]:
    """Patient → split, a seeded shuffle of the sorted patients cut by ``SPLIT_FRACTIONS``.

    From three patients on, validation and test get at least one patient each.
    """
    unique = sorted(set(patients))
    order = np.random.default_rng(seed).permutation(len(unique))
    least = 1 if len(unique) >= 3 else 0
    n_test = max(least, int(round(SPLIT_FRACTIONS["test"] * len(unique))))
    n_val = max(least, int(round(SPLIT_FRACTIONS["val"] * len(unique))))
    out = {}
    for rank, i in enumerate(order):
        out[unique[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def _jobs(root: Path, files: list[Path], layout: str) -> tuple[list[tuple[str, list[Path]]], list[tuple[Path, str]]]:
    """(key, files) per case, and files that cannot form one."""
    if layout == "dual":
        return [(p.relative_to(root).with_suffix("").as_posix(), [p]) for p in files], []
    groups: dict[tuple[Path, str], dict[str, Path]] = {}
    unpaired: list[tuple[Path, str]] = []
    for p in files:
        m = _PAIR_NAME.match(p.stem) or _PAIR_NAME.match(p.name)
        if m is None:
            unpaired.append((p, "name does not say B-mode or E-mode (expected NAME_bmode.* / NAME_emode.*)"))
            continue
        role = "b" if m["role"].lower().startswith("b") else "e"
        slot = groups.setdefault((p.parent, m["key"]), {})
        if role in slot:
            unpaired.append((p, f"second {'B' if role == 'b' else 'E'}-mode file for {m['key']!r} (first: {slot[role].name})"))
            continue
        slot[role] = p
    jobs = []
    for (parent, key), slot in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        if set(slot) != {"b", "e"}:
            only = next(iter(slot.values()))
            unpaired.append((only, f"no {'E' if 'b' in slot else 'B'}-mode partner for {key!r}"))
            continue
        jobs.append(((parent / key).relative_to(root).as_posix(), [slot["b"], slot["e"]]))
    return jobs, unpaired


def frames_to_ingest(imgs: list[LoadedImage], frames: str | int) -> tuple[list[int], list[str]]:
    """The frame indices to ingest from a case's files (loaded at frame 0), and warnings.

    The files of a case (one screen, or a B-mode and an E-mode) are read at the same index.

    Raises:
        InputFileError: the index is beyond a multi-frame file, or (``"all"``) the files of a
            pair hold different numbers of frames.
    """
    counts = [i.source.get("n_frames", 1) for i in imgs]
    n = max(counts)
    if n == 1:
        return [0], []
    if frames == "first":
        return [0], [f"{i.path}: {c} frames; frame 0 ingested (--frames all or --frames N for others)"
                     for i, c in zip(imgs, counts) if c > 1]
    if frames == "all":
        if len(set(counts)) > 1:
            raise InputFileError(imgs[-1].path, "--frames all needs as many frames in the B-mode as in the E-mode file; "
                                 + ", ".join(f"{i.path.name} has {c}" for i, c in zip(imgs, counts)))
        return list(range(n)), []
    for i, c in zip(imgs, counts):
        if c > 1 and frames >= c:
            raise InputFileError(i.path, f"frame {frames} asked for (--frames), but the file has {c} frames")
    return [frames], []


def _load_frame(first: list[LoadedImage], index: int) -> list[LoadedImage]:
    """A case's files at frame ``index`` (``first`` holds frame 0; single-frame files stay)."""
    if index == 0:
        return first
    return [i if i.source.get("n_frames", 1) == 1 else load_image(i.path, frame=index) for i in first]


def ingest(input_dir: str | Path, out_dir: str | Path, options: IngestOptions = IngestOptions(), *, on_skip: Callable[[Path, str], None] | None = None) -> IngestReport:
    """Turn a folder of scanner exports into a validated data set in ``out_dir``.

    Args:
        input_dir: folder of exports (searched recursively).
        out_dir: new folder (or an empty one) for ``manifest.jsonl`` and the images.
        options: colour map, layout, skip/keep flags, split seed.
        on_skip: called with (file, problem) for each file skipped under ``skip_bad``.

    Returns:
        An ``IngestReport``.

    Raises:
        InputFileError: the one bad file, unless ``options.skip_bad`` (every file is read
            first: nothing is written).
        BadFiles: several bad files, each named, unless ``options.skip_bad``.
        UserError: bad folders, or no case at all.
    """
    root, out = Path(input_dir), Path(out_dir)
    if root.exists() and not root.is_dir():
        raise UserError(f"{root}: input is a file, not a folder")
    if not root.is_dir():
        raise UserError(f"{root}: input folder not found")
    check_folder_path(out)
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out}: output folder exists and is not empty")
    if out.resolve() == root.resolve():
        raise UserError(f"{out}: output folder must differ from the input folder")
    key, new_key = key_for_run(options.key_file, inside={"the input folder": root, "the output folder": out})
    files = _input_files(root)
    if not files:
        raise UserError(f"{root}: no files to ingest")
    jobs, skipped = _jobs(root, files, options.layout)

    problems: list[tuple[Path, str]] = []

    def bad(path: Path, problem: str) -> None:
        # Every file is still read: without skip_bad the run ends with all problems at once.
        problems.append((path, problem))
        if options.skip_bad and on_skip:
            on_skip(path, problem)

    unusable, skipped = skipped, []
    for path, problem in unusable:
        bad(path, problem)

    make_folder(out.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise UserError(f"{out}: cannot write into {out.parent} ({e.strerror or e})") from None
    try:
        for sub in ("bmode", "emode", "strain"):
            (tmp / sub).mkdir()
        cases: list[Case] = []
        real_ids: list[str] = []
        warnings: list[str] = []
        for case_key, paths in jobs:
            try:
                first = [load_image(p) for p in paths]
                frames, frame_warnings = frames_to_ingest(first, options.frames)
            except InputFileError as e:
                bad(Path(e.path), e.problem)
                continue
            warnings += frame_warnings
            for index in frames:
                try:
                    imgs = _load_frame(first, index)
                    ex = extract_dual(imgs[0], options.colormap) if options.layout == "dual" else extract_pair(imgs[0], imgs[1], options.colormap)
                except InputFileError as e:
                    bad(Path(e.path), f"frame {index}: {e.problem}" if len(frames) > 1 else e.problem)
                    continue
                cid = f"case{len(cases) + 1:04d}" if options.key_file is None else keyed_case_id(paths, index, key)
                pid = ex.patient_id or _fallback_patient(root, paths[-1], case_key)
                source = dict(ex.source)
                if options.keep_identifiers:
                    source["files"] = [p.relative_to(root).as_posix() for p in paths]
                write_png(tmp / "bmode" / f"{cid}.png", ex.bmode)
                write_png(tmp / "emode" / f"{cid}.png", ex.emode)
                write_strain(tmp / "strain" / f"{cid}.npy", ex.strain)
                warnings += [f"{paths[-1]}: {w}" for w in ex.warnings]
                real_ids.append(pid)
                cases.append(Case(
                    id=cid,
                    patient_id=pid if options.keep_identifiers else pseudonym(pid, key),
                    split="train",
                    bmode=tmp / "bmode" / f"{cid}.png",
                    emode=tmp / "emode" / f"{cid}.png",
                    strain=tmp / "strain" / f"{cid}.npy",
                    roi=ex.roi,
                    colormap=options.colormap if options.colormap in COLORMAPS else None,
                    pixel_spacing_mm=ex.pixel_spacing_mm,
                    source=source,
                ))
        if not options.skip_bad:
            raise_if_bad(problems, what="ingested")
        skipped = problems
        if not cases:
            raise UserError(f"{root}: no case could be ingested ({len(skipped)} file(s) skipped)")
        if options.key_file is None:
            # Split on the real ids, so that a seed gives the same split in every run (the
            # pseudonyms change from run to run).
            split_of = assign_splits(real_ids, options.seed)
        else:  # each patient's own split, whoever else is in this part of the study
            split_of = {pid: keyed_split(pid, key, options.seed, SPLIT_FRACTIONS) for pid in real_ids}
        for c, pid in zip(cases, real_ids):
            c.split = split_of[pid]
        (tmp / "manifest.jsonl").write_text(dumps_records(cases, tmp), encoding="utf-8")
        _, problems = validate_manifest(tmp / "manifest.jsonl")
        if problems:
            raise RuntimeError("ingest wrote an invalid manifest: " + "; ".join(map(str, problems)))
        if new_key:  # saved before the data set appears: pseudonyms never outlive their key
            save_new_key(options.key_file, key)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = {s: sum(c.split == s for c in cases) for s in SPLITS}
    return IngestReport(out, len(cases), len(split_of), counts, skipped, warnings, options.key_file if new_key else None)
