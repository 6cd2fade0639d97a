"""``elastogan simulate``: the physics-based phantom data set."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from elastogan.errors import InputFileError, UserError


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
    p.add_argument("--size", type=int, help="frame size in pixels (default 256)")
    p.add_argument("--seed", type=int, help="data set seed (default 0)")
    p.add_argument("--recipe", type=Path, help="a data set recipe, e.g. data_manifests/phantom-v1.json")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--shard", default="0/1", help="I/K: make only cases with index ≡ I (mod K) (default 0/1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def load_recipe(path: Path) -> dict:
    """A data set recipe: ``{"name", "n", "seed", "config": {SimConfig fields}}``."""
    try:
        recipe = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(path, "recipe not found") from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputFileError(path, f"not a readable JSON recipe ({e})") from None
    if not isinstance(recipe, dict) or not {"n", "seed"} <= set(recipe):
        raise InputFileError(path, "a recipe needs at least 'n' and 'seed'")
    return recipe


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tqdm import tqdm

    from elastogan.sim.config import SimConfig
    from elastogan.sim.plan import parse_shard
    from elastogan.sim.writer import SimJob, run_job

    recipe = load_recipe(args.recipe) if args.recipe else {}
    settings = dict(recipe.get("config", {}))
    if args.size is not None:
        settings["size"] = args.size
    n = args.n if args.n is not None else recipe.get("n", 16)
    seed = args.seed if args.seed is not None else recipe.get("seed", 0)
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    try:
        cfg = SimConfig.from_dict(settings)
        shard = parse_shard(args.shard)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
    job = SimJob(out=args.out, n=n, seed=seed, config=cfg, shard=shard)
    total = len(job.cases())
    with tqdm(total=total, unit="case", desc="simulate", disable=args.no_progress, file=sys.stderr) as bar:
        manifest = run_job(job, workers=args.workers, progress=bar.update)
    print(f"wrote {total} cases to {manifest}")
    return 0
