"""``elastogan fingerprint``: add the out-of-distribution fingerprint (:mod:`elastogan.ood`) to
an existing checkpoint — fitted on a manifest's train split, its threshold on the val split.

``elastogan train`` does the same at the end of a run; this command is for checkpoints written
before, or to refit on other data. Heavy imports happen inside the command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fingerprint",
        help="store in a checkpoint what its training data look like, so predict and the Preview can warn "
        "about B-modes unlike them",
        description="Compute the generator's encoder features of the train split's B-modes (at most --max-train, "
        "evenly spread), fit their mean and Ledoit-Wolf covariance, score the val split by Mahalanobis distance and "
        "take its 99th percentile as the threshold; store all of it under 'ood' in the checkpoint. predict then "
        "writes each input's ood_score, percentile and in_distribution to NAME_SYNTHETIC.json and warns about "
        "inputs above the threshold. Use the manifest the model was trained on.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT", help="checkpoint from elastogan train or export")
    p.add_argument("--data", type=Path, required=True, metavar="MANIFEST", help="the manifest.jsonl the model was trained on")
    p.add_argument("--out", type=Path, metavar="CKPT", help="write the checkpoint with its fingerprint here (default: "
                   "replace CKPT, atomically)")
    # defaults live in elastogan.ood (not imported here: --help stays free of torch)
    p.add_argument("--max-train", type=int, metavar="N",
                   help="train cases fitted, evenly spread over the split (default 500)")
    p.add_argument("--max-val", type=int, metavar="N", help="val cases that set the threshold (default 500)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    p.set_defaults(func=_fingerprint)


def _fingerprint(args: argparse.Namespace) -> int:
    from elastogan.errors import InputFileError, UserError
    from elastogan.ood import (DEFAULT_MAX_TRAIN, DEFAULT_MAX_VAL, MIN_TRAIN_CASES, MIN_VAL_CASES, fingerprint_manifest,
                               store_fingerprint)
    from elastogan.predict import Predictor

    max_train = DEFAULT_MAX_TRAIN if args.max_train is None else args.max_train
    max_val = DEFAULT_MAX_VAL if args.max_val is None else args.max_val
    if max_train < MIN_TRAIN_CASES or max_val < MIN_VAL_CASES:
        raise UserError(f"--max-train must be at least {MIN_TRAIN_CASES} and --max-val at least {MIN_VAL_CASES}, "
                        f"got {max_train} and {max_val}")
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device)
    if not hasattr(predictor.generator, "encoder_features"):
        raise InputFileError(args.checkpoint, f"a {predictor.model.name} generator exposes no encoder features: "
                             "no fingerprint for it")
    fp = fingerprint_manifest(predictor, args.data, max_train=max_train, max_val=max_val)
    out = store_fingerprint(args.checkpoint, fp, args.out)
    val_in = float((fp.val_scores <= fp.threshold).mean())
    print(f"fingerprint of {fp.train_cases} train case(s); threshold {fp.threshold:.3f} = the {fp.level * 100:g}th "
          f"percentile of {len(fp.val_scores)} val score(s) (median {float(fp.val_scores[len(fp.val_scores) // 2]):.3f}; "
          f"{val_in:.1%} of val in distribution)")
    print(f"wrote {out}")
    return 0
