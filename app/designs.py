"""Reading designs: which images a reader reads, in which session, in which order.

| design | a reader's list | for |
|---|---|---|
| ``split`` (default) | one of each case's two elastograms: real for half the cases, synthetic for the other half; the next reader gets the other half (counterbalanced, split-plot) | authenticity of single images |
| ``paired-sessions`` | session 1 as ``split``; session 2, after a washout the lead sets, the other elastogram of every case | the paper's diagnostic comparison (every case read with both) |
| ``staged`` | as ``split``; each reading is BI-RADS on the B-mode alone, then BI-RADS again with the elastogram | the elastogram's added value |
| ``both`` | every image of every case in one session, the two of a case far apart (schema version 1) | studies made before issue 13 |

Counterbalancing: the cases are put in one study-wide order (SHA-256 of the study id and the
case id) and cut in two halves, A (the larger when the count is odd) and B. Reader number k
(0, 1, 2, … in the order they were added) reads the real elastogram of the A cases and the
synthetic one of the B cases when k is even, the reverse when k is odd. So each reader reads
half real, half synthetic, and every two consecutive readers read every image once.

Repeats (``repeat`` F): ``round(F × n)`` of the reader's n readings, drawn at random, are shown
again at the end of their last session (for intra-reader agreement); they are flagged
``repeat``. The order within each block is shuffled with the reader's own seed
(``reading_order.reader_seed``).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Sequence

from elastogan.app.reading_order import reading_order


@dataclass(frozen=True)
class Slot:
    """One reading in a reader's list."""

    image: str
    session: int
    repeat: bool


def counterbalance_order(study_id: str, case_ids: Sequence[str]) -> list[str]:
    """The study-wide case order whose first half is A: sorted by SHA-256 of study and case id."""
    return sorted(case_ids, key=lambda c: hashlib.sha256(f"elastogan-halves\0{study_id}\0{c}".encode()).hexdigest())


def split_assignment(pairs: Sequence[tuple[str, str]], reader_index: int) -> tuple[list[str], list[str]]:
    """``(shown, other)``: the image of each case reader ``reader_index`` reads, and the other one.

    Args:
        pairs: ``(real, synthetic)`` image ids in ``counterbalance_order``.
        reader_index: 0 for the first reader added, 1 for the next, …

    Example:
        >>> split_assignment([("r0", "s0"), ("r1", "s1"), ("r2", "s2")], 0)
        (['r0', 'r1', 's2'], ['s0', 's1', 'r2'])
        >>> split_assignment([("r0", "s0"), ("r1", "s1"), ("r2", "s2")], 1)
        (['s0', 's1', 'r2'], ['r0', 'r1', 's2'])
    """
    if reader_index < 0:
        raise ValueError(f"expected a reader index >= 0, got {reader_index}")
    half = (len(pairs) + 1) // 2
    flip = reader_index % 2
    shown, other = [], []
    for i, (real, synthetic) in enumerate(pairs):
        real_shown = (i < half) != bool(flip)
        shown.append(real if real_shown else synthetic)
        other.append(synthetic if real_shown else real)
    return shown, other


def reading_list(design: str, pairs: Sequence[tuple[str, str]], *, reader_index: int, seed: int,
                 repeat: float = 0.0) -> list[Slot]:
    """A reader's list of readings under ``design`` (see the module docstring).

    Args:
        design: ``split``, ``paired-sessions``, ``staged`` or ``both``.
        pairs: ``(real, synthetic)`` image ids per case, in ``counterbalance_order``.
        reader_index: the reader's number in the order readers were added.
        seed: the reader's seed (``reader_seed``).
        repeat: fraction of the readings shown again at the end (0 to 1).

    Raises:
        ValueError: an unknown design, no cases, or ``repeat`` outside [0, 1].
    """
    if not pairs:
        raise ValueError("a reading list needs at least one case")
    if not 0.0 <= repeat <= 1.0:
        raise ValueError(f"expected repeat in [0, 1], got {repeat}")
    rng = random.Random(seed)
    if design == "both":
        slots = [Slot(i, 1, False) for i in reading_order(pairs, seed)]
    elif design in ("split", "staged", "paired-sessions"):
        shown, other = split_assignment(pairs, reader_index)
        rng.shuffle(shown)
        slots = [Slot(i, 1, False) for i in shown]
        if design == "paired-sessions":
            rng.shuffle(other)
            slots += [Slot(i, 2, False) for i in other]
    else:
        raise ValueError(f"unknown design {design!r}")
    n_repeat = round(repeat * len(slots))
    again = rng.sample(slots, n_repeat)
    last = slots[-1].session
    return slots + [Slot(s.image, last, True) for s in again]
