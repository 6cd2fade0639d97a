"""``elastogan ingest --input DIR --out DIR [--colormap NAME] [--layout dual|pairs] …``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="turn scanner exports (DICOM, PNG, JPEG) into a data set with a manifest",
        description="Turn a folder of scanner exports into B-mode, E-mode, mapped strain and "
        "ROI per case, with a manifest split by patient. Only the image panels are kept "
        "(burned-in text is cropped away) and patient ids become pseudonyms. A file with no "
        "elastogram, or any other bad file, is reported by name; "
        "every one is named, then the run stops with nothing written, unless --skip-bad. Screens "
        "without DICOM regions (PNG/JPEG screenshots, DICOM without regions) are searched for "
        "their panels: two panels showing one frame (B-mode | E-mode, touching or apart), else "
        "an elastogram drawn over the screen's only B-mode (colour maps).",
    )
    p.add_argument("--input", required=True, metavar="DIR", help="folder of exports (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="new (or empty) output folder")
    p.add_argument(
        "--colormap",
        default=None,
        metavar="NAME",
        help="the scanner's strain colour map: a name from elastogan.colormaps (hitachi, the "
        "default; grey-white-soft; grey-black-soft; an unknown name lists them all), or 'bar' to "
        "read each image's own colour bar, colour or grey, soft end at the top ('bar-soft-bottom': "
        "soft end at the bottom). A colour bar that contradicts the named map is an error, never "
        "silently accepted",
    )
    p.add_argument(
        "--layout",
        choices=("dual", "pairs"),
        default="dual",
        help="dual: B-mode | E-mode side by side in one file (default); pairs: NAME_bmode.* "
        "with NAME_emode.*",
    )
    p.add_argument("--skip-bad", action="store_true", help="report bad files and go on with the good ones")
    p.add_argument(
        "--keep-identifiers",
        action="store_true",
        help="keep real patient ids and source file names in the manifest (default: pseudonyms, no names)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the patient split (default 0)")
    p.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="keep the pseudonym key in FILE (made on the first run, readable by you only; never "
        "inside --input or --out): a returning patient then gets the same pseudonym and split in "
        "every run with this key and --seed, so a study ingested in parts can be merged "
        "(`elastogan manifest merge`). Splits are then drawn per patient (15/15/70 on average, "
        "not exactly). Default: a key of this run only, never written",
    )
    p.add_argument(
        "--frames",
        default="first",
        metavar="first|all|N",
        help="multi-frame files (cine loops): 'first' ingests frame 0 with a warning (default), "
        "'all' makes every frame a case (a loop's frames share its patient, hence its split), "
        "N the 0-based frame N of each multi-frame file",
    )
    p.set_defaults(func=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from elastogan.colormaps import DEFAULT_COLORMAP
    from elastogan.data.ingest import IngestOptions, ingest

    options = IngestOptions(
        colormap=args.colormap or DEFAULT_COLORMAP,
        layout=args.layout,
        skip_bad=args.skip_bad,
        keep_identifiers=args.keep_identifiers,
        seed=args.seed,
        frames=args.frames,
        key_file=args.key,
    )

    def on_skip(path: object, problem: str) -> None:
        print(f"elastogan: skipped {path}: {problem}", file=sys.stderr)

    report = ingest(args.input, args.out, options, on_skip=on_skip)
    for w in report.warnings:
        print(f"elastogan: warning: {w}", file=sys.stderr)
    parts = ", ".join(f"{report.splits[s]} {s}" for s in ("train", "val", "test"))
    skipped = f"; skipped {len(report.skipped)} file(s)" if report.skipped else ""
    print(f"ingested {report.cases} case(s) from {report.patients} patient(s) ({parts}) into {report.out}{skipped}")
    print(f"manifest: {report.out / 'manifest.jsonl'} (validated)")
    if report.new_key is not None:
        print(f"new pseudonym key: {report.new_key} (keep it private and apart from the data; "
              "later parts of this study need it for their pseudonyms to match)")
    return 0
