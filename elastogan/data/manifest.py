"""The manifest: JSON Lines, one case per line (DESIGN §2).

Paths are relative to the manifest's folder. Splits are by patient: a patient in two splits
is an error, because it leaks the test set into training. ``validate_manifest`` returns every
problem at once, each with its line number and field, so that a user fixes a file in one pass.

Fields (``data_manifests/README.md`` documents them for users):

=================  ========  =====================================================
field              required  meaning
=================  ========  =====================================================
id                 yes       unique case id
patient_id         yes       patient (pseudonym); splits are by patient
split              yes       ``train`` / ``val`` / ``test``
bmode              yes       8-bit grey PNG, H×W
emode              no        8-bit RGB PNG, H×W×3: the scanner's colour E-mode
strain             no        ``.npy`` float (float32) or 16-bit grey PNG, H×W: mapped strain
lesion             no        8-bit 0/255 PNG, H×W: lesion mask
roi                with      ``[x0, y0, x1, y1]``: elastography box (end-exclusive),
                   strain    required when emode or strain is given
pathology          no        ``benign`` / ``malignant``
lesion_type        no        one of ``LESION_TYPES``
tsukuba            no        1–5 or ``"cyst"``
birads             no        ``"2"``, ``"3"``, ``"4a"``, ``"4b"``, ``"4c"``, ``"5"``
colormap           no        a name from ``elastogan.colormaps.COLORMAPS``
pixel_spacing_mm   no        ``[dy, dx]`` in mm
strain_ratio       no        fat/lesion strain ratio (> 0)
source             no        free-form object: simulator parameters or DICOM provenance
=================  ========  =====================================================
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from elastogan.colormaps import COLORMAPS
from elastogan.data.images import check_pixels, decode_fully, pixel_info
from elastogan.errors import InputFileError, UserError

SPLITS = ("train", "val", "test")
PATHOLOGIES = ("benign", "malignant")
LESION_TYPES = (
    "none",
    "cyst",
    "complicated_cyst",
    "fibroadenoma",
    "carcinoma",
    "papilloma",
    "phyllodes",
    "lipoma",
    "fat_necrosis",
    "abscess",
    "other",
)
TSUKUBA = (1, 2, 3, 4, 5, "cyst")
BIRADS = ("2", "3", "4a", "4b", "4c", "5")
IMAGE_FIELDS = ("bmode", "emode", "strain", "lesion")
# Which reader of ``elastogan.data.images`` each file field goes through (the dataset's).
READER_OF = {"bmode": "grey", "emode": "rgb", "strain": "strain", "lesion": "grey"}
FIELDS = (
    "id", "patient_id", "split", *IMAGE_FIELDS, "roi", "pathology", "lesion_type", "tsukuba",
    "birads", "colormap", "pixel_spacing_mm", "strain_ratio", "source",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: where (line, field) and what."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}: {self.message}"


class ManifestError(UserError):
    """A manifest with problems; the message lists all of them."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        lines = "\n".join(f"  {path}: {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s)\n{lines}")
        self.path = path
        self.problems = problems


@dataclass
class Case:
    """One case of a manifest, with its paths resolved against the manifest's folder."""

    id: str
    patient_id: str
    split: str
    bmode: Path
    emode: Path | None = None
    strain: Path | None = None
    lesion: Path | None = None
    roi: tuple[int, int, int, int] | None = None
    pathology: str | None = None
    lesion_type: str | None = None
    tsukuba: int | str | None = None
    birads: str | None = None
    colormap: str | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    strain_ratio: float | None = None
    source: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    def to_record(self, root: Path) -> dict[str, Any]:
        """The JSON object of this case, paths relative to ``root`` (the manifest's folder)."""
        rec: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is None or (name == "source" and not value):
                continue
            if name in IMAGE_FIELDS:
                value = Path(os.path.relpath(value, root)).as_posix()
            elif isinstance(value, tuple):
                value = list(value)
            rec[name] = value
        return rec


@dataclass
class Manifest:
    """A read, valid manifest."""

    path: Path
    cases: list[Case]

    @property
    def root(self) -> Path:
        return self.path.parent

    def split(self, name: str) -> list[Case]:
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return [c for c in self.cases if c.split == name]


