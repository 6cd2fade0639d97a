"""``elastogan rescan-ceiling``: the uncertainty goals' ceiling on a simulated data set, from K
re-scans of each case (:mod:`elastogan.eval.uncertainty.rescan_ceiling`).

Heavy imports happen inside the command.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "rescan-ceiling",
        help="the ceiling of the uncertainty figures: the scanner's own re-scans scored as a model's draws",
        description="Re-simulate K re-scans of each case of a simulated data set (same phantom, another "
        "compression and noise) from the recipe beside its manifest, and score them against the recorded scan "
        "as evaluate scores a sampling model's draws: per-pixel sd against the error (sd_error_spearman), the "
        "90%% interval's coverage, the mean's NCC, mean sd against 1 - NCC across cases. No generator that "
        "sees only the B-mode can beat the scanner's own spread given the tissue.",
    )
    c.add_argument("--data", type=Path, required=True, metavar="MANIFEST",
                   help="manifest.jsonl of a data set written by elastogan simulate (its recipe.json beside it)")
    c.add_argument("--split", default="test", help="split to score (default test)")
    c.add_argument("--cases", type=int, default=20, metavar="N", help="first N cases of the split (default 20)")
    c.add_argument("--rescans", type=int, default=8, metavar="K", help="re-scans per case (default 8, at least 2)")
    c.add_argument("--workers", type=int, default=1, help="simulation processes (default 1)")
    c.add_argument("--out", type=Path, required=True, metavar="JSON", help="write per-case rows and the summary here")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_run)


def _rescans(job):
    from elastogan.sim.rescan import rescan

    planned, cfg, k = job
    return rescan(planned, cfg, k)


def _run(args: argparse.Namespace) -> int:
    import json
    import multiprocessing as mp
    import os

    from tqdm import tqdm

    from elastogan.atomic import atomic_write_text
    from elastogan.errors import InputFileError, UserError
    from elastogan.eval.evaluate_report import split_cases
    from elastogan.eval.uncertainty.rescan_ceiling import NotReproduced, ceiling_summary, scanner_rows
    from elastogan.sim.rescan import data_recipe, planned_by_id

    if args.rescans < 2:
        raise UserError(f"--rescans must be at least 2 (a spread), got {args.rescans}")
    if args.cases < 3:
        raise UserError(f"--cases must be at least 3 (a correlation across cases), got {args.cases}")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a folder; give a .json file")
    try:
        recipe, cfg = data_recipe(args.data)
    except FileNotFoundError:
        raise InputFileError(args.data, "no recipe.json beside it: rescan-ceiling needs a data set written by "
                             "elastogan simulate") from None
    except (ValueError, KeyError, UserError) as e:
        raise InputFileError(args.data.parent / "recipe.json", f"not a simulator recipe: {e}") from None
    plan = planned_by_id(recipe)
    cases = [c for c in split_cases(args.data, args.split) if c.id in plan][: args.cases]
    if len(cases) < 3:
        raise UserError(f"{args.data}: split {args.split!r} has {len(cases)} simulated case(s) of this recipe; "
                        "at least 3 are needed")
    jobs = [(plan[c.id], cfg, args.rescans) for c in cases]
    bar = (lambda it: it) if args.no_progress else (lambda it: tqdm(it, total=len(cases), desc="rescan", unit="case"))
    pool = None
    if args.workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        pool = mp.get_context("fork" if os.name == "posix" else "spawn").Pool(min(args.workers, len(cases)))
    rescans = pool.imap(_rescans, jobs) if pool is not None else map(_rescans, jobs)
    try:
        rows = scanner_rows(cases, rescans, bar)
    except NotReproduced as e:
        raise InputFileError(args.data, f"{e}: the recipe beside the manifest does not reproduce this data set") from None
    finally:
        if pool is not None:
            pool.terminate()
    summary = ceiling_summary(rows)
    out = {"data": str(args.data), "split": args.split, "rescans": args.rescans, "summary": summary, "rows": rows}
    atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    s = summary
    print(f"{args.split}: {s['n_cases']} case(s), the scanner's {args.rescans} re-scans as draws: SD–error Spearman "
          f"{s['sd_error_spearman']:.3f}, coverage of the 90% interval {s['coverage_90_raw']:.3f}, NCC of their mean "
          f"{s['ncc_mean_of_samples_mean']:.3f}, mean sd vs 1 − NCC across cases {_fmt(s['sd_ncc_spearman'])}")
    print(f"wrote {args.out}")
    return 0


def _fmt(v) -> str:
    return "undefined" if v is None else f"{v:.3f}"
