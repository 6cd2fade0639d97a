"""Tiny paired data for training and prediction tests: numpy phantoms, a few per split.

Each case: speckle B-mode with a dark round lesion; strain 0.8 in the background and 0.2 in the
lesion (hard), NaN outside the ROI; the E-mode drawn by ``elastogan.display.render_emode``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from elastogan.data.images import write_png, write_strain
from elastogan.display import render_emode


def make_manifest(root: Path, *, size: tuple[int, int] = (32, 32), splits: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write cases and ``root/manifest.jsonl``; returns the manifest path."""
    splits = splits if splits is not None else {"train": 6, "val": 2}
    rng = np.random.default_rng(seed)
    h, w = size
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    n = 0
    for split, count in splits.items():
        for _ in range(count):
            cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.3, 0.6) * w
            r = rng.uniform(0.12, 0.2) * min(h, w)
            yy, xx = np.mgrid[:h, :w]
            lesion = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            bmode = np.clip(rng.rayleigh(60, (h, w)) * np.where(lesion, 0.4, 1.0), 0, 255).astype(np.uint8)
            roi = (1, 1, w - max(4, w // 8), h - 1)
            strain = np.full((h, w), np.nan, np.float32)
            inside = np.zeros((h, w), bool)
            inside[roi[1] : roi[3], roi[0] : roi[2]] = True
            strain[inside] = np.where(lesion, 0.2, 0.8)[inside] + rng.normal(0, 0.03, inside.sum())
            strain = np.clip(strain, 0, 1)
            emode = render_emode(bmode, strain, roi, colorbar=False)
            cid = f"c{n:03d}"
            write_png(root / f"{cid}_bmode.png", bmode)
            write_png(root / f"{cid}_emode.png", emode)
            write_strain(root / f"{cid}_strain.npy", strain)
            write_png(root / f"{cid}_lesion.png", (lesion * 255).astype(np.uint8))
            lines.append({"id": cid, "patient_id": f"p{n:03d}", "split": split, "bmode": f"{cid}_bmode.png",
                          "emode": f"{cid}_emode.png", "strain": f"{cid}_strain.npy", "lesion": f"{cid}_lesion.png",
                          "roi": list(roi)})
            n += 1
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    return path
