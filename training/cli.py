"""``elastogan train``, ``elastogan export`` and ``elastogan predict``.

Heavy imports (torch, the models) happen inside the commands, so ``elastogan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
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

    p = sub.add_parser(
        "predict",
        help="synthetic elastograms for B-mode images (PNG, JPEG, DICOM) or folders of them",
        description="Run a trained generator on B-mode frames of any size. For each input NAME "
        "writes NAME_SYNTHETIC_emode.png (E-mode drawn from the strain head, 'SYNTHETIC' burned "
        "in), NAME_SYNTHETIC_strain.npy (float32) and NAME_SYNTHETIC_strain.png (16-bit), all "
        "of the input's size.",
    )
    p.add_argument("--checkpoint", type=Path, help="checkpoint written by elastogan train (default: the shipped model)")
    p.add_argument("--input", type=Path, nargs="+", required=True, help="PNG/JPEG/.npy/DICOM files or folders of them")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=8, help="frames per forward pass (default 8)")
    p.add_argument("--roi", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="elastography box for every input (end-exclusive pixels): colour and strain only "
                   "inside it, strain NaN outside (default: the whole frame)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    p.set_defaults(func=_predict)


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
    check_out_folder(args.out)
    cfg = load_config(args.config, args.overrides) if args.config is not None else None
    last = train(cfg, data=args.data, out=args.out, max_steps=args.steps, resume=args.resume,
                 device=args.device, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # torchrun: one line, from process 0
        print(f"elastogan: checkpoint {last}")
    return 0


def check_out_folder(path: Path) -> None:
    """Refuse an ``--out`` that is a file, or lies under one, before any work is done."""
    from elastogan.errors import UserError
    from elastogan.folders import check_folder_path

    try:
        check_folder_path(path)
    except UserError as e:
        raise UserError(f"--out {e}; choose another --out") from None


def collect_inputs(paths: list[Path]) -> list[Path]:
    """The files named, plus the image and DICOM files found (one level) in the folders named.

    Inside a folder a file counts when its content is PNG, JPEG, ``.npy`` or DICOM (scanner
    exports often have no extension); other files are skipped. A file named explicitly must
    be one of those, or loading it fails with a message naming it.
    """
    from elastogan.data.loaders import sniff_format
    from elastogan.errors import InputFileError

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = []
            for p in sorted(path.iterdir()):
                if not p.is_file():
                    continue
                try:
                    sniff_format(p)
                except InputFileError:
                    continue
                found.append(p)
            if not found:
                raise InputFileError(path, "folder holds no PNG, JPEG, .npy or DICOM files")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise InputFileError(path, "no such file or folder")
    return files


def load_bmode(path: Path):
    """An H×W uint8 B-mode from a PNG/JPEG/.npy (luminance) or DICOM file.

    DICOM goes through the data layer (``elastogan.data.loaders``): when the file declares
    image regions, only the B-mode region is used (the least coloured one, for a dual
    B-mode | E-mode display), so burned-in text around it never reaches the network or the
    outputs; the outputs then have that region's size.
    """
    from elastogan.data.loaders import load_image, rgb_to_grey

    image = load_image(path)
    regions = [r for r in image.regions if r.is_image]
    rgb = image.rgb
    if regions:
        rgb = min((r.crop(rgb) for r in regions), key=_colourfulness)
    return rgb_to_grey(rgb)


def _colourfulness(rgb) -> float:
    """Mean channel spread: 0 for a grey B-mode, large for a colour elastogram."""
    return float((rgb.max(axis=-1).astype(int) - rgb.min(axis=-1)).mean())


def _predict(args: argparse.Namespace) -> int:
    from elastogan.data.images import write_png, write_strain
    from elastogan.errors import InputFileError, UserError
    from elastogan.predict import Predictor, check_frame, check_roi, label_synthetic

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    check_out_folder(args.out)
    files = collect_inputs(args.input)
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise UserError(f"two inputs share the name {f.stem!r} ({stems[f.stem]} and {f}); outputs would overwrite each other")
        stems[f.stem] = f
    from elastogan.weights import resolve_checkpoint

    args.checkpoint = resolve_checkpoint(args.checkpoint)
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(files), args.batch_size):
        chunk = files[start : start + args.batch_size]
        frames = [load_bmode(f) for f in chunk]
        for f, b in zip(chunk, frames):
            try:
                check_frame(b)
            except ValueError as e:
                raise InputFileError(f, str(e)) from None
            if args.roi:
                try:
                    check_roi(args.roi, b.shape)
                except ValueError as e:
                    raise UserError(f"--roi: {f}: {e}") from None
        results = predictor.predict_many(frames, batch_size=args.batch_size, roi=tuple(args.roi) if args.roi else None)
        for f, (emode, strain) in zip(chunk, results):
            base = args.out / f"{f.stem}_SYNTHETIC"
            write_png(f"{base}_emode.png", label_synthetic(emode))
            write_strain(f"{base}_strain.npy", strain)
            write_strain(f"{base}_strain.png", strain)
            print(f"{f} -> {base}_emode.png, {base.name}_strain.npy, {base.name}_strain.png")
    print(f"elastogan: {len(files)} frame(s) from {args.checkpoint} (step {predictor.step}) in {args.out}", file=sys.stderr)
    return 0
