"""``elastogan calibrate``: fit a sampling generator's interval factors on held-out cases and
store them in its checkpoint (:mod:`elastogan.eval.uncertainty.conformal`).

Heavy imports happen inside the command.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "calibrate",
        help="fit the uncertainty intervals of a generator that samples on held-out cases (split conformal)",
        description="Draw K elastograms per case of a held-out split, measure how often the draws' 90%% "
        "predictive interval covers the real strain, and store in the checkpoint the factors that make it "
        "cover 90%% (per pixel, and for the lesion's strain ratio). predict, the Preview and evaluate then "
        "show the widened intervals. Use a split the model was not trained on (default val).",
    )
    c.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT", help="checkpoint of a generator that samples")
    c.add_argument("--data", type=Path, required=True, metavar="MANIFEST", help="manifest.jsonl with real strain maps")
    c.add_argument("--split", default="val", help="held-out split to fit on (default val)")
    c.add_argument("--samples", type=int, default=8, metavar="K", help="draws per case (default 8, at least 2)")
    c.add_argument("--level", type=float, default=0.9, help="the intervals' coverage (default 0.9)")
    c.add_argument("--seed", type=int, default=0, help="draw seed: case c is drawn with case_seed(SEED, c) (default 0)")
    c.add_argument("--out", type=Path, metavar="CKPT",
                   help="write the calibrated checkpoint here (default: replace CKPT, atomically)")
    c.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from elastogan.checkpoint import load_checkpoint, save_checkpoint
    from elastogan.errors import UserError
    from elastogan.eval.evaluate_report import load_real_case, split_cases
    from elastogan.eval.uncertainty.conformal import fit_calibration
    from elastogan.predict import Predictor, case_seed
    from elastogan.predict_cli import check_sampling_options

    check_sampling_options(args.samples, args.seed)
    if args.samples < 2:
        raise UserError(f"--samples must be at least 2 to calibrate, got {args.samples}")
    if not 0.0 < args.level < 1.0:
        raise UserError(f"--level must be between 0 and 1, got {args.level}")
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device)
    if not predictor.stochastic:
        raise UserError(f"{args.checkpoint}: the generator draws one output (no model.noise): there is no spread "
                        "to calibrate")
    cases = split_cases(args.data, args.split)
    source = {"manifest": str(args.data), "split": args.split, "seed": args.seed}
    bar = (lambda it: it) if args.no_progress else (lambda it: tqdm(it, total=len(cases), desc="calibrate", unit="case"))

    def draws(real):
        return predictor.sample(real.bmode, samples=args.samples, seed=case_seed(args.seed, real.id), roi=real.roi)

    try:
        fitted = fit_calibration(draws, (load_real_case(c) for c in cases), samples=args.samples, level=args.level,
                                 source=source, progress=bar)
    except ValueError as e:
        raise UserError(f"{args.checkpoint} on {args.data} ({args.split}): {e}") from None
    ckpt = load_checkpoint(args.checkpoint)
    ckpt = {k: v for k, v in ckpt.items() if k not in ("format", "format_version", "versions")}
    ckpt["uncertainty"] = fitted.to_dict()
    out = args.out or args.checkpoint
    save_checkpoint(out, ckpt)
    ratio = f"{fitted.ratio_scale:.3f} ({fitted.ratio_cases} lesions)" if fitted.ratio_scale is not None else \
        f"not fitted ({fitted.ratio_cases} lesion(s); at least 20 needed)"
    print(f"{args.split}: {fitted.cases} case(s), K = {fitted.samples}: the draws' {fitted.level:.0%} interval covered "
          f"{fitted.coverage_before:.1%} of the real pixels; factor per pixel {fitted.pixel_scale:.3f}, strain ratio {ratio}")
    print(f"wrote {out}")
    return 0
