"""How hard diagnosis is on a phantom set: B-mode BI-RADS alone, the strain ratio, and both.

On phantom-v1 the B-mode gave the pathology away (every carcinoma irregular and shadowing,
every fibroadenoma oval: a synthetic strain ratio separated them at AUC 1.000). Clinically,
B-mode BI-RADS is sensitive but not specific and strain elastography adds specificity. This
module measures whether a phantom set reproduces that, from its manifest alone:

- **B-mode**: the BI-RADS category the simulator derived from the lesion's lexicon labels
  (``birads``; the rule is :func:`elastogan.sim.lexicon.birads_category`), as an ordinal
  rating 2 < 3 < 4a < 4b < 4c < 5;
- **strain ratio**: of the true FEM strain (``source.strain_ratio_true``, the ceiling of
  any scanner) and of the scanner's elastogram (``strain_ratio``);
- **B-mode + strain**: the category moved by the elastogram as the WFUMB guidelines describe
  for strain elastography (Barr et al. 2015, Ultrasound Med Biol 41:1148): a soft lesion
  (Tsukuba 1–2 on the rule scorer) in category 4a is downgraded to 3; a hard one (Tsukuba
  4–5) in category 3 is upgraded to 4a; cysts (Tsukuba "cyst") go to 2.

AUCs with DeLong CIs; the B-mode against B-mode + strain by the paired DeLong test;
sensitivity and specificity at "4a or above". ``--ratings`` writes the two readings in the
reader-study format (``case,truth,reader,modality,rating``) so that ``elastogan stats roc``
and ``stats diagnostic`` run on phantoms end to end.

Run: ``python -m elastogan.eval.phantoms.diagnosis --data data/phantom-v2 [--split test] [--ratings F]``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from elastogan.errors import UserError

BIRADS = ("2", "3", "4a", "4b", "4c", "5")
POSITIVE_FROM = "4a"


@dataclass(frozen=True)
class PhantomReading:
    """What the diagnosis needs of one case."""

    case: str
    malignant: int
    birads: str
    ratio_true: float
    ratio_scanner: float
    tsukuba: object  # the rule scorer's score of the scanner's elastogram (1–5 or "cyst")


def with_strain(birads: str, tsukuba: object) -> str:
    """The category after the elastogram (WFUMB 2015, see the module docstring)."""
    if birads not in BIRADS:
        raise ValueError(f"unknown BI-RADS category {birads!r}")
    if tsukuba == "cyst":
        return "2"
    if birads == "4a" and tsukuba in (1, 2):
        return "3"
    if birads == "3" and tsukuba in (4, 5):
        return "4a"
    return birads


def diagnosis(readings: Sequence[PhantomReading]) -> dict:
    """AUCs of the B-mode category, the strain ratios and the combined category.

    Raises:
        UserError: fewer than 2 benign or 2 malignant cases.
    """
    from elastogan.eval.reader_stats import roc

    truth = np.array([r.malignant for r in readings], dtype=int)
    if min(int(truth.sum()), int((1 - truth).sum())) < 2:
        raise UserError(f"diagnosis needs at least 2 benign and 2 malignant cases, got {int((1 - truth).sum())} and "
                        f"{int(truth.sum())}")
    rank = {c: k for k, c in enumerate(BIRADS)}
    bmode = np.array([rank[r.birads] for r in readings], float)
    both = np.array([rank[with_strain(r.birads, r.tsukuba)] for r in readings], float)
    scores = {"B-mode BI-RADS (lexicon rule)": bmode, "strain ratio, true FEM strain": np.array([r.ratio_true for r in readings]),
              "strain ratio, scanner elastogram": np.array([r.ratio_scanner for r in readings]),
              "B-mode + strain (WFUMB rule)": both}
    out: dict = {"n": len(readings), "n_malignant": int(truth.sum()), "auc": {}}
    for name, s in scores.items():
        d = roc.delong(s, truth)
        auc, se = float(d.auc[0]), float(d.se[0])
        out["auc"][name] = {"auc": auc, "se": se, "ci": list(roc.auc_ci(auc, se))}
    paired = roc.delong(np.stack([both, bmode]), truth)  # diff = combined − B-mode
    out["bmode_vs_combined"] = roc.paired_test(paired, 0, 1)
    cut = rank[POSITIVE_FROM]
    for name, s in (("B-mode", bmode), ("B-mode + strain", both)):
        pos = s >= cut
        out.setdefault("at_4a", {})[name] = {
            "sensitivity": float(pos[truth == 1].mean()), "specificity": float((~pos)[truth == 0].mean())}
    return out


def read_phantoms(data: Path, split: str | None) -> list[PhantomReading]:
    """The readings of a phantom-v2 data set's cases (of ``split``, or all)."""
    from elastogan.data.images import read_gray, read_mask, read_strain
    from elastogan.data.manifest import read_manifest
    from elastogan.tsukuba import score_tsukuba

    manifest = data / "manifest.jsonl" if data.is_dir() else data
    m = read_manifest(manifest)
    out = []
    for c in m.cases:
        if split and c.split != split:
            continue
        if c.birads is None or "strain_ratio_true" not in (c.source or {}):
            raise UserError(f"{manifest}: case {c.id} has no BI-RADS label or true strain ratio; "
                            "a phantom-v2 data set (elastogan simulate --recipe data_manifests/phantom-v2.json) has both")
        score = score_tsukuba(read_strain(c.strain), read_mask(c.lesion), roi=c.roi, bmode=read_gray(c.bmode))
        out.append(PhantomReading(c.id, int(c.pathology == "malignant"), str(c.birads), float(c.source["strain_ratio_true"]),
                                  float(c.strain_ratio), score))
    if not out:
        raise UserError(f"{manifest}: no cases{' in split ' + split if split else ''}")
    return out


