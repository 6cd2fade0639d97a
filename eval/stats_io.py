"""Reading the reader-study CSV exports, strictly.

The columns are a contract with the app's export (issue 5 §3):

| file | columns |
|---|---|
| answers (authenticity) | ``reader,case,is_synthetic,judged_synthetic`` (0/1) ``[,group]`` |
| scores (agreement) | ``case,reader,score[,condition]`` |
| ratings (ROC, diagnostic) | ``case,truth,reader,modality,rating`` (truth 0/1, 1 = malignant) |

Extra columns are ignored. Every problem is a :class:`~elastogan.errors.InputFileError` that
names the file, the line and the column: a missing column, an empty cell, a value that is
not 0/1, a rating outside the declared ``--order``, a duplicated answer, a case whose truth
differs between rows. Ratings are ordinal: with an ``order`` (e.g. BI-RADS
``2,3,4a,4b,4c,5``) a rating becomes its position in that order; without one it must be a
number. Higher means more suspicious.

The JSON the analyses write is described in :mod:`elastogan.eval.reader_study`.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from elastogan.errors import InputFileError, UserError

AUTHENTICITY_COLUMNS = ("reader", "case", "is_synthetic", "judged_synthetic")
SCORES_COLUMNS = ("case", "reader", "score")
RATINGS_COLUMNS = ("case", "truth", "reader", "modality", "rating")
_MAX_LISTED = 5


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


@dataclass(frozen=True)
class Scores:
    """Categorical scores (e.g. Tsukuba) for agreement, one per (condition, case, reader)."""

    case: np.ndarray  # str, (n,)
    reader: np.ndarray  # str, (n,)
    score: np.ndarray  # int index into categories, (n,)
    condition: np.ndarray  # str, (n,); "all" when the file has no condition column
    categories: tuple[str, ...]  # in their declared (ordinal) order


@dataclass(frozen=True)
class Ratings:
    """Ordinal confidence ratings for ROC, one per (modality, reader, case)."""

    case: np.ndarray  # str, (n,)
    truth: np.ndarray  # int 0/1, (n,)
    reader: np.ndarray  # str, (n,)
    modality: np.ndarray  # str, (n,)
    rating: np.ndarray  # float, (n,): the number, or the position in the declared order
    order: tuple[str, ...] | None  # the declared order, if any


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


def read_authenticity(path: str | os.PathLike) -> AuthenticityAnswers:
    """Read ``reader,case,is_synthetic,judged_synthetic[,group]``."""
    path = Path(path)
    header, rows = read_rows(path, AUTHENTICITY_COLUMNS)
    _no_duplicates(path, rows, ("reader", "case"))
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
    _no_duplicates(path, rows, ("condition", "case", "reader") if has_condition else ("case", "reader"))
    values = _ordinal(path, rows, "score", order)
    if order is not None:
        categories = order
        index = values.astype(np.int64)
    else:
        distinct = np.unique(values)
        categories = tuple(_format_number(v) for v in distinct)
        index = np.searchsorted(distinct, values).astype(np.int64)
    condition = _column(rows, "condition") if has_condition else np.full(len(rows), "all", dtype=object)
    return Scores(_column(rows, "case"), _column(rows, "reader"), index, condition, categories)


def read_ratings(path: str | os.PathLike, order: tuple[str, ...] | None = None) -> Ratings:
    """Read ``case,truth,reader,modality,rating``; a case must have one truth in every row."""
    path = Path(path)
    _, rows = read_rows(path, RATINGS_COLUMNS)
    _no_duplicates(path, rows, ("modality", "reader", "case"))
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
    )


def _format_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
