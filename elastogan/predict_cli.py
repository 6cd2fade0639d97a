"""``elastogan predict``: synthetic elastograms for B-mode files, written beside nothing they overwrite.

The command checks its flags, lists the inputs, loads the checkpoint, then reads and checks
every input (``elastogan.bmode_input``: the one B-mode loader, ``--roi`` and ``--lesion``
against each frame), and only then creates ``--out`` and writes, each file atomically: a bad
input among many stops the run before anything is written, never half-way.

For each input NAME, one sample of the generator (seed ``--seed``) — what a scanner would have
shown:

- ``NAME_SYNTHETIC_emode.png``: the E-mode drawn from the strain, SYNTHETIC burned in;
- ``NAME_SYNTHETIC_strain.npy`` (float32) and ``NAME_SYNTHETIC_strain.png`` (16-bit).

With ``--samples K`` (K ≥ 2), from K samples whose first is the one above:

- ``NAME_SYNTHETIC_strain_mean.npy`` and ``NAME_SYNTHETIC_strain_sd.npy`` (float32, per pixel);
- ``NAME_SYNTHETIC_strain_sd.png``: the SD picture (``elastogan.uncertainty.sd_png``: grey /
  magenta, its own bar, never mistakable for an elastogram), "SYNTHETIC SD (uncertainty)"
  burned in;
- ``NAME_SYNTHETIC.json``: seed, samples, checkpoint, and with ``--lesion`` the strain ratio of
  the mean map with the samples' central interval.

The same checkpoint, inputs and seed give byte-identical files.

Heavy imports (torch, the models) happen inside the command, so ``elastogan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="synthetic elastograms for B-mode images (PNG, JPEG, DICOM) or folders of them",
        description="Run a trained generator on B-mode frames of any size. For each input NAME "
        "writes one sample (seed --seed): NAME_SYNTHETIC_emode.png (E-mode drawn from the strain "
        "head, 'SYNTHETIC' burned in), NAME_SYNTHETIC_strain.npy (float32) and "
        "NAME_SYNTHETIC_strain.png (16-bit), all of the input's size. With --samples K (K >= 2) "
        "also the mean and per-pixel SD of K samples (NAME_SYNTHETIC_strain_mean.npy, "
        "NAME_SYNTHETIC_strain_sd.npy, NAME_SYNTHETIC_strain_sd.png) and NAME_SYNTHETIC.json "
        "(provenance; with --lesion the strain ratio and its interval). Every input is read and "
        "checked before anything is written.",
    )
    p.add_argument("--checkpoint", type=Path, help="checkpoint written by elastogan train (default: the shipped model)")
    p.add_argument("--input", type=Path, nargs="+", required=True, help="PNG/JPEG/.npy/DICOM files or folders of them")
    p.add_argument("--out", type=Path, required=True, help="output folder (created once every input has been read)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per forward pass (default 8)")
    p.add_argument("--roi", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="elastography box for every input (end-exclusive pixels): colour and strain only "
                   "inside it, strain NaN outside (default: the whole frame)")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="samples of the generator per input (default 1: one elastogram, as a scanner shows); "
                   "K >= 2 adds the mean, the per-pixel SD and NAME_SYNTHETIC.json")
    p.add_argument("--seed", type=int, default=0, help="the generator's seed, a non-negative integer (default 0); "
                   "the same seed gives the same files")
    p.add_argument("--lesion", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="lesion box for every input (end-exclusive pixels): with --samples K >= 2, the strain "
                   "ratio (reference / lesion, inside the ROI) and its interval over the samples go to "
                   "NAME_SYNTHETIC.json")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    p.set_defaults(func=_predict)


def check_sampling_options(samples: int, seed: int) -> None:
    """``--samples`` and ``--seed`` of the commands that draw (``predict``, ``evaluate``): one-line errors."""
    from elastogan.errors import UserError

    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed}")


def _check_args(args: argparse.Namespace) -> None:
    """One-line errors for flags that no input could make right."""
    from elastogan.errors import UserError
    from elastogan.folders import check_out_option

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    check_sampling_options(args.samples, args.seed)
    if args.lesion is not None and args.samples < 2:
        raise UserError("--lesion needs --samples K with K >= 2 (the strain ratio's interval comes from the samples)")
    check_out_option(args.out)


def read_inputs(files: list[Path], roi: tuple[int, int, int, int] | None,
                lesion: tuple[int, int, int, int] | None) -> list:
    """Every input's B-mode, read and checked (boxes inside each frame) before anything is written.

    Raises:
        InputFileError: a file that cannot be read as a B-mode, named.
        UserError: ``--roi`` or ``--lesion`` outside a frame, naming the flag and the file.
    """
    import numpy as np

    from elastogan.bmode_input import load_bmode
    from elastogan.errors import UserError
    from elastogan.predict import check_roi
    from elastogan.tsukuba import strain_ratio

    frames = []
    for f in files:
        bmode = load_bmode(f)
        for flag, box in (("--roi", roi), ("--lesion", lesion)):
            if box is None:
                continue
            try:
                check_roi(box, bmode.shape)
            except ValueError as e:
                raise UserError(f"{flag}: {f}: {e if flag == '--roi' else str(e).replace('ROI', 'box', 1)}") from None
        if lesion is not None:
            # The strain ratio's regions depend on the boxes alone: a lesion outside the ROI, or
            # with no reference tissue beside it, is refused now rather than after the model ran.
            box = roi or (0, 0, bmode.shape[1], bmode.shape[0])
            try:
                strain_ratio(_box_map(bmode.shape, box, np.nan, 1.0), _box_map(bmode.shape, lesion, False, True), box)
            except ValueError as e:
                raise UserError(f"--lesion: {f}: no strain ratio for the lesion box {lesion}: {e}") from None
        frames.append(bmode)
    return frames


def _box_map(shape: tuple[int, int], box: tuple[int, int, int, int], outside, inside):
    """An H×W array holding ``inside`` in the end-exclusive ``box`` and ``outside`` elsewhere."""
    import numpy as np

    out = np.full(shape, outside)
    out[box[1] : box[3], box[0] : box[2]] = inside
    return out


def _predict(args: argparse.Namespace) -> int:
    from elastogan.bmode_input import check_unique_stems, collect_inputs
    from elastogan.folders import make_folder
    from elastogan.weights import resolve_checkpoint

    _check_args(args)
    files = collect_inputs(args.input)
    check_unique_stems(files)
    checkpoint = resolve_checkpoint(args.checkpoint)

    from elastogan.predict import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, device=args.device)
    roi = tuple(args.roi) if args.roi else None
    lesion = tuple(args.lesion) if args.lesion else None
    frames = read_inputs(files, roi, lesion)
    make_folder(args.out)
    for start in range(0, len(files), args.batch_size):
        chunk = slice(start, start + args.batch_size)
        results = predictor.predict_many(frames[chunk], batch_size=args.batch_size, roi=roi, seed=args.seed)
        for f, bmode, (emode, strain) in zip(files[chunk], frames[chunk], results):
            base = args.out / f"{f.stem}_SYNTHETIC"
            written = write_outputs(base, emode, strain)
            if args.samples > 1:
                strains = predictor.sample(bmode, samples=args.samples, seed=args.seed, roi=roi)
                meta = {"input": str(f), "checkpoint": str(checkpoint), "checkpoint_step": predictor.step,
                        "seed": args.seed, "samples": args.samples, "stochastic": predictor.stochastic,
                        "roi": list(roi) if roi else None}
                box = roi or (0, 0, bmode.shape[1], bmode.shape[0])
                written += write_sample_outputs(base, strains, box, lesion, meta)
            print(f"{f} -> {written[0]}, " + ", ".join(p.name for p in written[1:]))
    note = "" if args.samples == 1 else f", {args.samples} samples each"
    if args.samples > 1 and not predictor.stochastic:
        note += " (this model draws no noise: all samples are equal and the SD is 0)"
    print(f"elastogan: {len(files)} frame(s) from {checkpoint} (step {predictor.step}, seed {args.seed}{note}) in {args.out}",
          file=sys.stderr)
    return 0


def write_outputs(base: Path, emode, strain) -> list[Path]:
    """One sample's files: the labelled E-mode and the strain as ``.npy`` and 16-bit PNG (atomic)."""
    from elastogan.data.images import write_png, write_strain
    from elastogan.predict import label_synthetic

    paths = [Path(f"{base}_emode.png"), Path(f"{base}_strain.npy"), Path(f"{base}_strain.png")]
    write_png(paths[0], label_synthetic(emode))
    write_strain(paths[1], strain)
    write_strain(paths[2], strain)
    return paths


