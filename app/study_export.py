"""``elastogan study export`` and ``report``: the answers as the ``elastogan stats`` CSVs.

| file | for | columns (``elastogan.eval.stats_io``) |
|---|---|---|
| ``answers.csv`` | ``stats authenticity`` | ``reader,case,is_synthetic,judged_synthetic[,group]``; ``case`` is one image, ``CASE/real`` or ``CASE/synthetic`` |
| ``scores.csv`` | ``stats agreement`` | ``case,reader,score,condition`` (Tsukuba; condition ``real``/``synthetic``) |
| ``ratings.csv`` | ``stats roc`` and ``stats diagnostic`` | ``case,truth,reader,modality,rating`` (BI-RADS; truth 1 = malignant) |
| ``per_case.csv`` | ``stats report`` | ``case,ncc`` (real vs synthetic mapped strain inside the ROI) |

``group`` is written when every reader has one. Rows are sorted (reader, case), so two exports
of the same answers are byte-identical. The report is ``elastogan stats report`` on that folder
(the same function), with the Tsukuba categories declared in their order.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from elastogan.atomic import atomic_write_text

from elastogan.app import study_db

FILES = ("answers.csv", "scores.csv", "ratings.csv", "per_case.csv")


def _csv(header: tuple[str, ...], rows: list[tuple]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def export_tables(study: str | Path, *, complete_only: bool = False) -> dict[str, str]:
    """The four CSV files' text, by file name.

    Args:
        study: study folder.
        complete_only: only readers who have answered their whole list (the statistics need
            every reader to have seen both kinds of image; a study still running can be
            analysed on the readers who finished).
    """
    study_db.check_study(study)
    with study_db.connect(study) as con:
        finished = {p.reader for p in study_db.all_progress(con) if p.done}
        if complete_only and not finished:
            raise study_db.StudyError(f"{study}: no reader has answered their whole list yet")
        rows = con.execute(
            "SELECT a.reader, u.grp, i.case_id, i.kind, a.judged, a.tsukuba, a.birads, c.malignant"
            " FROM answers a JOIN users u ON u.name = a.reader JOIN images i ON i.image = a.image"
            " JOIN cases c ON c.case_id = i.case_id WHERE u.role = 'reader'"
            " ORDER BY a.reader, i.case_id, i.kind"
        ).fetchall()
        if complete_only:
            rows = [r for r in rows if r[0] in finished]
        groups = [g for (n, g) in con.execute("SELECT name, grp FROM users WHERE role = 'reader'")
                  if not complete_only or n in finished]
        nccs = con.execute("SELECT case_id, ncc FROM cases WHERE ncc IS NOT NULL ORDER BY case_id").fetchall()
    with_group = bool(groups) and all(g is not None for g in groups)
    answers = [(r, f"{c}/{k}", int(k == "synthetic"), int(j == "synthetic"), *((g,) if with_group else ()))
               for r, g, c, k, j, _, _, _ in rows]
    scores = [(c, r, t, k) for r, _, c, k, _, t, _, _ in rows]
    ratings = [(c, m, r, k, b) for r, _, c, k, _, _, b, m in rows]
    return {
        "answers.csv": _csv(("reader", "case", "is_synthetic", "judged_synthetic", *(("group",) if with_group else ())), answers),
        "scores.csv": _csv(("case", "reader", "score", "condition"), scores),
        "ratings.csv": _csv(("case", "truth", "reader", "modality", "rating"), ratings),
        "per_case.csv": _csv(("case", "ncc"), [(c, repr(float(v))) for c, v in nccs]),
    }


def export_study(study: str | Path, out: str | Path, *, complete_only: bool = False) -> list[Path]:
    """Write the four CSVs into ``out`` (atomically, each); returns their paths."""
    out = Path(out)
    written = []
    for name, text in export_tables(study, complete_only=complete_only).items():
        atomic_write_text(out / name, text)
        written.append(out / name)
    return written


def report_study(study: str | Path, out: str | Path, *, complete_only: bool = False, **options) -> list[Path]:
    """Export into ``out`` and run ``elastogan stats report`` on it (the same function).

    ``options`` go to ``elastogan.eval.paper_report.write_report`` (``order``,
    ``positive_from``, ``covariance``, ``n_boot``, ``seed``); the Tsukuba categories are
    declared as ``study_db.TSUKUBA_ORDER`` unless ``score_order`` is given.
    """
    from elastogan.eval.paper_report import write_report

    written = export_study(study, out, complete_only=complete_only)
    options.setdefault("score_order", ",".join(study_db.TSUKUBA_ORDER))
    return written + write_report(out, out, **options)
