"""Reading the reader-study CSV exports, strictly.

The columns are a contract with the app's export (issue 5 §3):

| file | columns |
|---|---|
| answers (authenticity) | ``reader,case,is_synthetic,judged_synthetic`` (0/1) ``[,group]`` |
| scores (agreement) | ``case,reader,score[,condition]`` |
| ratings (ROC, diagnostic) | ``case,truth,reader,modality,rating`` (truth 0/1, 1 = malignant) |

Optional per-reading columns, read when present (the app's export of issue 13):
``repeat`` (0/1 or true/false; empty = 0: a later showing of an image the reader already
answered), ``reading_time_s`` or ``reading_s`` (seconds from image shown to answer stored,
≥ 0; empty = not recorded), ``stage`` and ``session`` (labels, for the reading-time tables).
The analyses use first readings (:func:`first_readings`); repeats feed intra-reader agreement.

The app's ``readings.csv`` (one row per reading, repeats included) is read by
:func:`read_readings`: ``reader``, ``repeat``, ``image`` (or ``case``) and whichever of the
answers ``judged_synthetic, tsukuba, birads, birads_bmode, confidence, confidence_bmode``, the
times ``reading_s`` (or ``reading_time_s``) and ``reading_bmode_s``, and the labels
``group, modality, design, session, staged, stage`` it has.

Other columns are ignored. Every problem is a :class:`~elastogan.errors.InputFileError` that
names the file, the line and the column: a missing column, an empty cell, a value that is
not 0/1, a rating outside the declared ``--order``, a duplicated answer, a case whose truth
differs between rows. Ratings are ordinal: with an ``order`` (e.g. BI-RADS
``2,3,4a,4b,4c,5``) a rating becomes its position in that order; without one it must be a
number. Higher means more suspicious.

The JSON the analyses write is described in :mod:`elastogan.eval.reader_stats.reader_study`.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from elastogan.errors import InputFileError, UserError

AUTHENTICITY_COLUMNS = ("reader", "case", "is_synthetic", "judged_synthetic")
SCORES_COLUMNS = ("case", "reader", "score")
RATINGS_COLUMNS = ("case", "truth", "reader", "modality", "rating")
_MAX_LISTED = 5
EXTRA_COLUMNS = ("stage", "session")  # optional labels, kept for the reading-time tables
TIME_COLUMNS = ("reading_time_s", "reading_s")  # the second is the app's readings.csv name
READINGS_ANSWERS = ("judged_synthetic", "tsukuba", "birads", "birads_bmode", "confidence", "confidence_bmode")
READINGS_LABELS = ("group", "modality", "design", "session", "staged", "stage")
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no", "")


@dataclass(frozen=True)
class Row:
    """One CSV data row: its 1-based line number and its cells by column name."""

    line: int
    cells: dict[str, str]


@dataclass(frozen=True)
class AuthenticityAnswers:
    """Answers of the blinded real-or-synthetic reading, one per (reader, case)."""

    reader: np.ndarray  # str, (n,)
    case: np.ndarray  # str, (n,)
    is_synthetic: np.ndarray  # int 0/1, (n,)
    judged_synthetic: np.ndarray  # int 0/1, (n,)
    group: np.ndarray | None  # str, (n,), or None when the file has no group column
    repeat: np.ndarray | None = None  # bool, (n,), or None without a repeat column
    reading_time_s: np.ndarray | None = None  # float, (n,) (NaN: not recorded), or None
    extra: dict[str, np.ndarray] | None = None  # optional label columns (stage, session) present


@dataclass(frozen=True)
class Scores:
    """Categorical scores (e.g. Tsukuba) for agreement, one per (condition, case, reader)."""

    case: np.ndarray  # str, (n,)
    reader: np.ndarray  # str, (n,)
    score: np.ndarray  # int index into categories, (n,)
    condition: np.ndarray  # str, (n,); "all" when the file has no condition column
    categories: tuple[str, ...]  # in their declared (ordinal) order
    repeat: np.ndarray | None = None
    reading_time_s: np.ndarray | None = None
    extra: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class Ratings:
    """Ordinal confidence ratings for ROC, one per (modality, reader, case)."""

    case: np.ndarray  # str, (n,)
    truth: np.ndarray  # int 0/1, (n,)
    reader: np.ndarray  # str, (n,)
    modality: np.ndarray  # str, (n,)
    rating: np.ndarray  # float, (n,): the number, or the position in the declared order
    order: tuple[str, ...] | None  # the declared order, if any
    repeat: np.ndarray | None = None
    reading_time_s: np.ndarray | None = None
    extra: dict[str, np.ndarray] | None = None


def parse_order(text: str | None) -> tuple[str, ...] | None:
    """Parse ``--order`` (comma-separated categories, least to most) into a tuple."""
    if text is None:
        return None
    items = tuple(x.strip() for x in text.split(","))
    if any(not x for x in items):
        raise UserError(f"--order {text!r}: empty category (expected e.g. 2,3,4a,4b,4c,5)")
    if len(set(items)) != len(items):
        dup = sorted({x for x in items if items.count(x) > 1})
        raise UserError(f"--order {text!r}: category listed twice: {', '.join(dup)}")
    if len(items) < 2:
        raise UserError(f"--order {text!r}: expected at least 2 categories")
    return items


def read_rows(path: str | os.PathLike, required: Sequence[str]) -> tuple[list[str], list[Row]]:
    """Read a CSV with a header; check the required columns and that their cells are filled.

    Returns:
        The header (stripped names) and the data rows (cells stripped of surrounding spaces).
        Blank lines are skipped.
    """
    path = Path(path)
    if path.is_dir():
        raise InputFileError(path, "is a folder; expected a CSV file")
    if not path.is_file():
        raise InputFileError(path, "no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise InputFileError(path, "empty file (expected a header line)") from None
            rows: list[Row] = []
            for record in reader:
                if not any(c.strip() for c in record):
                    continue
                line = reader.line_num
                if len(record) != len(header):
                    raise InputFileError(
                        path, f"line {line}: {len(record)} cells but the header has {len(header)} columns"
                    )
                rows.append(Row(line, {h: c.strip() for h, c in zip(header, record)}))
    except UnicodeDecodeError as e:
        raise InputFileError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise InputFileError(path, f"not a valid CSV: {e}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InputFileError(
            path, f"missing column(s) {', '.join(missing)}; expected {','.join(required)}, got {','.join(header)}"
        )
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise InputFileError(path, f"column(s) named twice in the header: {', '.join(dup)}")
    if not rows:
        raise InputFileError(path, "no data rows")
    empty = [(r.line, c) for r in rows for c in required if r.cells[c] == ""]
    if empty:
        listed = "; ".join(f"line {ln} column {c}" for ln, c in empty[:_MAX_LISTED])
        more = f" (and {len(empty) - _MAX_LISTED} more)" if len(empty) > _MAX_LISTED else ""
        raise InputFileError(path, f"{len(empty)} empty cell(s): {listed}{more}")
    return header, rows


def _binary(path: Path, rows: list[Row], column: str) -> np.ndarray:
    bad = [(r.line, r.cells[column]) for r in rows if r.cells[column] not in ("0", "1")]
    if bad:
        listed = "; ".join(f"line {ln}: {v!r}" for ln, v in bad[:_MAX_LISTED])
        raise InputFileError(path, f"column {column} must be 0 or 1: {listed}")
    return np.array([int(r.cells[column]) for r in rows], dtype=np.int64)


def _ordinal(path: Path, rows: list[Row], column: str, order: tuple[str, ...] | None) -> np.ndarray:
    """Map a column to numbers: its position in ``order``, or the number itself."""
    if order is not None:
        index = {c: i for i, c in enumerate(order)}
        bad = [(r.line, r.cells[column]) for r in rows if r.cells[column] not in index]
        if bad:
            listed = "; ".join(f"line {ln}: {v!r}" for ln, v in bad[:_MAX_LISTED])
            raise InputFileError(
                path, f"{len(bad)} {column}(s) outside the declared order {','.join(order)}: {listed}"
            )
        return np.array([index[r.cells[column]] for r in rows], dtype=np.float64)
    values, bad = [], []
    for r in rows:
        try:
            v = float(r.cells[column])
        except ValueError:
            v = math.nan
        if not math.isfinite(v):
            bad.append((r.line, r.cells[column]))
        values.append(v)
    if bad:
        listed = "; ".join(f"line {ln}: {v!r}" for ln, v in bad[:_MAX_LISTED])
        raise InputFileError(
            path, f"{column} must be a number, or declare the categories with --order: {listed}"
        )
    return np.array(values, dtype=np.float64)


def _no_duplicates(path: Path, rows: list[Row], key: Sequence[str]) -> None:
    seen: dict[tuple[str, ...], int] = {}
    for r in rows:
        k = tuple(r.cells[c] for c in key)
        if k in seen:
            what = ", ".join(f"{c} {v!r}" for c, v in zip(key, k))
            raise InputFileError(path, f"line {r.line}: second answer for {what} (first on line {seen[k]})")
        seen[k] = r.line


def _column(rows: list[Row], column: str) -> np.ndarray:
    return np.array([r.cells[column] for r in rows], dtype=object)


def _optional_repeat(path: Path, header: list[str], rows: list[Row]) -> np.ndarray | None:
    if "repeat" not in header:
        return None
    bad = [(r.line, r.cells["repeat"]) for r in rows if r.cells["repeat"].lower() not in _TRUE + _FALSE]
    if bad:
        listed = "; ".join(f"line {ln}: {v[:20]!r}" for ln, v in bad[:_MAX_LISTED])
        raise InputFileError(path, f"column repeat must be 0/1 or true/false: {listed}")
    return np.array([r.cells["repeat"].lower() in _TRUE for r in rows], dtype=bool)


def _optional_times(path: Path, header: list[str], rows: list[Row], column: str | None = None) -> np.ndarray | None:
    """Seconds (empty = NaN) from ``column``, by default ``reading_time_s`` or, as the app's
    readings.csv names it, ``reading_s``; None when the file has neither."""
    if column is None:
        column = next((c for c in TIME_COLUMNS if c in header), None)
    if column is None or column not in header:
        return None
    values, bad = [], []
    for r in rows:
        text = r.cells[column]
        try:
            v = float(text) if text else math.nan
        except ValueError:
            v = -1.0
        if (text and not math.isfinite(v)) or v < 0:
            bad.append((r.line, text))
        values.append(v)
    if bad:
        listed = "; ".join(f"line {ln}: {v[:20]!r}" for ln, v in bad[:_MAX_LISTED])
        raise InputFileError(path, f"column {column} must be a number of seconds ≥ 0 (or empty): {listed}")
    return np.array(values, dtype=np.float64)


def _optional(path: Path, header: list[str], rows: list[Row]) -> dict:
    """The optional per-reading columns as dataclass fields."""
    extra = {c: _column(rows, c) for c in EXTRA_COLUMNS if c in header}
    return {"repeat": _optional_repeat(path, header, rows), "reading_time_s": _optional_times(path, header, rows),
            "extra": extra or None}


def _repeat_key(header: list[str]) -> tuple[str, ...]:
    return ("repeat",) if "repeat" in header else ()


def first_readings(data: AuthenticityAnswers | Scores | Ratings):
    """The same answers without the repeated readings (all of them when there is no repeat column)."""
    if data.repeat is None or not data.repeat.any():
        return data
    keep = ~data.repeat
    changes = {}
    for f in fields(data):
        v = getattr(data, f.name)
        if isinstance(v, np.ndarray) and v.shape[:1] == keep.shape:
            changes[f.name] = v[keep]
        elif isinstance(v, dict):
            changes[f.name] = {k: a[keep] for k, a in v.items()}
    return replace(data, **changes)


def read_authenticity(path: str | os.PathLike) -> AuthenticityAnswers:
    """Read ``reader,case,is_synthetic,judged_synthetic[,group]``."""
    path = Path(path)
    header, rows = read_rows(path, AUTHENTICITY_COLUMNS)
    _no_duplicates(path, rows, ("reader", "case", *_repeat_key(header)))
    has_group = "group" in header
    if has_group:
        empty = [r.line for r in rows if r.cells["group"] == ""]
        if empty:
            raise InputFileError(path, f"column group is empty on line(s) {', '.join(map(str, empty[:_MAX_LISTED]))}")
        groups: dict[str, set[str]] = {}
        for r in rows:
            groups.setdefault(r.cells["reader"], set()).add(r.cells["group"])
        split = {k: v for k, v in groups.items() if len(v) > 1}
        if split:
            k, v = next(iter(split.items()))
            raise InputFileError(path, f"reader {k!r} is in more than one group: {', '.join(sorted(v))}")
    return AuthenticityAnswers(
        reader=_column(rows, "reader"),
        case=_column(rows, "case"),
        is_synthetic=_binary(path, rows, "is_synthetic"),
        judged_synthetic=_binary(path, rows, "judged_synthetic"),
        group=_column(rows, "group") if has_group else None,
        **_optional(path, header, rows),
    )


def read_scores(path: str | os.PathLike, order: tuple[str, ...] | None = None) -> Scores:
    """Read ``case,reader,score[,condition]``.

    Without ``order`` the scores must be numbers and their categories are the distinct values
    seen, in numeric order; with it, every score must be one of its categories.
    """
    path = Path(path)
    header, rows = read_rows(path, SCORES_COLUMNS)
    has_condition = "condition" in header
    if has_condition:
        empty = [r.line for r in rows if r.cells["condition"] == ""]
        if empty:
            raise InputFileError(path, f"column condition is empty on line(s) {', '.join(map(str, empty[:_MAX_LISTED]))}")
    key = ("condition", "case", "reader") if has_condition else ("case", "reader")
    _no_duplicates(path, rows, (*key, *_repeat_key(header)))
    values = _ordinal(path, rows, "score", order)
    if order is not None:
        categories = order
        index = values.astype(np.int64)
    else:
        distinct = np.unique(values)
        categories = tuple(_format_number(v) for v in distinct)
        index = np.searchsorted(distinct, values).astype(np.int64)
    condition = _column(rows, "condition") if has_condition else np.full(len(rows), "all", dtype=object)
    return Scores(_column(rows, "case"), _column(rows, "reader"), index, condition, categories,
                  **_optional(path, header, rows))


def read_ratings(path: str | os.PathLike, order: tuple[str, ...] | None = None) -> Ratings:
    """Read ``case,truth,reader,modality,rating``; a case must have one truth in every row."""
    path = Path(path)
    header, rows = read_rows(path, RATINGS_COLUMNS)
    _no_duplicates(path, rows, ("modality", "reader", "case", *_repeat_key(header)))
    truth = _binary(path, rows, "truth")
    first: dict[str, tuple[int, int]] = {}
    for r, t in zip(rows, truth):
        c = r.cells["case"]
        if c in first and first[c][0] != t:
            raise InputFileError(
                path, f"line {r.line}: case {c!r} has truth {t} but truth {first[c][0]} on line {first[c][1]}"
            )
        first.setdefault(c, (int(t), r.line))
    return Ratings(
        case=_column(rows, "case"),
        truth=truth,
        reader=_column(rows, "reader"),
        modality=_column(rows, "modality"),
        rating=_ordinal(path, rows, "rating", order),
        order=order,
        **_optional(path, header, rows),
    )


def _format_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


@dataclass(frozen=True)
class Readings:
    """Every reading of a study, repeats included (the app's ``readings.csv``)."""

    reader: np.ndarray  # str, (n,)
    item: np.ndarray  # str, (n,): the image read (or the case)
    repeat: np.ndarray  # bool, (n,)
    answers: dict[str, np.ndarray]  # str, (n,) each; "" where not asked
    times: dict[str, np.ndarray]  # float seconds, (n,) each; NaN where not recorded
    labels: dict[str, np.ndarray]  # str, (n,) each


def read_readings(path: str | os.PathLike) -> Readings:
    """Read the per-reading export (module docstring); one row per (reader, item, repeat)."""
    path = Path(path)
    header, rows = read_rows(path, ("reader", "repeat"))
    item = "image" if "image" in header else "case" if "case" in header else None
    if item is None:
        raise InputFileError(path, f"missing column image (or case); got {','.join(header)}")
    empty = [r.line for r in rows if r.cells[item] == ""]
    if empty:
        raise InputFileError(path, f"column {item} is empty on line(s) {', '.join(map(str, empty[:_MAX_LISTED]))}")
    _no_duplicates(path, rows, ("reader", item, "repeat"))
    times = {c: _optional_times(path, header, rows, c) for c in (*TIME_COLUMNS, "reading_bmode_s") if c in header}
    return Readings(
        reader=_column(rows, "reader"),
        item=_column(rows, item),
        repeat=_optional_repeat(path, header, rows),
        answers={c: _column(rows, c) for c in READINGS_ANSWERS if c in header},
        times=times,
        labels={c: _column(rows, c) for c in READINGS_LABELS if c in header},
    )
