"""Writing a simulated data set: case files, then the manifest, each written atomically.

Each case depends only on its seeds, and the manifest lists cases in plan order, so the same
seed gives byte-identical files whatever the number of workers. ``shard=(I, K)`` simulates
the cases whose index ≡ I (mod K): K machines make one data set with no overlap, and
``elastogan manifest merge`` joins their manifests.

``retest`` names the splits whose cases are also re-scanned (``simulate_case(..., retest=)``):
those cases get ``ID_retest_strain.npy`` and ``source["retest_strain"]``; every other file
and field is the same as without it.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from elastogan.atomic import atomic_write_bytes, atomic_write_text
from elastogan.folders import make_folder
from elastogan.data.images import write_png, write_strain
from elastogan.data.manifest import SPLITS
from elastogan.sim.case import simulate_case
from elastogan.sim.config import SimConfig
from elastogan.sim.plan import PlannedCase, make_plan

CASES_DIR = "cases"


@dataclass(frozen=True)
class SimJob:
    """What to simulate and where."""

    out: Path
    n: int
    seed: int
    config: SimConfig
    shard: tuple[int, int] = (0, 1)
    retest: tuple[str, ...] = ()  # splits whose cases are re-scanned

    def __post_init__(self) -> None:
        unknown = [s for s in self.retest if s not in SPLITS]
        if unknown:
            raise ValueError(f"retest splits must be among {', '.join(SPLITS)}; got {', '.join(map(repr, unknown))}")
        # One order whatever the caller's, so that the recipe a run writes is canonical.
        object.__setattr__(self, "retest", tuple(s for s in SPLITS if s in self.retest))

    @property
    def manifest_name(self) -> str:
        i, k = self.shard
        return "manifest.jsonl" if k == 1 else f"manifest.shard-{i}-of-{k}.jsonl"

    def cases(self) -> list[PlannedCase]:
        i, k = self.shard
        return [p for p in make_plan(self.n, self.seed) if p.index % k == i]


def _write_array(path: Path, arr: np.ndarray) -> None:
    """An ``.npy`` of ``arr`` as it is (dtype kept), atomically."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def simulate_and_write(planned: PlannedCase, cfg: SimConfig, out: Path, retest: bool = False) -> dict:
    """Simulate one planned case (and its re-scan if ``retest``), write its files under
    ``out/cases`` and return its record."""
    if cfg.simulator == "v1":
        simulate = simulate_case
    else:
        from elastogan.sim.case_v2 import simulate_case_v2 as simulate
    case = simulate(np.random.SeedSequence(planned.tissue_seed), np.random.SeedSequence(planned.acquisition_seed), cfg,
                    retest=np.random.SeedSequence(planned.retest_seed) if retest else None)
    stem = f"{CASES_DIR}/{planned.id}"
    write_png(out / f"{stem}_bmode.png", case.bmode)
    write_png(out / f"{stem}_emode.png", case.emode)
    write_strain(out / f"{stem}_strain.npy", case.strain)
    write_strain(out / f"{stem}_true_strain.npy", case.true_strain)
    write_png(out / f"{stem}_lesion.png", case.lesion.astype(np.uint8) * 255)
    source = dict(case.source)
    source.update(seed=list(planned.tissue_seed), view=planned.view, true_strain=f"{stem}_true_strain.npy")
    if case.retest_strain is not None:
        write_strain(out / f"{stem}_retest_strain.npy", case.retest_strain)
        source.update(retest_strain=f"{stem}_retest_strain.npy", retest_seed=list(planned.retest_seed))
    if case.labels is not None:
        source.update(case.labels)
    if case.cine_bmode is not None:
        _write_array(out / f"{stem}_cine_bmode.npy", case.cine_bmode)
        _write_array(out / f"{stem}_cine_strain.npy", case.cine_strain)
        _write_array(out / f"{stem}_quality.npy", case.quality)
        source.update(cine_bmode=f"{stem}_cine_bmode.npy", cine_strain=f"{stem}_cine_strain.npy",
                      quality=f"{stem}_quality.npy")
    extra = {"birads": case.birads} if case.birads is not None else {}
    return {
        "id": planned.id,
        "patient_id": planned.patient_id,
        "split": planned.split,
        "bmode": f"{stem}_bmode.png",
        "emode": f"{stem}_emode.png",
        "strain": f"{stem}_strain.npy",
        "lesion": f"{stem}_lesion.png",
        "roi": list(case.roi),
        "pathology": case.pathology,
        "lesion_type": case.lesion_type,
        "tsukuba": case.tsukuba,
        "colormap": cfg.colormap,
        "pixel_spacing_mm": [cfg.field_mm / cfg.size] * 2,
        "strain_ratio": case.strain_ratio,
        **extra,
        "source": source,
    }


def _worker(args: tuple[PlannedCase, SimConfig, Path, bool]) -> dict:
    return simulate_and_write(*args)


def _init_worker() -> None:
    # One BLAS/OpenMP thread per process: the workers are the parallelism.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _records(job: SimJob, workers: int) -> Iterator[dict]:
    tasks = [(p, job.config, job.out, p.split in job.retest) for p in job.cases()]
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _worker(t)
        return
    ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
        yield from pool.imap(_worker, tasks, chunksize=1)


def run_job(job: SimJob, *, workers: int = 1, progress: Callable[[int], None] | None = None) -> Path:
    """Simulate ``job``, write its files and manifest; return the manifest's path.

    The manifest is written last and atomically: an interrupted run leaves no manifest (or the
    previous one), never a half-written one.

    Raises:
        UserError: ``job.out`` is a file, lies under one, or cannot be created or written to
            (checked before anything is simulated).
    """
    make_folder(job.out)
    make_folder(job.out / CASES_DIR)
    lines = []
    for rec in _records(job, workers):
        lines.append(json.dumps(rec) + "\n")
        if progress:
            progress(1)
    recipe = {"n": job.n, "seed": job.seed, "shard": list(job.shard), "config": job.config.to_dict()}
    if job.retest:
        recipe["retest"] = list(job.retest)
    atomic_write_text(job.out / f"recipe{'' if job.shard[1] == 1 else f'.shard-{job.shard[0]}-of-{job.shard[1]}'}.json",
                      json.dumps(recipe, indent=2) + "\n")
    manifest = job.out / job.manifest_name
    atomic_write_text(manifest, "".join(lines))
    return manifest
