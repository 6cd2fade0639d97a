"""``elastogan evaluate``: trained checkpoints against the real elastograms of a split.

Heavy imports (torch, the models) happen inside the command.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "evaluate",
        help="compare synthetic elastograms of trained checkpoints with the real ones (NCC, SSIM, ...)",
        description="For each case of a split, predict from the B-mode with each checkpoint and compare with "
        "the real elastogram: NCC (the reference paper's) of the mapped strain and of the E-mode luminance "
        "in the ROI, SSIM, PSNR, MAE, the same in the lesion, strain-ratio error, Tsukuba rule score "
        "agreement. Writes OUT/metrics.json, OUT/report.md, per_case.csv and figures (NCC histogram, "
        "gallery real | synthetic | difference, strain-ratio scatter); several checkpoints are reported "
        "side by side, their per-case files in one sub-folder each.",
    )
    e.add_argument("--checkpoint", type=Path, nargs="+", required=True, metavar="CKPT",
                   help="checkpoint(s) written by elastogan train")
    e.add_argument("--data", type=Path, required=True, metavar="MANIFEST",
                   help="manifest.jsonl whose cases have strain and ROI")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    e.add_argument("--gallery", type=int, default=4, help="cases in the gallery figure (default 4; 0: none)")
    e.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from elastogan.errors import InputFileError, UserError
    from elastogan.eval.evaluate_report import checkpoint_names, evaluate, split_cases
    from elastogan.predict import Predictor

    if args.gallery < 0:
        raise UserError(f"--gallery must be 0 or more, got {args.gallery}")
    names = checkpoint_names(args.checkpoint)
    cases = split_cases(args.data, args.split)
    models, info = {}, {}
    for name, path in zip(names, args.checkpoint):  # all loaded before any work: a bad one fails fast
        try:
            p = Predictor.from_checkpoint(path, device=args.device)
        except InputFileError as e:  # torch's state-dict errors span lines; the CLI prints one
            raise InputFileError(path, " ".join(e.problem.split())) from None
        models[name] = lambda real, p=p: p.predict(real.bmode, roi=real.roi, alpha=real.alpha)
        info[name] = {"checkpoint": str(path), "model": p.model.name, "step": p.step}
    written = evaluate(models, cases, args.out, info=info, source={"manifest": str(args.data), "split": args.split},
                       gallery=args.gallery, progress=not args.no_progress)
    for path in written:
        print(f"wrote {path}")
    return 0
