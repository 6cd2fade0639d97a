"""``elastogan train`` and ``elastogan export``.

Inference (``elastogan predict``) lives in the library, ``elastogan.predict_cli``. Heavy imports
(torch, the models) happen inside the commands, so ``elastogan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train a generator (TransUNet GAN or a baseline) on a manifest",
        description="Train a generator on the train split of a manifest; validate on its val "
        "split (NCC of the strain head inside the ROI picks best.pt). Writes RUN/config.yaml, "
        "RUN/metrics.jsonl, RUN/checkpoints/{last,best}.pt, RUN/samples/. Several processes: "
        "torchrun --nproc-per-node N -m elastogan train ...",
    )
    t.add_argument("--config", type=Path, help="YAML config, e.g. training/configs/tiny.yaml (optional with --resume)")
    t.add_argument("--data", type=Path, required=True, help="manifest.jsonl with a train split")
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument("--steps", type=int, help="stop this invocation at this optimiser step (the run's length stays optim.steps)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr_g=1e-4 (repeatable; YAML scalars)")
    t.add_argument("--device", choices=("cpu", "cuda"), help="force a device (default: CUDA when available)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    x = sub.add_parser(
        "train-texture",
        help="train the scanner-texture stage of a trained generator (draws at the frame's resolution)",
        description="Freeze the generator of --checkpoint and train, on the train split of --data, a "
        "small fully convolutional stage that adds the scanner's texture to its draws at the frames' "
        "full resolution (elastogan.models.texture; fair CRPS over several draws plus the spectral "
        "term). Writes OUT/texture.pt (the generator, its OOD fingerprint and the stage: predict, "
        "evaluate and the app load it like any checkpoint) and OUT/metrics.jsonl. The interval "
        "calibration no longer holds: run elastogan calibrate on OUT/texture.pt afterwards.",
    )
    x.add_argument("--checkpoint", type=Path, required=True, help="the generator, e.g. elastogan/weights/default.pt")
    x.add_argument("--data", type=Path, required=True, help="manifest.jsonl with a train split (strain maps)")
    x.add_argument("--out", type=Path, required=True, help="run folder")
    x.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="texture.{image_size,channels,layers,noise_init} or train.{steps,batch_size,samples,crop,"
                   "lr,crps,spectral,spectral_sectors,hflip,seed,log_every,val_cases,bank_draws} (repeatable)")
    x.add_argument("--device", choices=("cpu", "cuda"), help="force a device (default: CUDA when available)")
    x.add_argument("--no-progress", action="store_true", help="no log lines on stdout")
    x.set_defaults(func=_train_texture)

    e = sub.add_parser(
        "export",
        help="keep only the EMA generator and config of a training checkpoint (for shipping a model)",
        description="Write the inference part of a training checkpoint (resolved config, step, EMA "
        "generator, best validation NCC) to a new file, without optimiser and discriminator "
        "state. elastogan predict and the app read it like the full checkpoint.",
    )
    e.add_argument("--checkpoint", type=Path, required=True, help="checkpoint written by elastogan train")
    e.add_argument("--out", type=Path, required=True, help="file to write, e.g. models/tiny.pt")
    e.set_defaults(func=_export)


def _train_texture(args: argparse.Namespace) -> int:
    from elastogan.folders import check_out_option
    from elastogan.training.texture import run_config, train_texture

    cfg = run_config(args.overrides)
    check_out_option(args.out)
    path = train_texture(args.checkpoint, args.data, args.out, cfg, device=args.device, progress=not args.no_progress)
    print(f"elastogan: checkpoint {path} (generator + texture stage); next: elastogan calibrate --checkpoint {path} "
          f"--data {args.data}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from elastogan.checkpoint import export_for_inference

    payload = export_for_inference(args.checkpoint, args.out)
    size = args.out.stat().st_size / 2**20
    print(f"elastogan: {args.out}: EMA generator ({payload['config']['model']['name']}, step {payload['step']}), {size:.1f} MiB")
    return 0


def _train(args: argparse.Namespace) -> int:
    from elastogan.errors import UserError
    from elastogan.training.config import load_config
    from elastogan.training.trainer import train

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be positive, got {args.steps}")
    if args.config is None and not args.resume:
        raise UserError("--config is required for a new run (e.g. --config training/configs/tiny.yaml)")
    if args.config is None and args.overrides:
        raise UserError("--set needs --config (on --resume the run's own config is used as it is)")
    from elastogan.folders import check_out_option

    check_out_option(args.out)
    cfg = load_config(args.config, args.overrides) if args.config is not None else None
    last = train(cfg, data=args.data, out=args.out, max_steps=args.steps, resume=args.resume,
                 device=args.device, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # torchrun: one line, from process 0
        print(f"elastogan: checkpoint {last}")
    return 0
