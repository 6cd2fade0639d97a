"""``elastogan manifest validate FILE``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("manifest", help="check data manifests", description="Work with data manifests (JSON Lines, DESIGN §2).")
    msub = p.add_subparsers(dest="manifest_command", metavar="ACTION")
    v = msub.add_parser(
        "validate",
        help="report every problem of a manifest at once",
        description="Check a manifest: JSON, required fields, labels, files (exist, decode in "
        "full, pixel formats the training readers take, shapes), duplicate ids and patients in "
        "more than one split. Prints every problem with its line number and field; exit code 2 "
        "if there is any.",
    )
    v.add_argument("file", help="manifest.jsonl")
    v.add_argument("--no-files", action="store_true", help="skip opening the image files")
    v.add_argument(
        "--quick",
        action="store_true",
        help="read only the files' headers (size, pixel format), not every pixel: faster, but a "
        "truncated or corrupt file passes",
    )
    v.set_defaults(func=_validate)
    m = msub.add_parser(
        "merge",
        help="join manifests (e.g. the shards of one simulation) into one",
        description="Concatenate manifests into OUT, rewriting paths relative to OUT's folder, and "
        "validate the result (duplicate ids and patients across splits are errors). OUT is written "
        "only if the merged manifest is valid.",
    )
    m.add_argument("inputs", nargs="+", type=Path, help="manifests to join, in order")
    m.add_argument("--out", required=True, type=Path, help="merged manifest.jsonl")
    m.set_defaults(func=_merge)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _validate(args: argparse.Namespace) -> int:
    from elastogan.data.manifest import validate_manifest

    cases, problems = validate_manifest(args.file, check_files=not args.no_files, decode=not args.quick)
    for prob in problems:
        print(f"{args.file}: {prob}", file=sys.stderr)
    if problems:
        print(f"{args.file}: INVALID: {len(problems)} problem(s)", file=sys.stderr)
        return 2
    splits = Counter(c.split for c in cases)
    patients = len({c.patient_id for c in cases})
    parts = ", ".join(f"{splits[s]} {s}" for s in ("train", "val", "test"))
    print(f"{args.file}: OK: {len(cases)} cases ({parts}) from {patients} patients")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from elastogan.data.manifest import merge_manifests

    n = merge_manifests(args.inputs, args.out)
    print(f"{args.out}: OK: merged {n} cases from {len(args.inputs)} manifests")
    return 0
