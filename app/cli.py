"""``elastogan app`` and ``elastogan study create|add-reader|unlock|export|report``.

Only argparse at import time; gradio and torch are imported inside the commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from elastogan.weights import DEFAULT_CHECKPOINT, resolve_checkpoint


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser(
        "app",
        help="the web app: clinician preview and the blinded reader study",
        description="Serve the app. Preview: upload a B-mode (PNG/JPEG/DICOM), see the synthetic "
        "elastogram beside it and the real one, strain ratio, NCC, downloads labelled SYNTHETIC. "
        "With --study: reader logins, the blinded reading and the study lead's progress and export.",
    )
    a.add_argument("--checkpoint", type=Path, help=f"generator checkpoint (default: the shipped {DEFAULT_CHECKPOINT})")
    a.add_argument("--study", type=Path, help="study folder from `elastogan study create` (enables logins and the reading)")
    a.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    a.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    a.add_argument("--device", choices=("cpu", "cuda"), help="where the generator runs (default: CUDA when available)")
    a.set_defaults(func=_app)

    s = sub.add_parser(
        "study",
        help="build a blinded reader study, add readers, export answers, run the statistics",
        description="A study lead's commands: create a study from a manifest split and a checkpoint, "
        "add reader (and lead) accounts, export the answers as the `elastogan stats` CSVs, and "
        "run the reader-study statistics with the reference paper's tables.",
    )
    ssub = s.add_subparsers(dest="study_command", metavar="ACTION")

    c = ssub.add_parser("create", help="render real and synthetic elastograms blinded and write the study database",
                        description="For each case of the split, draw the real and the synthetic elastogram by one "
                        "identical path (same size, PNG encoder, colour bar) under random opaque names with no "
                        "metadata; record the truth only in STUDY/study.sqlite.")
    c.add_argument("--data", type=Path, required=True, help="manifest.jsonl (cases need strain and pathology)")
    c.add_argument("--split", default="test", help="manifest split to read (default test)")
    c.add_argument("--checkpoint", type=Path, required=True, help="generator checkpoint")
    c.add_argument("--out", type=Path, required=True, help="new study folder")
    c.add_argument("--n-cases", type=int, help="draw this many cases at random (default: all)")
    c.add_argument("--seed", type=int, default=0, help="seed of that draw (default 0)")
    c.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    c.add_argument("--design", choices=("split", "paired-sessions", "staged"), default="split",
                   help="split (default): each reader reads one of each case's two elastograms, half real, "
                   "counterbalanced across readers; paired-sessions: every case with the real elastogram in one "
                   "session and the synthetic in the other, after --washout-days; staged: BI-RADS on the B-mode "
                   "alone, then again with the elastogram")
    c.add_argument("--repeat", type=float, default=0.0, metavar="F",
                   help="fraction of each reader's readings shown again at the end, for intra-reader agreement (default 0)")
    c.add_argument("--washout-days", type=float, default=0.0,
                   help="paired-sessions: days between a reader's last session-1 answer and session 2 (default 0)")
    c.set_defaults(func=_create)

    r = ssub.add_parser("add-reader", help="add a reader (or lead) account with a hashed password",
                        description="Add an account. A reader gets their own reproducible reading order (seeded by "
                        "SHA-256 of the study id and the name). The password is read from --password-file (first "
                        "line) or asked for; it is stored as a scrypt hash.")
    r.add_argument("study", type=Path, help="study folder")
    r.add_argument("--name", required=True, help="login name")
    r.add_argument("--group", help="reader group, any name (e.g. junior, senior), for the statistics per group")
    r.add_argument("--role", choices=("reader", "lead"), default="reader", help="reader (default) or lead")
    r.add_argument("--password-file", type=Path, help="file whose first line is the password (else asked)")
    r.set_defaults(func=_add_reader)

    u = ssub.add_parser("unlock", help="let a name (or a client address) locked by wrong passwords log in again",
                        description="Forget the wrong passwords counted for --name and/or --address (both "
                        "omitted: all of them). Within 10 minutes, 10 wrong passwords for a name from one "
                        "address lock that name there, 30 from one address lock the address, 50 for a name "
                        "from anywhere lock the name; the counts live in the study database and survive restarts.")
    u.add_argument("study", type=Path, help="study folder")
    u.add_argument("--name", help="login name to unlock")
    u.add_argument("--address", help="client address to unlock")
    u.set_defaults(func=_unlock)

    e = ssub.add_parser("export", help="write answers.csv, scores.csv, ratings.csv, per_case.csv and readings.csv",
                        description="The answers in exactly the `elastogan stats` formats: answers.csv "
                        "(authenticity), scores.csv (agreement: Tsukuba by condition real/synthetic), ratings.csv "
                        "(roc and diagnostic: BI-RADS by modality real/synthetic) and per_case.csv (NCC), first "
                        "readings only; readings.csv: every reading with its design, session, repeat flag, reading "
                        "time and confidence; ratings_staged.csv (staged design) and ratings_confidence.csv "
                        "(where confidences were given).")
    e.add_argument("study", type=Path, help="study folder")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--complete-only", action="store_true", help="only readers who have answered every image")
    e.set_defaults(func=_export)

    p = ssub.add_parser("report", help="export, then the reader-study statistics and the paper's tables",
                        description="`elastogan study export` into OUT, then `elastogan stats report` on it: "
                        "OUT/report.md, report.json and roc.png.")
    p.add_argument("study", type=Path, help="study folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--positive-from", default="4a", help="lowest BI-RADS category called positive (default 4a)")
    p.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--complete-only", action="store_true",
                   help="only readers who have answered every image (a study still running)")
    p.set_defaults(func=_report)
    s.set_defaults(func=lambda args: (s.print_help(sys.stderr), 2)[1])


def _app(args: argparse.Namespace) -> int:
    from elastogan.errors import UserError

    if not 0 < args.port < 65536:
        raise UserError(f"--port must be 1-65535, got {args.port}")
    from elastogan.app.server import check_host, launch

    check_host(args.host, args.study)
    if args.study is not None:
        from elastogan.app.study_db import check_study

        check_study(args.study)
    checkpoint = resolve_checkpoint(args.checkpoint)
    from elastogan.predict import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, device=args.device)
    launch(predictor, study=args.study, host=args.host, port=args.port, block=True)
    return 0


def _create(args: argparse.Namespace) -> int:
    from elastogan.app.study_create import create_study

    made = create_study(args.data, args.checkpoint, args.out, split=args.split, n_cases=args.n_cases,
                        seed=args.seed, device=args.device, design=args.design, repeat=args.repeat,
                        washout_days=args.washout_days)
    ncc = "n/a" if made.ncc_mean is None else f"{made.ncc_mean:.3f}"
    print(f"study {made.study_id}: {made.n_cases} cases, {2 * made.n_cases} images in {made.path} (mean NCC {ncc}); "
          f"design {args.design}")
    print(f"next: elastogan study add-reader {made.path} --name NAME --group GROUP")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    from elastogan.errors import InputFileError, UserError

    if args.password_file is not None:
        try:
            lines = args.password_file.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise InputFileError(args.password_file, f"cannot read ({e.strerror})") from None
        if not lines or not lines[0]:
            raise InputFileError(args.password_file, "the first line (the password) is empty")
        return lines[0]
    import getpass

    if not sys.stdin.isatty():
        raise UserError("no terminal to ask for the password: pass --password-file FILE")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def _add_reader(args: argparse.Namespace) -> int:
    from elastogan.app.accounts import add_user
    from elastogan.app.study_db import connect

    with connect(args.study):  # a wrong study folder is said before a password is asked for
        pass
    n = add_user(args.study, args.name, _read_password(args), role=args.role, group=args.group)
    what = f"{n} readings" if args.role == "reader" else "study lead"
    print(f"added {args.name} ({what})")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    from elastogan.app.accounts import unlock

    n = unlock(args.study, name=args.name, address=args.address)
    who = " and ".join(x for x in (args.name and f"name {args.name}", args.address and f"address {args.address}") if x)
    print(f"unlocked {who or 'every name and address'} ({n} wrong password(s) forgotten)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from elastogan.app.study_export import export_study

    for p in export_study(args.study, args.out, complete_only=args.complete_only):
        print(f"wrote {p}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from elastogan.app.study_export import report_study, unfinished, unfinished_notice

    partial = [] if args.complete_only else unfinished(args.study)
    if partial:
        print("warning: " + unfinished_notice(partial).lstrip("> ").replace("**", ""), file=sys.stderr)
    for p in report_study(args.study, args.out, complete_only=args.complete_only, positive_from=args.positive_from,
                          covariance=args.covariance, n_boot=args.n_boot, seed=args.seed):
        print(f"wrote {p}")
    return 0
