"""``elastogan study export`` and ``report``: the answers as the ``elastogan stats`` CSVs.

| file | for | columns (``elastogan.eval.reader_stats.stats_io``) |
|---|---|---|
| ``answers.csv`` | ``stats authenticity`` | ``reader,case,is_synthetic,judged_synthetic[,group]``; ``case`` is one image, ``CASE/real`` or ``CASE/synthetic`` |
| ``scores.csv`` | ``stats agreement`` | ``case,reader,score,condition`` (Tsukuba; condition ``real``/``synthetic``) |
| ``ratings.csv`` | ``stats roc`` and ``stats diagnostic`` | ``case,truth,reader,modality,rating`` (BI-RADS; truth 1 = malignant) |
| ``per_case.csv`` | ``stats report`` | ``case,ncc`` (real vs synthetic mapped strain inside the ROI) |
| ``readings.csv`` | everything per reading (``READINGS_COLUMNS``) | one row per answered reading, repeats included |
| ``ratings_staged.csv`` | ``stats roc`` (staged design) | as ``ratings.csv``; modality ``bmode`` (B-mode alone) or ``bmode+elastogram`` |
| ``ratings_confidence.csv`` | ``stats roc`` (continuous) | as ``ratings.csv``; rating = the confidence 0–100, where given |

The first four hold first readings only (a repeat is a second answer to the same image, for
intra-reader agreement: it is in ``readings.csv``, flagged). ``group`` is written when every
reader has one. Rows are sorted (reader, case, …), so two exports of the same answers are
byte-identical. The report is ``elastogan stats report`` on that folder (the same function),
with the Tsukuba categories declared in their order; on a study some reader has not finished,
the report says so at its top.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from elastogan.atomic import atomic_write_text

from elastogan.app import study_db

FILES = ("answers.csv", "scores.csv", "ratings.csv", "per_case.csv", "readings.csv")
READINGS_COLUMNS = (
    "reader", "group", "case", "image", "modality", "truth", "judged_synthetic", "tsukuba", "birads",
    "confidence", "birads_bmode", "confidence_bmode", "design", "session", "staged", "repeat", "position",
    "served_utc", "answered_utc", "reading_s", "reading_bmode_s",
)


def _csv(header: tuple[str, ...], rows: list[tuple]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _utc(t: float | None) -> str:
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _seconds(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f"{b - a:.3f}"


def _number(v: float | None) -> str:
    return "" if v is None else (str(int(v)) if float(v).is_integer() else repr(float(v)))


def unfinished(study: str | Path) -> list[study_db.Progress]:
    """The readers who have not answered their whole list."""
    study_db.check_study(study)
    with study_db.connect(study) as con:
        return [p for p in study_db.all_progress(con) if not p.done]


def export_tables(study: str | Path, *, complete_only: bool = False) -> dict[str, str]:
    """The CSV files' text, by file name (see the module docstring).

    Args:
        study: study folder.
        complete_only: only readers who have answered their whole list (a study still
            running can be analysed on the readers who finished).
    """
    study_db.check_study(study)
    with study_db.connect(study) as con:
        d = study_db.design(con)
        finished = {p.reader for p in study_db.all_progress(con) if p.done}
        if complete_only and not finished:
            raise study_db.StudyError(f"{study}: no reader has answered their whole list yet")
        rows = con.execute(
            "SELECT a.reader, u.grp, i.case_id, i.image, i.kind, c.malignant, a.judged, a.tsukuba, a.birads, a.confidence,"
            " b.birads, b.confidence, o.session, o.repeat, o.position, a.served, a.answered, b.served, b.answered"
            " FROM answers a JOIN users u ON u.name = a.reader JOIN images i ON i.image = a.image"
            " JOIN cases c ON c.case_id = i.case_id"
            " JOIN reading_order o ON o.reader = a.reader AND o.position = a.position"
            " LEFT JOIN bmode_answers b ON b.reader = a.reader AND b.position = a.position"
            " WHERE u.role = 'reader' ORDER BY a.reader, i.case_id, i.kind, o.repeat, o.position"
        ).fetchall()
        if complete_only:
            rows = [r for r in rows if r[0] in finished]
        groups = [g for (n, g) in con.execute("SELECT name, grp FROM users WHERE role = 'reader'")
                  if not complete_only or n in finished]
        nccs = con.execute("SELECT case_id, ncc FROM cases WHERE ncc IS NOT NULL ORDER BY case_id").fetchall()
    with_group = bool(groups) and all(g is not None for g in groups)
    first = [r for r in rows if not r[13]]
    answers = [(r[0], f"{r[2]}/{r[4]}", int(r[4] == "synthetic"), int(r[6] == "synthetic"), *((r[1],) if with_group else ()))
               for r in first]
    scores = [(r[2], r[0], r[7], r[4]) for r in first]
    ratings = [(r[2], r[5], r[0], r[4], r[8]) for r in first]
    readings = [
        (r[0], r[1] or "", r[2], r[3], r[4], r[5], int(r[6] == "synthetic"), r[7], r[8], _number(r[9]), r[10] or "",
         _number(r[11]), d.name, r[12], int(d.name == "staged"), r[13], r[14] + 1, _utc(r[15]), _utc(r[16]),
         _seconds(r[15], r[16]), _seconds(r[17], r[18]))
        for r in rows
    ]
    tables = {
        "answers.csv": _csv(("reader", "case", "is_synthetic", "judged_synthetic", *(("group",) if with_group else ())), answers),
        "scores.csv": _csv(("case", "reader", "score", "condition"), scores),
        "ratings.csv": _csv(("case", "truth", "reader", "modality", "rating"), ratings),
        "per_case.csv": _csv(("case", "ncc"), [(c, repr(float(v))) for c, v in nccs]),
        "readings.csv": _csv(READINGS_COLUMNS, readings),
    }
    if d.name == "staged":
        staged = sorted([(r[2], r[5], r[0], "bmode", r[10]) for r in first if r[10] is not None]
                        + [(r[2], r[5], r[0], "bmode+elastogram", r[8]) for r in first])
        tables["ratings_staged.csv"] = _csv(("case", "truth", "reader", "modality", "rating"), staged)
    confident = [(r[2], r[5], r[0], r[4], _number(r[9])) for r in first if r[9] is not None]
    if confident:
        tables["ratings_confidence.csv"] = _csv(("case", "truth", "reader", "modality", "rating"), confident)
    return tables


def export_study(study: str | Path, out: str | Path, *, complete_only: bool = False) -> list[Path]:
    """Write the CSVs into ``out`` (atomically, each); returns their paths."""
    out = Path(out)
    written = []
    for name, text in export_tables(study, complete_only=complete_only).items():
        atomic_write_text(out / name, text)
        written.append(out / name)
    return written


def unfinished_notice(readers: list[study_db.Progress]) -> str:
    """The line a report on an unfinished study starts with."""
    who = ", ".join(f"{p.reader} ({p.answered}/{p.total})" for p in readers)
    return (f"> **Unfinished study**: {len(readers)} reader(s) have not answered their whole list: {who}. "
            "Their partial answers are included below; `--complete-only` analyses only the readers who finished.")


def report_study(study: str | Path, out: str | Path, *, complete_only: bool = False, **options) -> list[Path]:
    """Export into ``out`` and run ``elastogan stats report`` on it (the same function).

    ``options`` go to ``elastogan.eval.paper_report.write_report`` (``order``,
    ``positive_from``, ``covariance``, ``n_boot``, ``seed``); the Tsukuba categories are
    declared as ``study_db.TSUKUBA_ORDER`` unless ``score_order`` is given. When a reader
    whose answers are included has not finished, ``report.md`` starts with a notice.
    """
    from elastogan.eval.paper_report import write_report

    written = export_study(study, out, complete_only=complete_only)
    options.setdefault("score_order", ",".join(study_db.TSUKUBA_ORDER))
    written += write_report(out, out, **options)
    partial = [] if complete_only else unfinished(study)
    md = Path(out) / "report.md"
    if partial and md.is_file():
        atomic_write_text(md, unfinished_notice(partial) + "\n\n" + md.read_text(encoding="utf-8"))
    return written
