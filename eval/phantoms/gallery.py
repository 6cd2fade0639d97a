"""Figures of the phantoms for the README: v1 beside v2 for the same seeds, and a v2 gallery
by lesion class and lexicon feature.

Run: ``python -m elastogan.eval.phantoms.gallery --out docs [--size 256] [--seed 7]``. Writes
``phantoms_v1_v2.png`` (per row, one seed: v1 B-mode | v1 E-mode | v2 B-mode | v2 E-mode)
and ``phantoms_v2_lexicon.png`` (per row a lesion class and its lexicon labels: B-mode |
E-mode | quality), with a text file of the row labels beside each figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

GAP = 4


def _row(panels: list[np.ndarray]) -> np.ndarray:
    rgb = [np.repeat(p[..., None], 3, -1) if p.ndim == 2 else p for p in panels]
    gap = np.full((rgb[0].shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate([x for p in rgb for x in (p, gap)][:-1], axis=1)


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    gap = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for r in rows for x in (r, gap)][:-1], axis=0)


def _case(version: str, seed: int, index: int, size: int):
    from elastogan.sim.case import simulate_case
    from elastogan.sim.config import SimConfig

    cfg = SimConfig(simulator=version, size=size)
    tissue, acquisition = np.random.SeedSequence((seed, index)), np.random.SeedSequence((seed, index, 1))
    if version == "v1":
        return simulate_case(tissue, acquisition, cfg)
    from elastogan.sim.case_v2 import simulate_case_v2

    return simulate_case_v2(tissue, acquisition, cfg)


def v1_beside_v2(seed: int, rows: int, size: int) -> tuple[np.ndarray, list[str]]:
    out, labels = [], []
    for i in range(rows):
        a, b = _case("v1", seed, i, size), _case("v2", seed, i, size)
        out.append(_row([a.bmode, a.emode, b.bmode, b.emode]))
        labels.append(f"row {i + 1}: seed ({seed}, {i}); v1 {a.lesion_type} (Tsukuba {a.tsukuba}) | "
                      f"v2 {b.lesion_type} (Tsukuba {b.tsukuba}, BI-RADS {b.birads})")
    return _stack(out), labels


def lexicon_gallery(seed: int, per_class: int, size: int, search: int = 60) -> tuple[np.ndarray, list[str]]:
    """``per_class`` v2 cases of each lesion class, chosen to show different lexicon labels."""

    out, labels, seen = [], [], set()
    counts = {"cyst": 0, "fibroadenoma": 0, "carcinoma": 0}
    for i in range(search):
        c = _case("v2", seed, i, size)
        lex = c.labels["lexicon"]
        key = (c.lesion_type, lex["shape"], lex["margin"], lex["posterior"])
        if counts[c.lesion_type] >= per_class or key in seen:
            continue
        seen.add(key)
        counts[c.lesion_type] += 1
        q = np.rint(np.nan_to_num(c.quality, nan=0.0) * 255).astype(np.uint8)
        out.append(_row([c.bmode, c.emode, q]))
        labels.append(f"row {len(out)}: {c.lesion_type}, BI-RADS {c.birads}, composition {c.labels['composition']}; "
                      + ", ".join(f"{k} {v}" for k, v in lex.items()))
        if all(v >= per_class for v in counts.values()):
            break
    return _stack(out), labels


def main(argv: list[str] | None = None) -> int:
    from elastogan.atomic import atomic_write_text
    from elastogan.data.images import write_png

    p = argparse.ArgumentParser(prog="python -m elastogan.eval.phantoms.gallery", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rows", type=int, default=3, help="rows of the v1/v2 figure (default 3)")
    p.add_argument("--per-class", type=int, default=2, help="v2 cases per lesion class (default 2)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (img, labels) in {"phantoms_v1_v2": v1_beside_v2(args.seed, args.rows, args.size),
                                "phantoms_v2_lexicon": lexicon_gallery(args.seed, args.per_class, args.size)}.items():
        write_png(args.out / f"{name}.png", img)
        atomic_write_text(args.out / f"{name}.txt", "\n".join(labels) + "\n")
        print(f"{args.out / name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
