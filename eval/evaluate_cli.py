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
        "agreement — of one draw, what a reader is shown — and the NCC of the mean of K draws; each NCC "
        "beside its ceiling on phantoms (the scanner's test-retest agreement, the oracle true strain); the "
        "calibration of the draws' spread (90%% interval coverage, sd-error correlation); observers that try "
        "to tell synthetic from real without readers (texture and CNN two-sample tests, Fréchet distance, "
        "memorisation). Writes OUT/metrics.json, OUT/report.md, per_case.csv and figures (NCC histogram, "
        "gallery real | synthetic | difference, strain-ratio scatter, Bland-Altman of strain ratio and EI/B, power "
        "spectrum, memorisation; the measurements (EI/B, Tsukuba kappa, AUC for malignancy) in metrics.json and "
        "report.md); several "
        "checkpoints are reported side by side, their per-case files in one sub-folder each.",
    )
    e.add_argument("--checkpoint", type=Path, nargs="+", required=True, metavar="CKPT",
                   help="checkpoint(s) written by elastogan train")
    e.add_argument("--data", type=Path, required=True, metavar="MANIFEST",
                   help="manifest.jsonl whose cases have strain and ROI")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    e.add_argument("--gallery", type=int, default=4, help="cases in the gallery figure (default 4; 0: none)")
    e.add_argument("--samples", type=int, default=8, metavar="K",
                   help="draws per case of a generator that samples: their mean, sd and 90%% interval (default 8; "
                   "1: the single draw only)")
    e.add_argument("--seed", type=int, default=0, help="draw seed: case c is drawn with case_seed(SEED, c), its single draw draw 0 of that "
                   "(default 0); no two cases share their noise")
    e.add_argument("--no-authenticity", action="store_true",
                   help="skip the observers (two-sample tests, Fréchet distance, memorisation): faster")
    e.add_argument("--no-cnn", action="store_true", help="skip the CNN observer, the slow one (its keys are null)")
    e.add_argument("--size", type=int, metavar="N",
                   help="compare at N×N: real frames and maps resampled as training resamples them (e.g. the "
                   "model's data.image_size, so a 64² generator is judged on the texture a 64² map can hold; "
                   "default: the frames' own size, what a reader sees)")
    e.add_argument("--explain", action="store_true",
                   help="add an explanation panel to the gallery: integrated gradients of the mean predicted strain in "
                   "the lesion box over the B-mode (orange: makes it look harder, teal: softer); slower")
    e.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from elastogan.errors import InputFileError, UserError
    from elastogan.eval.evaluate_report import checkpoint_names, evaluate, predictor_model, split_cases, train_cases
    from elastogan.predict import Predictor
    from elastogan.predict_cli import check_sampling_options

    if args.gallery < 0:
        raise UserError(f"--gallery must be 0 or more, got {args.gallery}")
    check_sampling_options(args.samples, args.seed)
    names = checkpoint_names(args.checkpoint)
    cases = split_cases(args.data, args.split)
    train = [] if args.no_authenticity else train_cases(args.data)
    models, info = {}, {}
    for name, path in zip(names, args.checkpoint):  # all loaded before any work: a bad one fails fast
        try:
            p = Predictor.from_checkpoint(path, device=args.device)
        except InputFileError as e:  # torch's state-dict errors span lines; the CLI prints one
            raise InputFileError(path, " ".join(e.problem.split())) from None
        models[name] = predictor_model(p, seed=args.seed)
        info[name] = {"checkpoint": str(path), "model": p.model.name, "step": p.step, "stochastic": p.stochastic}
    written = evaluate(models, cases, args.out, info=info,
                       source={"manifest": str(args.data), "split": args.split, "seed": args.seed},
                       gallery=args.gallery, progress=not args.no_progress, samples=args.samples, train=train,
                       authenticity=not args.no_authenticity, cnn=not args.no_cnn, size=args.size,
                       explain=args.explain)
    for path in written:
        print(f"wrote {path}")
    return 0
