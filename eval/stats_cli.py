"""``elastogan stats authenticity|agreement|roc|diagnostic|power|readings|report|tsukuba``: the statistics.

Long-format CSV in (columns in :mod:`elastogan.eval.reader_stats.stats_io`), a readable table on stdout,
JSON with ``--out FILE`` (its shape: :mod:`elastogan.eval.reader_stats.reader_study`). Heavy imports
happen inside the command functions.
"""

from __future__ import annotations

import argparse
import sys

BIRADS_ORDER = "2,3,4a,4b,4c,5"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        help="reader-study statistics (authenticity, agreement, ROC/MRMC, diagnostic accuracy), Tsukuba scorer",
        description="Reader-study statistics from the app's CSV exports. Each command prints a "
        "table and, with --out FILE, writes the full results as JSON.",
    )
    ssub = p.add_subparsers(dest="stats_command", metavar="ANALYSIS")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--out", metavar="FILE", help="write the results as JSON to FILE")
        q.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")

    a = ssub.add_parser("authenticity", help="real-or-synthetic reading: accuracy, binomial test, d'",
                        description="Columns reader,case,is_synthetic,judged_synthetic (0/1) and an optional "
                        "group (e.g. junior/senior). Per reader, per group and overall: accuracy with the exact "
                        "binomial test against 0.5 and CI, fraction of synthetic and of real images judged real, d'.")
    a.add_argument("file", help="answers CSV")
    common(a)
    a.set_defaults(func=_authenticity)

    g = ssub.add_parser("agreement", help="Fleiss, Cohen and Krippendorff agreement; real vs synthetic",
                        description="Columns case,reader,score and an optional condition (e.g. real/synthetic). "
                        "Per condition: Fleiss kappa with SE and CI, mean pairwise Cohen kappa (unweighted, "
                        "linear, quadratic), Krippendorff alpha (ordinal); between two conditions a bootstrap "
                        "over cases of the Fleiss kappa difference.")
    g.add_argument("file", help="scores CSV")
    g.add_argument("--order", help="the score categories from lowest to highest, e.g. 1,2,3,4,5 "
                   "(default: numeric scores in numeric order)")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates (default 2000)")
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    common(g)
    g.set_defaults(func=_agreement)

    r = ssub.add_parser("roc", help="AUC with DeLong, paired/unpaired tests, Obuchowski-Rockette MRMC",
                        description="Columns case,truth,reader,modality,rating (truth 1 = malignant; higher "
                        "rating = more suspicious). Per modality and reader AUC with DeLong SE and CI; per reader "
                        "DeLong comparisons between modalities (paired when the cases are shared); with several "
                        "readers an Obuchowski-Rockette analysis with Hillis df (random readers/cases, fixed "
                        "readers, fixed cases). The design (paired, cases nested in modality, split-plot reader "
                        "blocks with their own cases, or counterbalanced: each reader reads a case in one modality) "
                        "is inferred from who read which case. A repeat column's repeated readings are left out "
                        "of the ROC and give intra-reader kappa; a reading_time_s (or reading_s) column gives "
                        "reading-time summaries.")
    r.add_argument("file", help="ratings CSV")
    r.add_argument("--order", help=f"rating categories from least to most suspicious, e.g. {BIRADS_ORDER} "
                   "(default: numeric ratings)")
    r.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife",
                   help="OR covariance estimator (default jackknife)")
    common(r)
    r.set_defaults(func=_roc)

    d = ssub.add_parser("diagnostic", help="sensitivity, specificity, PPV, NPV; McNemar and Kosinski tests",
                        description="Columns as for roc. A rating at or above --positive-from is a positive call. "
                        "Per reader and modality: sensitivity, specificity, PPV, NPV with exact CIs; per reader "
                        "paired comparisons between modalities: McNemar for sensitivity and specificity, "
                        "Kosinski's weighted generalised score test for PPV and NPV.")
    d.add_argument("file", help="ratings CSV")
    d.add_argument("--positive-from", required=True, help="lowest rating called positive, e.g. 4a")
    d.add_argument("--order", help=f"rating categories, e.g. {BIRADS_ORDER} (default: numeric ratings)")
    common(d)
    d.set_defaults(func=_diagnostic)

    pw = ssub.add_parser("power", help="readers x cases for a target power (Obuchowski-Rockette / Hillis)",
                         description="Power and sample size of an MRMC ROC study comparing modalities, random "
                         "readers and random cases (Hillis, Obuchowski & Berbaum 2011). The OR variance components "
                         "come from a pilot's `stats roc --out` JSON (paired design) or from the flags --var-tr, "
                         "--var, --cov1, --cov2, --cov3 and --pilot-cases. Prints, per number of readers, the cases "
                         "needed for --power; with --cases, the power of each readers x cases design.")
    pw.add_argument("pilot", nargs="?", help="JSON written by `elastogan stats roc FILE --out JSON`")
    pw.add_argument("--effect", type=float, required=True,
                    help="AUC difference to detect between the two modalities, e.g. 0.05")
    pw.add_argument("--power", type=float, default=0.8, help="target power (default 0.8)")
    pw.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    pw.add_argument("--readers", default="3,4,5,6,8,10,15,20", help="reader counts, comma-separated "
                    "(default 3,4,5,6,8,10,15,20)")
    pw.add_argument("--cases", help="case counts, comma-separated: print the power of each readers x cases design")
    pw.add_argument("--modalities", type=int, default=2, help="number of modalities compared (default 2)")
    pw.add_argument("--blocks", type=int, default=1, help="split-plot: reader blocks, each reading its own "
                    "cases/blocks cases (default 1: fully crossed; readers must be a multiple)")
    for flag, what in (("--var-tr", "σ²_TR, modality-by-reader variance of the AUCs"),
                       ("--var", "Var, error variance of one reader's AUC"),
                       ("--cov1", "Cov1, same reader, different modality"),
                       ("--cov2", "Cov2, different readers, same modality"),
                       ("--cov3", "Cov3, different readers and modalities")):
        pw.add_argument(flag, type=float, help=what + " (instead of a pilot)")
    pw.add_argument("--pilot-cases", type=float, help="the number of cases --var and --cov1-3 refer to")
    pw.add_argument("--out", metavar="FILE", help="write the results as JSON to FILE")
    pw.set_defaults(func=_power)

    rd = ssub.add_parser("readings", help="intra-reader agreement of repeated readings; reading times",
                         description="The app's readings.csv (one row per reading, repeats included): Cohen's kappa "
                         "of first against repeated reading for each categorical answer (real/synthetic, Tsukuba, "
                         "BI-RADS), per reader and pooled; reading-time summaries by reader and by each label column.")
    rd.add_argument("file", help="readings.csv")
    rd.add_argument("--order", default=BIRADS_ORDER, help=f"BI-RADS categories (default {BIRADS_ORDER})")
    rd.add_argument("--score-order", help="Tsukuba categories, e.g. cyst,1,2,3,4,5 (default: numeric order)")
    common(rd)
    rd.set_defaults(func=_readings)

    rep = ssub.add_parser("report", help="the reference paper's tables from a study export folder",
                          description="Reads the study export folder (answers.csv, scores.csv, ratings.csv and, "
                          "from `elastogan evaluate`, per_case.csv with an ncc column and metrics.json with the "
                          "observers' two-sample tests and the NCC ceilings; missing ones are "
                          "reported as such) and writes report.md, report.json and roc.png with the "
                          "reference paper's values side by side. An analysis the data cannot support "
                          "(e.g. MRMC with no reader-by-modality variation) is marked undefined, with the "
                          "reason, and the other sections are still written; unreadable files are errors.")
    rep.add_argument("folder", help="study export folder")
    rep.add_argument("--out", metavar="DIR", help="output folder (default FOLDER/report)")
    rep.add_argument("--order", default=BIRADS_ORDER, help=f"rating categories (default {BIRADS_ORDER})")
    rep.add_argument("--positive-from", default="4a", help="lowest rating called positive (default 4a)")
    rep.add_argument("--score-order", help="Tsukuba score categories (default: numeric scores)")
    rep.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife")
    rep.add_argument("--n-boot", type=int, default=2000)
    rep.add_argument("--seed", type=int, default=0)
    rep.set_defaults(func=_report)

    ts = ssub.add_parser("tsukuba", help="the Tsukuba rule scorer against a phantom manifest's design labels",
                         description="Score every case of a manifest with the Tsukuba rule scorer and compare with "
                         "the design labels (field tsukuba): confusion matrix (cyst, 1-5), agreement, Cohen kappa "
                         "unweighted over all cases (cyst a category of its own) and linear-weighted over the cases "
                         "labelled and scored 1-5 (cysts left out, counted).")
    ts.add_argument("manifest", help="manifest.jsonl with tsukuba labels and lesion masks")
    ts.add_argument("--split", help="only this split (default: all cases)")
    ts.add_argument("--strain", choices=("estimated", "true"), default="estimated",
                    help="estimated: the manifest's strain (default); true: source.true_strain, the simulator's FEM strain")
    ts.add_argument("--out", metavar="FILE", help="write the results as JSON to FILE")
    ts.set_defaults(func=_tsukuba)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _write_json(path: str | None, result: dict) -> None:
    if path is None:
        return
    from elastogan.atomic import atomic_write_text
    from elastogan.eval.stats_format import to_json

    atomic_write_text(path, to_json(result))
    print(f"wrote {path}")


