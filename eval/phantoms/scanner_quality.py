"""How well a phantom set's simulated scanner measured strain: the displayed elastogram against
the true FEM strain of each case, in the ROI.

Per case: the correlation of the displayed (relative) strain with the true strain through the
same display normalisation, and the share of outlier pixels — displayed strain more than 2×
above or below the truth after both are divided by their medians
(:func:`elastogan.sim.strain_filter.outlier_share`) — the streaks of raw tracking errors a
clinical scanner never shows. Reported as mean, median and 90th percentile over the cases, so
two data sets (phantom-v1's single pre/post pair, phantom-v2's compounded sequence) can be
compared case for case on the same footing.

Run: ``python -m elastogan.eval.phantoms.scanner_quality DATA [DATA …] [--split test]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from elastogan.errors import UserError


def case_quality(strain: np.ndarray, true_strain: np.ndarray) -> tuple[float, float]:
    """``(correlation, outlier share)`` of a displayed strain map against the truth in the ROI
    (where both are finite). Clipped display values count as they are shown."""
    from elastogan.sim.strain_filter import outlier_share

    roi = np.isfinite(strain) & np.isfinite(true_strain)
    if roi.sum() < 9:
        raise ValueError("fewer than 9 pixels where both maps are defined")
    s, t = strain[roi].astype(np.float64), true_strain[roi].astype(np.float64)
    r = float(np.corrcoef(s, t)[0, 1])
    # A displayed 0 (the hardest colour) has no ratio: floor both at 1 % of the display range.
    out = outlier_share(np.maximum(strain, 0.01), roi, np.maximum(true_strain, 0.01))
    return r, out


def data_set_quality(data: Path, split: str | None) -> dict:
    from elastogan.data.images import read_strain
    from elastogan.data.manifest import read_manifest

    manifest = data / "manifest.jsonl" if data.is_dir() else data
    m = read_manifest(manifest)
    rows = []
    for c in m.cases:
        if split and c.split != split:
            continue
        if "true_strain" not in (c.source or {}):
            raise UserError(f"{manifest}: case {c.id} has no true_strain; a simulated data set has one per case")
        rows.append(case_quality(read_strain(c.strain), read_strain(m.root / c.source["true_strain"])))
    if not rows:
        raise UserError(f"{manifest}: no cases{' in split ' + split if split else ''}")
    r, out = (np.array(v) for v in zip(*rows))
    return {"n": len(rows), "r_mean": float(r.mean()), "r_median": float(np.median(r)),
            "outlier_mean": float(out.mean()), "outlier_median": float(np.median(out)),
            "outlier_p90": float(np.quantile(out, 0.9))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m elastogan.eval.phantoms.scanner_quality", description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path, nargs="+", help="simulated data set folders (or their manifest.jsonl)")
    p.add_argument("--split", default="test", help="split to read (default test; 'all' for every case)")
    args = p.parse_args(argv)
    print("| data set | cases | r (displayed vs true strain) mean / median | outlier pixels mean / median / 90th pct |")
    print("|---|---|---|---|")
    for d in args.data:
        try:
            q = data_set_quality(d, None if args.split == "all" else args.split)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"| {d} | {q['n']} | {q['r_mean']:.3f} / {q['r_median']:.3f} | "
              f"{q['outlier_mean']:.2%} / {q['outlier_median']:.2%} / {q['outlier_p90']:.2%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