def _check_record(rec: dict[str, Any], line: int, root: Path, check_files: bool, decode: bool) -> tuple[Case | None, list[Problem]]:
    problems: list[Problem] = []

    def bad(fieldname: str | None, message: str) -> None:
        problems.append(Problem(line, fieldname, message))

    for key in rec:
        if key not in FIELDS:
            bad(key, f"unknown field; known fields: {', '.join(FIELDS)}")
    for key in ("id", "patient_id", "split", "bmode"):
        if key not in rec:
            bad(key, "missing required field")
        elif not isinstance(rec[key], str) or not rec[key].strip():
            bad(key, f"expected a non-empty string, got {rec[key]!r}")
    if isinstance(rec.get("split"), str) and rec["split"] not in SPLITS:
        bad("split", f"unknown split {rec['split']!r}; expected one of {', '.join(SPLITS)}")

    def choice(key: str, allowed: Iterable[str]) -> None:
        if key in rec and (not isinstance(rec[key], str) or rec[key] not in allowed):
            bad(key, f"unknown label {rec[key]!r}; expected one of {', '.join(allowed)}")

    choice("pathology", PATHOLOGIES)
    choice("lesion_type", LESION_TYPES)
    if "tsukuba" in rec and (isinstance(rec["tsukuba"], bool) or rec["tsukuba"] not in TSUKUBA):
        bad("tsukuba", f"unknown label {rec['tsukuba']!r}; expected 1-5 or \"cyst\"")
    choice("birads", BIRADS)
    choice("colormap", COLORMAPS)
    if "strain_ratio" in rec:
        v = rec["strain_ratio"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            bad("strain_ratio", f"expected a positive number, got {v!r}")
    if "source" in rec and not isinstance(rec["source"], dict):
        bad("source", f"expected an object, got {type(rec['source']).__name__}")
    spacing = rec.get("pixel_spacing_mm")
    if spacing is not None and not (
        isinstance(spacing, list) and len(spacing) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in spacing)
    ):
        bad("pixel_spacing_mm", f"expected [dy, dx] positive numbers in mm, got {spacing!r}")
    roi = rec.get("roi")
    if roi is not None and not (
        isinstance(roi, list) and len(roi) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in roi)
        and roi[0] < roi[2] and roi[1] < roi[3] and min(roi) >= 0
    ):
        bad("roi", f"expected [x0, y0, x1, y1] integers with x0 < x1 and y0 < y1, got {roi!r}")
        roi = None
    if roi is None and ("strain" in rec or "emode" in rec) and "roi" not in rec:
        bad("roi", "missing; required when 'emode' or 'strain' is given")

    # Files: exist, readable by the reader the dataset uses for the field (pixel format from
    # the header; every pixel with ``decode``), with the shapes the data model asks for.
    shapes: dict[str, tuple[int, ...]] = {}
    for key in IMAGE_FIELDS:
        if key not in rec:
            continue
        if not isinstance(rec[key], str) or not rec[key]:
            if key != "bmode":
                bad(key, f"expected a relative path, got {rec[key]!r}")
            continue
        rel = Path(rec[key])
        if rel.is_absolute():
            bad(key, f"path must be relative to the manifest's folder, got {rec[key]!r}")
            continue
        if not check_files:
            continue
        try:
            info = pixel_info(root / rel)
            problem = check_pixels(info, READER_OF[key])
            if problem is None and decode:
                decode_fully(root / rel)
        except InputFileError as e:
            bad(key, f"{rec[key]}: {e.problem}")
            continue
        if problem is not None:
            bad(key, f"{rec[key]}: {problem}")
            continue
        shapes[key] = info.shape
    expected_dims = {"bmode": 2, "emode": 3, "strain": 2, "lesion": 2}
    for key, shape in shapes.items():
        if key == "emode" and (len(shape) != 3 or shape[2] not in (3, 4)):
            bad(key, f"{rec[key]}: expected an RGB image, got shape {shape}")
        elif expected_dims[key] == 2 and len(shape) != 2:
            bad(key, f"{rec[key]}: expected a single-channel H×W image, got shape {shape}")
    if "bmode" in shapes:
        hw = shapes["bmode"][:2]
        for key, shape in shapes.items():
            if key != "bmode" and shape[:2] != hw:
                bad(key, f"{rec[key]}: size {shape[0]}×{shape[1]} differs from the B-mode's {hw[0]}×{hw[1]}")
        if roi is not None and (roi[2] > hw[1] or roi[3] > hw[0]):
            bad("roi", f"box {roi} reaches outside the {hw[0]}×{hw[1]} B-mode")

    if problems:
        return None, problems
    case = Case(
        id=rec["id"],
        patient_id=rec["patient_id"],
        split=rec["split"],
        bmode=root / rec["bmode"],
        emode=root / rec["emode"] if "emode" in rec else None,
        strain=root / rec["strain"] if "strain" in rec else None,
        lesion=root / rec["lesion"] if "lesion" in rec else None,
        roi=tuple(roi) if roi else None,
        pathology=rec.get("pathology"),
        lesion_type=rec.get("lesion_type"),
        tsukuba=rec.get("tsukuba"),
        birads=rec.get("birads"),
        colormap=rec.get("colormap"),
        pixel_spacing_mm=tuple(spacing) if spacing else None,
        strain_ratio=rec.get("strain_ratio"),
        source=rec.get("source") or {},
        line=line,
    )
    return case, []