def _check_level(level: float) -> None:
    from elastogan.errors import UserError

    if not 0 < level < 1:
        raise UserError(f"--level must be between 0 and 1, got {level}")


def _authenticity(args: argparse.Namespace) -> int:
    from elastogan.eval.authenticity import readers
    from elastogan.eval.stats_format import authenticity_table
    from elastogan.eval.reader_stats.stats_io import read_authenticity

    _check_level(args.level)
    result = readers.analyse(read_authenticity(args.file), args.level)
    print(authenticity_table(result))
    _write_json(args.out, result)
    return 0


def _agreement(args: argparse.Namespace) -> int:
    from elastogan.eval.reader_stats.reader_study import agreement_report
    from elastogan.eval.stats_format import agreement_table
    from elastogan.eval.reader_stats.stats_io import parse_order, read_scores

    _check_level(args.level)
    scores = read_scores(args.file, parse_order(args.order))
    result = agreement_report(scores, n_boot=args.n_boot, seed=args.seed, level=args.level)
    print(agreement_table(result))
    _write_json(args.out, result)
    return 0


def _roc(args: argparse.Namespace) -> int:
    from elastogan.eval.reader_stats.reader_study import roc_report
    from elastogan.eval.stats_format import roc_table
    from elastogan.eval.reader_stats.stats_io import parse_order, read_ratings

    _check_level(args.level)
    ratings = read_ratings(args.file, parse_order(args.order))
    result = roc_report(ratings, covariance=args.covariance, level=args.level)
    print(roc_table(result))
    _write_json(args.out, result)
    return 0


