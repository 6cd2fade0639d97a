"""``elastogan bench simulate``: simulator throughput with 1 and 2 workers in the same run."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

PLANNING_PAIRS_PER_S = 1.6  # DESIGN §7: the 2-core planning figure to beat


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="phantom pairs per second with 1 and 2 workers",
        description="Simulate N cases at SIZE² with 1 worker and with W workers (same seed, so the "
        "same work), with each simulator version asked for, and report cases/s, the speed-up over the "
        "first row, and the ratio to the planning figure of 1.6 pairs/s on 2 cores.",
    )
    p.add_argument("--n", type=int, default=8, help="cases per run, at least 1 (default 8)")
    p.add_argument("--size", type=int, default=256, help="frame size, a multiple of 8, at least 48 (default 256)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    p.add_argument("--simulator", choices=("v1", "v2"), nargs="+", default=["v2"],
                   help="simulator versions to time, each with every worker count (default v2; 'v1 v2' gives their ratio)")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from elastogan.folders import check_folder_path
    from elastogan.errors import UserError
    from elastogan.sim.config import SimConfig
    from elastogan.sim.writer import SimJob, run_job

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    bad = [w for w in args.workers if w < 1]
    if bad:
        raise UserError(f"--workers must all be at least 1, got {bad[0]}")
    try:
        configs = {v: SimConfig(simulator=v, size=args.size) for v in args.simulator}
    except ValueError as e:
        raise UserError(f"--size: {e}") from None
    if args.json is not None:
        # Checked now, not after minutes of simulation.
        if args.json.is_dir():
            raise UserError(f"--json {args.json}: is a folder; name a file")
        try:
            check_folder_path(args.json.parent)
        except UserError as e:
            raise UserError(f"--json {args.json}: {e}") from None
    rows = []
    for version, cfg in configs.items():
        for w in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                job = SimJob(out=Path(tmp), n=args.n, seed=12345, config=cfg)
                t0 = time.perf_counter()
                run_job(job, workers=w)
                dt = time.perf_counter() - t0
            rows.append({"simulator": version, "workers": w, "cases": args.n, "seconds": round(dt, 2),
                         "pairs_per_s": round(args.n / dt, 3)})
    base = rows[0]["pairs_per_s"]
    print(f"simulator throughput at {args.size}x{args.size}, {args.n} cases per run ({os.cpu_count()} CPUs)")
    print(f"{'sim':>3}  {'workers':>7}  {'seconds':>8}  {'cases/s':>8}  {'vs 1st':>7}  {'vs 1.6/s plan':>13}")
    for r in rows:
        r["speedup"] = round(r["pairs_per_s"] / base, 2)
        r["vs_planning"] = round(r["pairs_per_s"] / PLANNING_PAIRS_PER_S, 2)
        print(f"{r['simulator']:>3}  {r['workers']:>7}  {r['seconds']:>8.2f}  {r['pairs_per_s']:>8.3f}  {r['speedup']:>6.2f}x  "
              f"{r['vs_planning']:>12.2f}x")
    if args.json:
        from elastogan.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
    return 0
