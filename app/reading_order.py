"""Each reader's own reproducible reading order, with the two images of a case far apart.

The seed is SHA-256 of the study id and the reader's name (never Python's ``hash()``, which
changes between processes). The cases are split at random into two groups A and B, and the
order is: one image of every A case, one of every B case, the other image of every A case,
the other of every B case, each block shuffled. So the two images of a case are at least
``⌊n/2⌋`` positions apart, and which kind comes first is drawn per case, balanced: half the
cases show the real elastogram first (one more when n is odd, chosen at random).
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence


def reader_seed(study_id: str, reader: str) -> int:
    """64-bit seed from SHA-256 of ``study_id`` and ``reader`` (stable across runs and machines)."""
    digest = hashlib.sha256(f"elastogan-study\0{study_id}\0{reader}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def reading_order(pairs: Sequence[tuple[str, str]], seed: int) -> list[str]:
    """The order in which one reader sees the images.

    Args:
        pairs: per case, ``(real_image, synthetic_image)`` ids.
        seed: from ``reader_seed``.

    Returns:
        Every image id once; the two of a case at least ``len(pairs) // 2`` apart.

    Example:
        >>> reading_order([("r0", "s0"), ("r1", "s1")], seed=1)
        ['r1', 's0', 's1', 'r0']
    """
    if not pairs:
        raise ValueError("a reading order needs at least one case")
    rng = random.Random(seed)
    n = len(pairs)
    real_first = [True] * (n // 2) + [False] * (n // 2)
    if n % 2:
        real_first.append(rng.random() < 0.5)
    rng.shuffle(real_first)
    firsts = [p if rf else p[::-1] for p, rf in zip(pairs, real_first)]
    cases = list(range(n))
    rng.shuffle(cases)
    group_a, group_b = cases[: (n + 1) // 2], cases[(n + 1) // 2 :]

    def block(group: list[int], which: int) -> list[str]:
        ids = [firsts[c][which] for c in group]
        rng.shuffle(ids)
        return ids

    return block(group_a, 0) + block(group_b, 0) + block(group_a, 1) + block(group_b, 1)