def ratings_csv(readings: Sequence[PhantomReading]) -> str:
    """The rule reader's two readings in the reader-study ratings format."""
    lines = ["case,truth,reader,modality,rating"]
    for r in readings:
        lines.append(f"{r.case},{r.malignant},lexicon-rule,B-mode,{r.birads}")
        lines.append(f"{r.case},{r.malignant},lexicon-rule,B-mode+strain,{with_strain(r.birads, r.tsukuba)}")
    return "\n".join(lines) + "\n"


def markdown(res: dict) -> str:
    lines = [f"{res['n']} cases ({res['n_malignant']} malignant)", "", "| rating | AUC (95% CI) |", "|---|---|"]
    for name, a in res["auc"].items():
        lines.append(f"| {name} | {a['auc']:.3f} [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}] |")
    t = res["bmode_vs_combined"]
    p = "—" if t["p"] is None else f"{t['p']:.3f}"
    lines += ["", f"B-mode + strain − B-mode: ΔAUC {t['diff']:+.3f}, paired DeLong p {p}", "",
              "| at 4a or above | sensitivity | specificity |", "|---|---|---|"]
    for name, v in res["at_4a"].items():
        lines.append(f"| {name} | {v['sensitivity']:.3f} | {v['specificity']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from elastogan.atomic import atomic_write_text

    p = argparse.ArgumentParser(prog="python -m elastogan.eval.phantoms.diagnosis", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a phantom-v2 data set folder or its manifest.jsonl")
    p.add_argument("--split", default="test", help="split to read (default test; 'all' for every case)")
    p.add_argument("--ratings", type=Path, help="also write the rule reader's ratings.csv (stats roc/diagnostic format)")
    args = p.parse_args(argv)
    try:
        readings = read_phantoms(args.data, None if args.split == "all" else args.split)
        res = diagnosis(readings)
        if args.ratings:
            atomic_write_text(args.ratings, ratings_csv(readings))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(res), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