def _diagnostic(args: argparse.Namespace) -> int:
    from elastogan.eval.reader_stats.reader_study import diagnostic_report
    from elastogan.eval.stats_format import diagnostic_table
    from elastogan.eval.reader_stats.stats_io import parse_order, read_ratings

    _check_level(args.level)
    ratings = read_ratings(args.file, parse_order(args.order))
    result = diagnostic_report(ratings, args.positive_from, level=args.level)
    print(diagnostic_table(result))
    _write_json(args.out, result)
    return 0


def _counts(text: str, flag: str) -> list[int]:
    from elastogan.errors import UserError

    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected whole numbers separated by commas, e.g. 4,6,8") from None
    if not values or min(values) < 1:
        raise UserError(f"{flag} {text!r}: expected positive whole numbers")
    return values


def _power(args: argparse.Namespace) -> int:
    import json

    from elastogan.errors import InputFileError, UserError
    from elastogan.eval.reader_stats import power
    from elastogan.eval.stats_format import power_table

    flags = {"var_tr": args.var_tr, "var": args.var, "cov1": args.cov1, "cov2": args.cov2, "cov3": args.cov3,
             "n_cases": args.pilot_cases}
    given = [k for k, v in flags.items() if v is not None]
    if args.pilot and given:
        raise UserError("give a pilot JSON or the variance components, not both")
    if args.pilot:
        try:
            with open(args.pilot, encoding="utf-8") as f:
                pilot = json.load(f)
        except FileNotFoundError:
            raise InputFileError(args.pilot, "no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputFileError(args.pilot, f"not JSON ({e})") from None
        params, notes = power.from_pilot(pilot)
    else:
        missing = [f"--{k.replace('_', '-')}" if k != "n_cases" else "--pilot-cases" for k, v in flags.items() if v is None]
        if missing:
            raise UserError(f"give a pilot JSON (from `stats roc --out`) or all variance components; missing {', '.join(missing)}")
        params, notes = power.ORParameters(**flags), {"source": "stated variance components"}
    readers = _counts(args.readers, "--readers")
    cases = _counts(args.cases, "--cases") if args.cases else None
    result = power.plan(params, args.effect, readers, target=args.power, cases=cases, alpha=args.alpha,
                        n_modalities=args.modalities, blocks=args.blocks)
    result["pilot"] = notes
    print(power_table(result))
    _write_json(args.out, result)
    return 0


def _readings(args: argparse.Namespace) -> int:
    from elastogan.eval.reader_stats.reader_study import readings_report
    from elastogan.eval.reader_stats.stats_io import parse_order, read_readings
    from elastogan.eval.stats_format import readings_table

    _check_level(args.level)
    birads = parse_order(args.order)
    result = readings_report(read_readings(args.file), level=args.level,
                             orders={"birads": birads, "birads_bmode": birads, "tsukuba": parse_order(args.score_order)})
    print(readings_table(result))
    _write_json(args.out, result)
    return 0


def _report(args: argparse.Namespace) -> int:
    from elastogan.eval.paper_report import write_report

    paths = write_report(
        args.folder,
        args.out,
        order=args.order,
        positive_from=args.positive_from,
        score_order=args.score_order,
        covariance=args.covariance,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    for p in paths:
        print(f"wrote {p}")
    return 0


def _tsukuba(args: argparse.Namespace) -> int:
    from elastogan.eval.tsukuba_report import report_text, score_manifest

    result = score_manifest(args.manifest, split=args.split, strain=args.strain)
    print(report_text(result))
    _write_json(args.out, result)
    return 0
