"""The one command-line entry point: ``elastogan <command> ...``.

Each command lives beside the code it drives and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed namespace, returning an exit code).
Command modules import only argparse-level things at import time, so ``elastogan --help``
stays fast; heavy imports (torch, scipy) happen inside the ``func``.

This dispatcher is the one place where the library names ``elastogan.eval``,
``elastogan.training`` and ``elastogan.app``; library code never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from elastogan import __version__
from elastogan.errors import UserError

# Top-level commands, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "elastogan.sim.cli",
    "elastogan.data.manifest_cli",
    "elastogan.data.ingest_cli",
    "elastogan.training.cli",
    "elastogan.predict_cli",
    "elastogan.eval.evaluate_cli",
    "elastogan.eval.uncertainty.calibrate_cli",
    "elastogan.eval.uncertainty.rescan_cli",
    "elastogan.ood_cli",
    "elastogan.eval.stats_cli",
    "elastogan.app.cli",
)

# ``elastogan bench <what>``: each module's ``register_bench(subparsers)``.
BENCHES: tuple[str, ...] = (
    "elastogan.sim.bench",
    "elastogan.models.bench",
    "elastogan.training.bench",
    "elastogan.eval.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastogan",
        description="Virtual strain elastography: simulate or import paired B-mode/elastogram "
        "data, train generators, evaluate them, and run the reader study.",
    )
    parser.add_argument("--version", action="version", version=f"elastogan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    bench = sub.add_parser(
        "bench",
        help="measure speed (ratios against a peer measured in the same run)",
        description="Benchmarks. Each reports its figures against a peer measured in the same "
        "run, since absolute times on shared machines are noisy.",
    )
    bench_sub = bench.add_subparsers(dest="bench", metavar="WHAT")
    for name in BENCHES:
        importlib.import_module(name).register_bench(bench_sub)
    bench.set_defaults(func=lambda args: _missing(bench))
    return parser


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        return _missing(parser)
    try:
        return int(func(args) or 0)
    except UserError as e:
        print(f"elastogan: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("elastogan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
