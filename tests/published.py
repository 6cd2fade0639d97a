"""Helpers for tests that reproduce published values "to the printed digits"."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "reference"


def expected() -> dict:
    """expected.json with every number kept as the string its source printed."""
    with open(FIXTURES / "expected.json", encoding="utf-8") as f:
        return json.load(f, parse_float=str, parse_int=str)


def assert_printed(actual: float, printed: str | float, *, rel_floor: float = 1e-12) -> None:
    """``actual`` rounds to ``printed``: |actual − printed| ≤ half a unit in its last decimal.

    For values printed to 12 or more significant digits the tolerance never goes below
    ``rel_floor``·|printed| (floating-point summation order differs between programs).
    """
    text = str(printed)
    d = Decimal(text)
    exponent = d.as_tuple().exponent
    half_unit = 0.5 * 10.0 ** exponent
    tol = max(half_unit, rel_floor * abs(float(d)))
    assert abs(actual - float(d)) <= tol, f"{actual!r} does not round to the printed {text} (tolerance {tol:g})"