def validate_manifest(path: str | Path, *, check_files: bool = True, decode: bool = False) -> tuple[list[Case], list[Problem]]:
    """Read a manifest and return its cases and every problem found.

    Problems include broken JSON, missing fields, unknown labels, missing/unreadable files,
    pixel formats the dataset's readers refuse (a 16-bit B-mode, an 8-bit strain PNG, an
    integer strain array), wrong shapes, duplicate ids and patients in more than one split.

    Args:
        path: the manifest.
        check_files: open the files (their headers: size and pixel format).
        decode: also read every pixel of every file, which finds truncated and corrupt files
            (≈ 3 ms a case at 256²; ``elastogan manifest validate`` does it by default).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(path, "manifest not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"cannot read manifest ({e})") from None
    root = path.parent
    cases: list[Case] = []
    problems: list[Problem] = []
    first_line_of_id: dict[str, int] = {}
    splits_of_patient: dict[str, dict[str, int]] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            problems.append(Problem(n, None, f"broken JSON ({e.msg} at column {e.colno})"))
            continue
        if not isinstance(rec, dict):
            problems.append(Problem(n, None, f"expected a JSON object, got {type(rec).__name__}"))
            continue
        case, found = _check_record(rec, n, root, check_files, decode)
        problems.extend(found)
        cid = rec.get("id")
        if isinstance(cid, str):
            if cid in first_line_of_id:
                problems.append(Problem(n, "id", f"duplicate id {cid!r} (first on line {first_line_of_id[cid]})"))
            else:
                first_line_of_id[cid] = n
        pid, split = rec.get("patient_id"), rec.get("split")
        if isinstance(pid, str) and split in SPLITS:
            splits_of_patient.setdefault(pid, {}).setdefault(split, n)
        if case is not None:
            cases.append(case)
    for pid, where in splits_of_patient.items():
        if len(where) > 1:
            lines = ", ".join(f"{s} (line {ln})" for s, ln in sorted(where.items(), key=lambda kv: kv[1]))
            problems.append(Problem(max(where.values()), "patient_id", f"patient {pid!r} is in more than one split: {lines}"))
    if not cases and not problems:
        problems.append(Problem(0, None, "manifest has no cases"))
    problems.sort(key=lambda p: p.line)
    return cases, problems


def read_manifest(path: str | Path, *, check_files: bool = True, decode: bool = False) -> Manifest:
    """A valid manifest, or a ``ManifestError`` listing every problem (see ``validate_manifest``)."""
    path = Path(path)
    cases, problems = validate_manifest(path, check_files=check_files, decode=decode)
    if problems:
        raise ManifestError(path, problems)
    return Manifest(path, cases)


def dumps_records(cases: Iterable[Case], root: Path) -> str:
    """JSON Lines text of ``cases`` (paths made relative to ``root``)."""
    return "".join(json.dumps(c.to_record(root), sort_keys=False) + "\n" for c in cases)


def merge_manifests(inputs: Iterable[str | Path], out: str | Path) -> int:
    """Join manifests into ``out`` (paths rebased onto ``out``'s folder); return the case count.

    Every input is validated first, and the merged text is validated before it replaces ``out``
    (duplicate ids, a patient in two splits): nothing is written unless all of it is valid.
    """
    from elastogan.atomic import atomic_open
    from elastogan.folders import check_folder_path, make_folder

    out = Path(out)
    if out.is_dir():
        raise UserError(f"{out}: is a folder; name the merged manifest file")
    if not out.exists():
        check_folder_path(out)  # refuses an ``out`` under a file
    records: list[dict[str, Any]] = []
    for path in map(Path, inputs):
        records.extend(case.to_record(out.parent) for case in read_manifest(path).cases)
    text = "".join(json.dumps(r) + "\n" for r in records)
    created = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    make_folder(out.parent)
    tmp = out.with_name(f".{out.name}.check")
    try:
        tmp.write_text(text, encoding="utf-8")
        _, problems = validate_manifest(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    if problems:
        for p in created:  # innermost first: leave no folder made for a merge that failed
            with contextlib.suppress(OSError):
                p.rmdir()
        raise ManifestError(out, problems)
    with atomic_open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return len(records)