def write_sample_outputs(base: Path, strains, roi: tuple[int, int, int, int],
                         lesion: tuple[int, int, int, int] | None, meta: dict) -> list[Path]:
    """K samples' files: mean and SD (``.npy``), the labelled SD picture and the JSON sidecar (atomic).

    Args:
        base: ``OUT/NAME_SYNTHETIC``.
        strains: ``(K, H, W)`` float32 samples, NaN outside ``roi``.
        roi: the elastography box (the whole frame when none was given).
        lesion: lesion box for the strain ratio's interval, or None.
        meta: provenance for the sidecar (seed, samples, checkpoint, …).
    """
    from elastogan.atomic import atomic_write_text
    from elastogan.data.images import write_png, write_strain
    from elastogan.uncertainty import labelled_sd_png, strain_ratio_interval, summarise_samples

    summary = summarise_samples(strains)
    paths = [Path(f"{base}_strain_mean.npy"), Path(f"{base}_strain_sd.npy"), Path(f"{base}_strain_sd.png"), Path(f"{base}.json")]
    write_strain(paths[0], summary.mean)
    write_strain(paths[1], summary.sd)
    write_png(paths[2], labelled_sd_png(summary.sd, roi))
    record = {**meta, "level": summary.level}
    if lesion is not None:  # its geometry was checked with the inputs (read_inputs)
        interval = strain_ratio_interval(strains, _box_map(strains.shape[1:], lesion, False, True), roi, level=summary.level)
        record["strain_ratio"] = {"lesion": list(lesion), "value": float(interval["value"]), "lo": float(interval["lo"]),
                                  "hi": float(interval["hi"]), "samples": [float(v) for v in interval["samples"]]}
    atomic_write_text(paths[3], json.dumps(record, indent=2, sort_keys=True) + "\n")
    return paths
