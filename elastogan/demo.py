"""The main job on the built-in data (``make demo``): simulate a phantom set, validate it,
train the TransUNet GAN and the pix2pix baseline with the same budget on the CPU, evaluate both
on the test split against the simulated scanner's elastograms, and print the table.

Run: ``python -m elastogan.demo --out runs/demo [--n 120] [--steps 600] [--workers 2]``.
It drives the ``elastogan`` commands in-process, exactly as a user would type them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path


def phantom_gallery(manifest_path: Path, out_png: Path, per_class: int = 1) -> None:
    """A figure of B-mode | E-mode | mapped strain rows, ``per_class`` cases per lesion class."""
    import numpy as np

    from elastogan.colormaps import get_colormap
    from elastogan.data.images import read_gray, read_rgb, read_strain, write_png
    from elastogan.data.manifest import read_manifest

    m = read_manifest(manifest_path)
    rows = []
    for cls in ("cyst", "fibroadenoma", "carcinoma"):
        for case in [c for c in m.cases if c.lesion_type == cls][:per_class]:
            b = read_gray(case.bmode)
            e = read_rgb(case.emode)
            s = read_strain(case.strain)
            cmap = get_colormap(case.colormap or "hitachi").colorize(s)
            strain_rgb = np.rint(cmap * 255).astype(np.uint8)  # NaN (outside the ROI) is black
            gap = np.full((b.shape[0], 4, 3), 255, np.uint8)
            rows.append(np.concatenate([np.repeat(b[..., None], 3, -1), gap, e, gap, strain_rgb], axis=1))
    if rows:
        gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
        write_png(out_png, np.concatenate([r for row in rows for r in (row, gap)][:-1], axis=0))


def summary(manifest_path: Path) -> str:
    """Counts by split, class and Tsukuba score, and the strain-estimation quality."""
    import numpy as np

    from elastogan.data.images import read_gray, read_mask, read_strain
    from elastogan.data.manifest import read_manifest
    from elastogan.tsukuba import score_tsukuba

    m = read_manifest(manifest_path)
    lines = [f"{len(m.cases)} cases from {len({c.patient_id for c in m.cases})} patients"]
    split = Counter(c.split for c in m.cases)
    lines.append("split:   " + ", ".join(f"{k} {split[k]}" for k in ("train", "val", "test")))
    cls = Counter(c.lesion_type for c in m.cases)
    lines.append("lesions: " + ", ".join(f"{k} {v}" for k, v in sorted(cls.items())))
    ts = Counter(str(c.tsukuba) for c in m.cases)
    lines.append("Tsukuba (design): " + ", ".join(f"{k}: {v}" for k, v in sorted(ts.items())))
    if any(c.birads for c in m.cases):  # phantom-v2: BI-RADS from the lexicon labels, breast composition
        br = Counter(c.birads for c in m.cases)
        lines.append("BI-RADS (lexicon rule): " + ", ".join(f"{k}: {br[k]}" for k in ("2", "3", "4a", "4b", "4c", "5") if br[k]))
        comp = Counter(c.source.get("composition") for c in m.cases)
        lines.append("composition: " + ", ".join(f"{k}: {comp[k]}" for k in "abcd" if comp[k]))
    corr, agree_true, agree_est = [], 0, 0
    for c in m.cases:
        est = read_strain(c.strain)
        true = read_strain(m.root / c.source["true_strain"])
        ok = np.isfinite(est) & np.isfinite(true)
        corr.append(float(np.corrcoef(est[ok], true[ok])[0, 1]))
        agree_true += c.source.get("tsukuba_rule_true_strain") == c.tsukuba
        agree_est += score_tsukuba(est, read_mask(c.lesion), roi=c.roi, bmode=read_gray(c.bmode)) == c.tsukuba
    n = len(m.cases)
    lines.append(f"estimated vs true FEM strain in the ROI: r = {np.mean(corr):.3f} ± {np.std(corr):.3f} (mean ± sd)")
    lines.append(f"rule Tsukuba score = design label: {agree_true}/{n} on true strain, {agree_est}/{n} on the simulated elastogram")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elastogan.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--n", type=int, default=120, help="phantom cases (default 120)")
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps per model (default 600)")
    parser.add_argument("--config", help="training config (default: the installed tiny.yaml, training/configs/tiny.yaml)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--simulator", choices=("v1", "v2"), default="v2",
                        help="phantom simulator (default v2, the built-in phantom-v2's)")
    args = parser.parse_args(argv)

    from elastogan.cli import main as cli
    from elastogan.training.config import CONFIG_DIR  # installed with the package: a wheel has no source tree

    args.config = args.config or str(CONFIG_DIR / "tiny.yaml")

    data = args.out / "data"
    t0 = time.perf_counter()
    print(f"== 1. simulate {args.n} phantom-{args.simulator} cases at {args.size}x{args.size} ({args.workers} workers)",
          flush=True)
    # The test split is also re-scanned: the scanner's test-retest NCC, the ceiling of one draw.
    rc = cli(["simulate", "--out", str(data), "--n", str(args.n), "--size", str(args.size), "--simulator", args.simulator,
              "--seed", str(args.seed), "--workers", str(args.workers), "--retest", "test"])
    if rc:
        return rc
    print(f"   {args.n / (time.perf_counter() - t0):.2f} pairs/s")
    print("== 2. validate the manifest", flush=True)
    rc = cli(["manifest", "validate", str(data / "manifest.jsonl")])
    if rc:
        return rc
    print("== 3. summary")
    print(summary(data / "manifest.jsonl"))
    gallery = args.out / "phantoms.png"
    phantom_gallery(data / "manifest.jsonl", gallery)
    print(f"gallery (B-mode | E-mode | mapped strain, one row per lesion class): {gallery}")

    runs = {"transunet": [], "pix2pix": ["--set", "model.name=pix2pix"]}
    for i, (name, extra) in enumerate(runs.items(), start=4):
        print(f"== {i}. train {name} ({args.steps} steps, {Path(args.config).name}, same data, seed and budget)", flush=True)
        rc = cli(["train", "--config", args.config, "--data", str(data / "manifest.jsonl"), "--out", str(args.out / name),
                  "--steps", str(args.steps), "--set", f"optim.steps={args.steps}", "--no-progress", *extra])
        if rc:
            return rc
    print("== 6. evaluate both on the test split", flush=True)
    ckpts = [str(args.out / name / "checkpoints" / "best.pt") for name in runs]
    rc = cli(["evaluate", "--checkpoint", *ckpts, "--data", str(data / "manifest.jsonl"), "--split", "test",
              "--out", str(args.out / "eval"), "--no-progress"])
    if rc:
        return rc
    print(results_table(args.out / "eval" / "metrics.json"))
    print(f"report: {args.out / 'eval' / 'report.md'}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


def results_table(metrics_json: Path) -> str:
    """The demo's table per model: NCC of one draw (mean ± sd, median) beside the scanner's
    test-retest NCC (its ceiling), NCC of the mean of K draws beside the oracle (its ceiling),
    the two observers' C2ST accuracies, SSIM and MAE."""
    import json

    metrics = json.loads(metrics_json.read_text())
    if "n_cases" in metrics:  # one model only
        metrics = {"model": metrics}

    def cell(v: float | None, width: int) -> str:
        return f"{'—':>{width}}" if v is None else f"{v:>{width}.3f}"

    width = max(12, *(len(n) for n in metrics))
    lines = [f"{'model':<{width}} {'cases':>5} {'NCC mean ± sd':>16} {'median':>7} {'retest':>7} {'K-mean':>7} "
             f"{'oracle':>7} {'C2ST tex':>8} {'C2ST CNN':>8} {'SSIM':>6} {'MAE':>6}"]
    for name, m in metrics.items():
        lines.append(f"{name:<{width}} {m['n_cases']:>5} {m['ncc_mean']:>8.3f} ± {m['ncc_sd']:<5.3f} "
                     f"{m['ncc_median']:>7.3f} {cell(m.get('ncc_retest_mean'), 7)} "
                     f"{cell(m.get('ncc_mean_of_samples_mean'), 7)} {cell(m.get('ncc_oracle_mean'), 7)} "
                     f"{cell(m.get('c2st_texture_accuracy'), 8)} {cell(m.get('c2st_cnn_accuracy'), 8)} "
                     f"{m['ssim_mean']:>6.3f} {m['mae_mean']:>6.3f}")
    lines.append("(NCC: one draw's mapped strain inside the ROI vs the simulated scanner's, the reference paper: "
                 "0.70 ± 0.08; retest: the scanner's re-scan vs its scan, one draw's ceiling; K-mean: NCC of the mean "
                 "of K draws; oracle: the true FEM strain vs the scanner's, the mean's ceiling; C2ST: held-out accuracy "
                 "of the texture and CNN observers telling synthetic from real mapped strain, 0.5 = indistinguishable)")
    for name, m in metrics.items():
        c = m.get("paired", {}).get("ncc")
        if c is None or c["ci"] is None:
            continue
        w = c["wilcoxon"]
        wp = f", Wilcoxon p {w['p']:.3g}" if w and w["p"] is not None else ""
        lines.append(f"case by case, NCC {name} − {m['paired']['reference']}: {c['diff']:+.3f} "
                     f"[{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] ({c['level']:.0%} CI, {c['n']} cases{wp})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
