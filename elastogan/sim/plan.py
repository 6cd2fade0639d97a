"""The plan of a simulated data set: which cases exist, their seeds, patients and splits.

The plan is a pure function of ``(n, seed)``: every worker and every shard computes the same
plan and simulates its own part of it, so the data set is identical however it is produced.
A *patient* is one lesion; 1–2 views of it (different compression, probe settings and noise)
are separate cases of the same patient, and splits are drawn by patient in the proportions
of the reference study (882 / 354 / 100 of 1336).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_SPLIT = {"train": 882, "val": 354, "test": 100}
SECOND_VIEW_PROBABILITY = 0.3
RETEST_TAG = 0x52455445  # "RETE": a re-scan's seed is the acquisition's with this appended


@dataclass(frozen=True)
class PlannedCase:
    index: int
    id: str
    patient: int
    view: int
    split: str
    tissue_seed: tuple[int, ...]
    acquisition_seed: tuple[int, ...]

    @property
    def patient_id(self) -> str:
        return f"P{self.patient:05d}"

    @property
    def retest_seed(self) -> tuple[int, ...]:
        """Seed of a re-scan of this case (``simulate_case(..., retest=)``): the acquisition
        seed with :data:`RETEST_TAG` appended, a stream no other case or scan uses."""
        return (*self.acquisition_seed, RETEST_TAG)


def _split_patients(sizes: list[int], rng: np.random.Generator) -> list[str]:
    """Assign patients to splits so case counts follow the reference proportions."""
    total = sum(REFERENCE_SPLIT.values())
    n_cases = sum(sizes)
    want = {k: v / total * n_cases for k, v in REFERENCE_SPLIT.items()}
    order = rng.permutation(len(sizes))
    out = [""] * len(sizes)
    counts = {k: 0 for k in REFERENCE_SPLIT}
    # Smallest splits first, so small data sets still get a test and a validation patient.
    for name in ("test", "val"):
        for p in order:
            if out[p] or counts[name] >= max(want[name], 1e-9) - 0.5 * sizes[p] and counts[name] > 0:
                continue
            out[p] = name
            counts[name] += sizes[p]
            if counts[name] >= want[name] - 0.5:
                break
    return [s or "train" for s in out]


def make_plan(n: int, seed: int) -> list[PlannedCase]:
    """The ``n`` cases of the data set drawn with ``seed``, in index order."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([seed, 0x504C414E])  # "PLAN"
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(min(2 if rng.random() < SECOND_VIEW_PROBABILITY else 1, n - sum(sizes)))
    splits = _split_patients(sizes, rng) if len(sizes) >= 3 else ["train"] * len(sizes)
    plan: list[PlannedCase] = []
    for patient, (k, split) in enumerate(zip(sizes, splits)):
        for view in range(k):
            index = len(plan)
            plan.append(
                PlannedCase(
                    index=index,
                    id=f"ph{seed}-{index:05d}",
                    patient=patient,
                    view=view,
                    split=split,
                    tissue_seed=(seed, patient),
                    acquisition_seed=(seed, patient, view + 1),
                )
            )
    return plan


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/K"`` → ``(I, K)`` with ``0 <= I < K``."""
    try:
        i, k = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like I/K (e.g. 0/4), got {text!r}") from None
    if not (k >= 1 and 0 <= i < k):
        raise ValueError(f"shard I/K needs 0 <= I < K, got {text!r}")
    return i, k
