"""``elastogan predict``: synthetic elastograms for B-mode files, written beside nothing they overwrite.

The command checks its flags, lists the inputs, then reads and checks every input
(``elastogan.bmode_input``: the one B-mode loader, ``--roi`` and ``--lesion`` against each
frame, a colour panel refused unless ``--allow-colour``), loads the checkpoint, and only then
creates ``--out`` and writes, each file atomically. Without ``--skip-bad`` every bad input is
named, all at once, and nothing is written; with it the bad ones are named and skipped.

Only the B-mode panel of an input reaches the network — a DICOM's B-mode ultrasound region,
the B-mode panel of a screenshot (``elastogan.data.panels``) — so the burned-in text around
it never reaches an output. The outputs have the whole frame's size with black (strain NaN)
outside the panel, or the panel's size with ``--crop``. ``--roi`` and ``--lesion`` are in the
outputs' pixels. Multi-frame files (cine loops): ``--frames first`` (frame 0, with a warning),
``all`` (``NAME_frameNNN_SYNTHETIC_…`` per frame) or a frame index.

For each input NAME, one sample of the generator — what a scanner would have shown. NAME is
drawn with its own seed, ``case_seed(--seed, NAME)`` (``elastogan.predict``): files of one run
never share their noise (a set of synthetic images with one noise pattern in common would be
told from scans by it), and a file's output depends on the seed and its name, not on the other
files in the run:

- ``NAME_SYNTHETIC_emode.png``: the E-mode drawn from the strain, SYNTHETIC burned in;
- ``NAME_SYNTHETIC_strain.npy`` (float32) and ``NAME_SYNTHETIC_strain.png`` (16-bit).

With ``--samples K`` (K ≥ 2), from K samples whose first is the one above:

- ``NAME_SYNTHETIC_strain_mean.npy`` and ``NAME_SYNTHETIC_strain_sd.npy`` (float32, per pixel);
- ``NAME_SYNTHETIC_strain_sd.png``: the SD picture (``elastogan.uncertainty.sd_png``: grey /
  magenta, its own bar, never mistakable for an elastogram), "SYNTHETIC SD (uncertainty)"
  burned in;
- ``NAME_SYNTHETIC.json``: seed, its draw seed, samples, checkpoint, and with ``--lesion`` the strain ratio of
  the mean map with the samples' central interval.

When the checkpoint carries an out-of-distribution fingerprint (``elastogan fingerprint``;
``elastogan train`` stores one), ``NAME_SYNTHETIC.json`` is written for every input, whatever
``--samples``, with ``ood_score`` (Mahalanobis distance of the B-mode's encoder features from the
training data's), ``percentile`` (among the validation images' scores), ``ood_threshold`` and
``in_distribution``; an input above the threshold gets a warning line on stderr: its elastogram
is still written, but it is not meaningful.

The same checkpoint, inputs and seed give byte-identical files.

Heavy imports (torch, the models) happen inside the command, so ``elastogan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from elastogan.errors import InputFileError

if TYPE_CHECKING:  # the command imports the loaders (numpy, PIL, pydicom) only when it runs
    from elastogan.bmode_input import BmodeInput

Box = tuple[int, int, int, int]

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="synthetic elastograms for B-mode images (PNG, JPEG, DICOM) or folders of them",
        description="Run a trained generator on B-mode frames of any size. For each input NAME "
        "writes one sample (seed --seed): NAME_SYNTHETIC_emode.png (E-mode drawn from the strain "
        "head, 'SYNTHETIC' burned in), NAME_SYNTHETIC_strain.npy (float32) and "
        "NAME_SYNTHETIC_strain.png (16-bit), all of the input frame's size: only its B-mode panel "
        "(a DICOM's ultrasound region, a screenshot's B-mode panel) reaches the network, and the rest "
        "of the frame is black (--crop: the panel's size), so burned-in text never reaches an output. "
        "With --samples K (K >= 2) "
        "also the mean and per-pixel SD of K samples (NAME_SYNTHETIC_strain_mean.npy, "
        "NAME_SYNTHETIC_strain_sd.npy, NAME_SYNTHETIC_strain_sd.png) and NAME_SYNTHETIC.json "
        "(provenance; with --lesion the strain ratio and its interval). A checkpoint with a fingerprint "
        "(elastogan fingerprint) also scores each input against its training data: NAME_SYNTHETIC.json is then "
        "always written, with ood_score, percentile and in_distribution, and an input unlike the training data "
        "gets a warning. Every input is read and "
        "checked before anything is written; without --skip-bad every bad one is named and nothing "
        "is written. A colour panel (Doppler, an elastogram) is refused unless --allow-colour.",
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
    p.add_argument("--frames", default="first", metavar="first|all|N",
                   help="multi-frame files (cine loops): 'first' uses frame 0 with a warning (default), 'all' "
                   "every frame (outputs NAME_frameNNN_SYNTHETIC_…), N the 0-based frame N")
    p.add_argument("--crop", action="store_true",
                   help="write outputs of the B-mode panel's size (default: the whole frame's size, black and "
                   "strain NaN outside the panel, so burned-in text never appears either way)")
    p.add_argument("--allow-colour", action="store_true",
                   help="accept a coloured panel (colour Doppler, an elastogram) as a B-mode, through its "
                   "luminance (default: refused, named)")
    p.add_argument("--skip-bad", action="store_true",
                   help="name each bad input and go on with the good ones (default: name every bad input, "
                   "then stop with nothing written)")
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


@dataclass(frozen=True)
class Job:
    """One frame to predict: its B-mode panel and the boxes in the panel's pixels.

    Attributes:
        name: output stem (``NAME`` or ``NAME_frameNNN``).
        input: the frame's ``BmodeInput``.
        roi, lesion: ``--roi`` / ``--lesion`` in panel pixels, or None.
        out_box: where the panel lies in the outputs (the frame's box, or the whole panel with ``--crop``).
        out_shape: ``(H, W)`` of the outputs.
    """

    name: str
    input: "BmodeInput"
    roi: Box | None
    lesion: Box | None
    out_box: Box
    out_shape: tuple[int, int]


def frame_indices(first: "BmodeInput", frames: str | int) -> tuple[list[int], list[str]]:
    """The frames of a file to predict (``--frames``) and warnings; ``InputFileError`` for an index past the end."""
    n = first.n_frames
    if n == 1:
        return [0], []
    if frames == "first":
        return [0], [f"{first.path}: {n} frames; frame 0 used (--frames all or --frames N for others)"]
    if frames == "all":
        return list(range(n)), []
    if frames >= n:
        raise InputFileError(first.path, f"frame {frames} asked for (--frames), but the file has {n} frames")
    return [frames], []


def _parse_frames(value: str) -> str | int:
    from elastogan.errors import UserError

    if value in ("first", "all"):
        return value
    if value.isdigit():
        return int(value)
    raise UserError(f"--frames must be 'first', 'all' or a frame index >= 0, got {value!r}")


def _job(f: Path, inp: "BmodeInput", name: str, roi: Box | None, lesion: Box | None, crop: bool) -> Job:
    """The job of one frame: boxes moved into the panel and checked (``InputFileError`` naming the flag)."""
    import numpy as np

    from elastogan.predict import check_roi
    from elastogan.tsukuba import strain_ratio

    h, w = inp.bmode.shape
    out_box = (0, 0, w, h) if crop else inp.box
    out_shape = (h, w) if crop else inp.frame_shape
    where = "frame" if out_box == (0, 0, out_shape[1], out_shape[0]) else f"B-mode panel {out_box} of the {out_shape[0]}×{out_shape[1]} frame"
    moved = {}
    for flag, box in (("--roi", roi), ("--lesion", lesion)):
        if box is None:
            moved[flag] = None
            continue
        inner = (box[0] - out_box[0], box[1] - out_box[1], box[2] - out_box[0], box[3] - out_box[1])
        try:
            check_roi(inner, (h, w))
        except ValueError:
            size = f"{h}×{w} frame" if where == "frame" else where
            raise InputFileError(f, f"{flag} {tuple(box)} is not inside the {size}") from None
        moved[flag] = inner
    if lesion is not None:
        # The strain ratio's regions depend on the boxes alone: a lesion outside the ROI, or
        # with no reference tissue beside it, is refused now rather than after the model ran.
        box = moved["--roi"] or (0, 0, w, h)
        try:
            strain_ratio(_box_map((h, w), box, np.nan, 1.0), _box_map((h, w), moved["--lesion"], False, True), box)
        except ValueError as e:
            raise InputFileError(f, f"--lesion {tuple(lesion)}: no strain ratio for this lesion box: {e}") from None
    return Job(name, inp, moved["--roi"], moved["--lesion"], out_box, out_shape)


def read_inputs(files: list[Path], roi: Box | None, lesion: Box | None, *, frames: str | int = "first",
                allow_colour: bool = False, crop: bool = False) -> tuple[list[Job], list[tuple[Path, str]], list[str]]:
    """Every input's frames, read and checked before anything is written.

    Returns:
        ``(jobs, problems, warnings)``: the frames to predict, ``(file, problem)`` for each bad
        input (unreadable, a colour panel without ``allow_colour``, boxes outside its panel),
        and notes for the user.
    """
    from elastogan.bmode_input import MAX_BMODE_COLOUR, read_bmode_input

    jobs: list[Job] = []
    problems: list[tuple[Path, str]] = []
    notes: list[str] = []
    for f in files:
        try:
            first = read_bmode_input(f)
            indices, warned = frame_indices(first, frames)
            found = []
            for i in indices:
                inp = first if i == 0 else read_bmode_input(f, frame=i)
                label = f"frame {i}: " if len(indices) > 1 else ""
                if inp.colour_fraction > MAX_BMODE_COLOUR and not allow_colour:
                    raise InputFileError(f, f"{label}a colour image ({inp.colour_fraction:.0%} of the B-mode panel's pixels "
                                         "are coloured: colour Doppler or an elastogram?), not a grey B-mode; --allow-colour "
                                         "predicts from its luminance")
                name = f"{f.stem}_frame{i:03d}" if frames == "all" and first.n_frames > 1 else f.stem
                found.append(_job(f, inp, name, roi, lesion, crop))
        except InputFileError as e:
            problems.append((Path(e.path), e.problem))
            continue
        jobs += found
        notes += warned
    return jobs, problems, notes


def _box_map(shape: tuple[int, int], box: tuple[int, int, int, int], outside, inside):
    """An H×W array holding ``inside`` in the end-exclusive ``box`` and ``outside`` elsewhere."""
    import numpy as np

    out = np.full(shape, outside)
    out[box[1] : box[3], box[0] : box[2]] = inside
    return out


def _predict(args: argparse.Namespace) -> int:
    from elastogan.bmode_input import check_unique_stems, collect_inputs
    from elastogan.data.bad_files import raise_if_bad
    from elastogan.errors import UserError
    from elastogan.folders import make_folder
    from elastogan.weights import resolve_checkpoint

    _check_args(args)
    frames = _parse_frames(args.frames)
    files = collect_inputs(args.input)
    check_unique_stems(files)
    checkpoint = resolve_checkpoint(args.checkpoint)

    import numpy as np

    from elastogan.predict import Predictor, case_seed

    predictor = Predictor.from_checkpoint(checkpoint, device=args.device)  # a bad checkpoint is named first
    roi = tuple(args.roi) if args.roi else None
    lesion = tuple(args.lesion) if args.lesion else None
    jobs, problems, notes = read_inputs(files, roi, lesion, frames=frames, allow_colour=args.allow_colour, crop=args.crop)
    if not args.skip_bad:
        raise_if_bad(problems, what="written")
    for path, problem in problems:
        print(f"elastogan: skipped {path}: {problem}", file=sys.stderr)
    for note in notes:
        print(f"elastogan: warning: {note}", file=sys.stderr)
    if not jobs:
        raise UserError(f"no input could be used ({len(problems)} skipped); nothing written")

    make_folder(args.out)  # only now: there is something to write
    unlike = 0
    for start in range(0, len(jobs), args.batch_size):
        chunk = jobs[start : start + args.batch_size]
        draw_seeds = [case_seed(args.seed, j.name) for j in chunk]
        results = {}
        # One batch per ROI: the same --roi sits at different panel pixels in different files.
        for panel_roi in dict.fromkeys(j.roi for j in chunk):
            group = [i for i, j in enumerate(chunk) if j.roi == panel_roi]
            outs = predictor.predict_many([chunk[i].input.bmode for i in group], batch_size=args.batch_size, roi=panel_roi,
                                          seed=[draw_seeds[i] for i in group])
            results.update(zip(group, outs))
        for i, job in enumerate(chunk):
            emode, strain = results[i]
            base = args.out / f"{job.name}_SYNTHETIC"
            written = write_outputs(base, *_on_canvas(job, emode, strain))
            meta = {"input": str(job.input.path), "frame": job.input.frame, "checkpoint": str(checkpoint),
                    "checkpoint_step": predictor.step, "seed": args.seed,
                    "draw_seed": draw_seeds[i], "samples": args.samples,
                    "stochastic": predictor.stochastic, "roi": list(roi) if roi else None,
                    "bmode_panel": list(job.out_box)}
            ood = predictor.ood_score(job.input.bmode)
            if ood is not None:
                meta.update(ood_record(ood, predictor.fingerprint.threshold))
                if not ood["in_distribution"]:
                    unlike += 1
                    print(f"elastogan: warning: {ood_warning(job, ood, predictor.fingerprint.threshold)}", file=sys.stderr)
            if args.samples > 1:
                strains = predictor.sample(job.input.bmode, samples=args.samples, seed=meta["draw_seed"], roi=job.roi)
                box = _out_box(job, job.roi) if job.roi else job.out_box
                placed = np.stack([_on_canvas(job, None, s)[1] for s in strains])
                written += write_sample_outputs(base, placed, box, lesion, meta, predictor)
            elif ood is not None:
                written.append(write_sidecar(base, meta))
            print(f"{job.input.path} -> {written[0]}, " + ", ".join(p.name for p in written[1:]))
    note = "" if args.samples == 1 else f", {args.samples} samples each"
    if args.samples > 1 and not predictor.stochastic:
        note += " (this model draws no noise: all samples are equal and the SD is 0)"
    skipped = f"; skipped {len(problems)} input(s)" if problems else ""
    if unlike:
        skipped += f"; {unlike} frame(s) unlike the training data (see the warnings)"
    print(f"elastogan: {len(jobs)} frame(s) from {checkpoint} (step {predictor.step}, seed {args.seed}{note}) in {args.out}{skipped}",
          file=sys.stderr)
    return 0


def ood_record(ood: dict, threshold: float) -> dict:
    """The sidecar's out-of-distribution fields from ``Predictor.ood_score``."""
    return {"ood_score": ood["score"], "percentile": ood["percentile"], "in_distribution": ood["in_distribution"],
            "ood_threshold": threshold}


def ood_warning(job: Job, ood: dict, threshold: float) -> str:
    """One line for an input the model has seen nothing like."""
    frame = f" frame {job.input.frame}" if job.input.n_frames > 1 else ""
    return (f"{job.input.path}{frame}: unlike anything this model was trained on (OOD score {ood['score']:.1f} > "
            f"threshold {threshold:.1f}; above {ood['percentile']:.0f}% of validation images): the synthetic "
            "elastogram is not meaningful")


def write_sidecar(base: Path, record: dict) -> Path:
    """``NAME_SYNTHETIC.json`` (atomic) for a single sample: provenance and the OOD fields."""
    from elastogan.atomic import atomic_write_text

    path = Path(f"{base}.json")
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def _out_box(job: Job, box: Box) -> Box:
    """A box in panel pixels moved into the outputs' pixels."""
    x0, y0 = job.out_box[:2]
    return (box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0)


def _on_canvas(job: Job, emode, strain):
    """The panel's E-mode and strain placed in the outputs' frame: black and NaN elsewhere."""
    import numpy as np

    h, w = job.out_shape
    x0, y0, x1, y1 = job.out_box
    canvas_e = None
    if emode is not None:
        canvas_e = np.zeros((h, w, 3), np.uint8)
        canvas_e[y0:y1, x0:x1] = emode
    canvas_s = np.full((h, w), np.nan, np.float32)
    canvas_s[y0:y1, x0:x1] = strain
    return canvas_e, canvas_s


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
                         lesion: tuple[int, int, int, int] | None, meta: dict, predictor=None) -> list[Path]:
    """K samples' files: mean and SD (``.npy``), the labelled SD picture and the JSON sidecar (atomic).

    Args:
        base: ``OUT/NAME_SYNTHETIC``.
        strains: ``(K, H, W)`` float32 samples, NaN outside ``roi``.
        roi: the elastography box (the whole frame when none was given).
        lesion: lesion box for the strain ratio's interval, or None.
        meta: provenance for the sidecar (seed, samples, checkpoint, …).
        predictor: the ``Predictor`` that drew them: its calibration (``elastogan calibrate``)
            widens the intervals; ``None``: the draws taken at their word.
    """
    from elastogan.atomic import atomic_write_text
    from elastogan.data.images import write_png, write_strain
    from elastogan.uncertainty import labelled_sd_png, strain_ratio_interval, summarise_samples

    summary = predictor.summarise(strains) if predictor is not None else summarise_samples(strains)
    paths = [Path(f"{base}_strain_mean.npy"), Path(f"{base}_strain_sd.npy"), Path(f"{base}_strain_sd.png"), Path(f"{base}.json")]
    write_strain(paths[0], summary.mean)
    write_strain(paths[1], summary.sd)
    write_png(paths[2], labelled_sd_png(summary.sd, roi))
    record = {**meta, "level": summary.level}
    if predictor is not None and predictor.calibration is not None:
        record["calibration"] = predictor.calibration.to_dict()
    if lesion is not None:  # its geometry was checked with the inputs (read_inputs)
        mask = _box_map(strains.shape[1:], lesion, False, True)
        try:
            interval = predictor.ratio_interval(strains, mask, roi) if predictor is not None else \
                strain_ratio_interval(strains, mask, roi, level=summary.level)
        except ValueError as e:  # a draw shows the reference fully hard: the sidecar says so, the maps stand
            print(f"elastogan: warning: {base}: no strain ratio: {e}", file=sys.stderr)
            record["strain_ratio"] = {"lesion": list(lesion), "value": None, "lo": None, "hi": None, "error": str(e)}
        else:
            record["strain_ratio"] = {"lesion": list(lesion), "value": float(interval["value"]),
                                      "lo": float(interval["lo"]), "hi": float(interval["hi"]),
                                      "samples": [float(v) for v in interval["samples"]]}
    atomic_write_text(paths[3], json.dumps(record, indent=2, sort_keys=True) + "\n")
    return paths
