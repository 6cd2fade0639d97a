"""Re-scanning a simulated case K times: the scanner itself as a sampler.

``elastogan simulate --retest`` records one re-scan per case, the ceiling of a single draw's
NCC (``ncc_retest``). The uncertainty goals of a sampling generator — its per-pixel sd should
follow its error, its interval should cover the real strain — have a ceiling too: what the
scanner's own spread achieves. Re-scanning the same phantom K times (same tissue, scatterers,
probe, boundary, ROI and display; another compression and independent electronic noise each
time) gives K draws from the scanner's distribution *given the tissue*, which no generator that
sees only the B-mode can know better. ``elastogan rescan-ceiling`` scores those draws against
the recorded scan exactly as ``evaluate`` scores a model's.

Re-scan 0 uses the case's recorded re-scan seed (``PlannedCase.retest_seed``), so where the
data set was simulated with ``--retest`` it reproduces the stored ``ID_retest_strain.npy``;
re-scan ``j > 0`` uses that seed with ``j`` appended, a stream no other scan draws from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from elastogan.sim.config import SimConfig
from elastogan.sim.plan import PlannedCase, make_plan


def rescan_seed(planned: PlannedCase, j: int) -> tuple[int, ...]:
    """Seed of re-scan ``j`` of ``planned`` (0: the recorded re-scan's)."""
    if j < 0:
        raise ValueError(f"re-scan index must be >= 0, got {j}")
    return planned.retest_seed if j == 0 else (*planned.retest_seed, j)


def rescan(planned: PlannedCase, cfg: SimConfig, rescans: int) -> tuple[np.ndarray, np.ndarray]:
    """The case's first scan and ``rescans`` re-scans of it.

    Returns:
        ``(strain, rescans)``: the first scan's relative strain ``(S, S)`` (what the data set
        stores as ``ID_strain.npy``) and the re-scans' ``(rescans, S, S)`` float32, NaN outside
        the ROI.
    """
    if rescans < 1:
        raise ValueError(f"rescans must be at least 1, got {rescans}")
    if cfg.simulator == "v1":
        from elastogan.sim.case import simulate_case as simulate
    else:
        from elastogan.sim.case_v2 import simulate_case_v2 as simulate
    first, out = None, []
    for j in range(rescans):
        # each call re-simulates the first scan too: the simulator draws the re-scan after it
        case = simulate(np.random.SeedSequence(planned.tissue_seed), np.random.SeedSequence(planned.acquisition_seed),
                        cfg, retest=np.random.SeedSequence(rescan_seed(planned, j)))
        first = case.strain if first is None else first
        out.append(case.retest_strain.astype(np.float32))
    return first.astype(np.float32), np.stack(out)


def planned_by_id(recipe: dict) -> dict[str, PlannedCase]:
    """The planned cases of a data set's ``recipe.json`` (``n``, ``seed``, ``shard``), by case id."""
    i, k = recipe.get("shard", (0, 1))
    return {p.id: p for p in make_plan(int(recipe["n"]), int(recipe["seed"])) if p.index % k == i}


def data_recipe(manifest: Path) -> tuple[dict, SimConfig]:
    """The recipe ``elastogan simulate`` wrote beside ``manifest`` and its simulator settings.

    Raises:
        FileNotFoundError: no ``recipe.json`` there (the data set was not simulated, or was
            simulated in shards: pass the shard's recipe).
    """
    path = manifest.parent / "recipe.json"
    recipe = json.loads(path.read_text())
    return recipe, SimConfig.from_dict(recipe.get("config", {}), source=str(path))
