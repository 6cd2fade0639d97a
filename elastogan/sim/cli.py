"""``elastogan simulate``: the physics-based phantom data set."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from elastogan.errors import InputFileError, UserError

# What a recipe may hold: the data set's name and description (free text), its size and seed,
# optionally the shard it makes (a recipe written by a sharded run records it), the splits
# whose cases are also re-scanned, and the simulator settings (``SimConfig`` fields).
RECIPE_KEYS = ("name", "description", "n", "seed", "shard", "retest", "config")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate paired B-mode / strain elastogram phantoms",
        description="Simulate breast phantoms with FEM mechanics and ultrasound physics: tissue and "
        "lesion (cyst, fibroadenoma, carcinoma), plane-strain FEM compression, scatterers, RF before "
        "and after compression, cross-correlation strain, B-mode and colour E-mode, labels. Writes "
        "DIR/manifest.jsonl and DIR/cases/. The same seed gives byte-identical files whatever --workers.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--n", type=int, help="number of cases (default 16, or the recipe's)")
    p.add_argument("--size", type=int, help="frame size in pixels, a multiple of 8, at least 48 (default 256)")
    p.add_argument("--simulator", choices=("v1", "v2"),
                   help="v2: layered anatomy, BI-RADS lexicon lesions, a freehand compression sequence tracked, "
                   "compounded and gated as a strain scanner does, a cine per case; v1: phantom-v1's simulator, "
                   "kept byte for byte (default: the recipe's, else v1)")
    p.add_argument("--seed", type=int, help="data set seed, a non-negative integer (default 0, or the recipe's)")
    p.add_argument("--recipe", type=Path, help="a data set recipe, e.g. data_manifests/phantom-v1.json")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--retest", nargs="*", metavar="SPLIT",
                   help="also re-scan each case of these splits (train, val, test; all when none is named): the same phantom, "
                   "scatterers, probe, ROI and display, another compression and independent noise; writes "
                   "ID_retest_strain.npy, the scanner's test-retest ceiling for evaluate (ncc_retest). Doubles the "
                   "RF and strain work of those cases (default: none, or the recipe's)")
    p.add_argument("--shard", help="I/K: make only cases with index ≡ I (mod K) (default 0/1, or the recipe's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_recipe(path: Path) -> dict:
    """A checked data set recipe: ``{"name", "description", "n", "seed", "shard", "retest", "config"}``.

    ``n`` and ``seed`` are required; ``retest`` lists the splits whose cases are also
    re-scanned; ``config`` holds ``SimConfig`` fields. Every key is
    checked here — type and range of each setting included — so that a bad recipe fails
    before anything is written.

    Raises:
        InputFileError: naming the recipe and the first key that is wrong.
    """
    from elastogan.data.manifest import SPLITS
    from elastogan.sim.config import SimConfig

    try:
        recipe = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(path, "recipe not found") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a folder, not a recipe file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputFileError(path, f"not a readable JSON recipe ({e})") from None
    if not isinstance(recipe, dict):
        raise InputFileError(path, f"a recipe is a JSON object, got {type(recipe).__name__}")
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise InputFileError(path, f"unknown recipe keys {unknown}; known keys: {', '.join(RECIPE_KEYS)}")
    missing = [k for k in ("n", "seed") if k not in recipe]
    if missing:
        raise InputFileError(path, f"a recipe needs 'n' and 'seed'; missing {', '.join(repr(k) for k in missing)}")
    if not _is_int(recipe["n"]) or recipe["n"] < 1:
        raise InputFileError(path, f"'n' must be an integer >= 1, got {recipe['n']!r}")
    if not _is_int(recipe["seed"]) or recipe["seed"] < 0:
        raise InputFileError(path, f"'seed' must be a non-negative integer, got {recipe['seed']!r}")
    for key in ("name", "description"):
        if key in recipe and not isinstance(recipe[key], str):
            raise InputFileError(path, f"'{key}' must be a string, got {recipe[key]!r}")
    shard = recipe.get("shard")
    if shard is not None and not (
        isinstance(shard, list) and len(shard) == 2 and all(map(_is_int, shard)) and 0 <= shard[0] < shard[1]
    ):
        raise InputFileError(path, f"'shard' must be [I, K] with 0 <= I < K, got {shard!r}")
    retest = recipe.get("retest")
    if retest is not None and not (isinstance(retest, list) and all(s in SPLITS for s in retest)):
        raise InputFileError(path, f"'retest' must be a list of splits ({', '.join(SPLITS)}), got {retest!r}")
    try:
        SimConfig.from_dict(recipe.get("config", {}), source="config")
    except UserError as e:
        raise InputFileError(path, str(e)) from None
    return recipe


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tqdm import tqdm

    from elastogan.data.manifest import SPLITS
    from elastogan.sim.config import SimConfig
    from elastogan.sim.plan import parse_shard
    from elastogan.sim.writer import SimJob, run_job

    recipe = load_recipe(args.recipe) if args.recipe else {}
    settings = dict(recipe.get("config", {}))
    if args.size is not None:
        settings["size"] = args.size
    if args.simulator is not None:
        settings["simulator"] = args.simulator
    n = args.n if args.n is not None else recipe.get("n", 16)
    seed = args.seed if args.seed is not None else recipe.get("seed", 0)
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed}")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    cfg = SimConfig.from_dict(settings, source="settings" if args.recipe is None else f"{args.recipe}")
    try:
        shard = parse_shard(args.shard) if args.shard is not None else tuple(recipe.get("shard", (0, 1)))
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.retest is not None:
        retest = args.retest or SPLITS  # --retest alone: every split
    else:
        retest = recipe.get("retest", [])
    try:
        job = SimJob(out=args.out, n=n, seed=seed, config=cfg, shard=shard, retest=tuple(retest))
    except ValueError as e:
        raise UserError(f"--retest: {e}") from None
    total = len(job.cases())
    with tqdm(total=total, unit="case", desc="simulate", disable=args.no_progress, file=sys.stderr) as bar:
        manifest = run_job(job, workers=args.workers, progress=bar.update)
    print(f"wrote {total} cases to {manifest}")
    return 0
