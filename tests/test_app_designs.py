"""Reading designs (split, paired sessions with a washout, staged, repeats), what a reading
records (server-side reading time, confidence, free groups), the version-1 migration, and
``study create --design``. Handlers as plain functions, with a fake clock."""

from __future__ import annotations

import doctest
import re
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from elastogan.app import designs, reader_png, study_db
from elastogan.app.accounts import add_user
from elastogan.app.designs import Slot, reading_list, split_assignment
from elastogan.app.reading import reader_view, submit_answer
from elastogan.app.study_db import STAGE_BMODE, STAGE_FULL, StudyError
from elastogan.app.study_export import READINGS_COLUMNS, export_tables
from elastogan.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from app_support import N_TEST_CASES, PASSWORD, build, copy_study  # noqa: E402

from elastogan.eval.reader_stats import stats_io  # noqa: E402

DAY = 86400.0
T0 = 1_900_000_000.0  # the fake clock's start (2030)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.getbasetemp() / "app")


def _lists(study: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(study / study_db.DB_NAME) as con:
        rows = con.execute("SELECT o.reader, o.position, i.case_id, i.kind, o.session, o.repeat FROM reading_order o"
                           " JOIN images i ON i.image = o.image ORDER BY o.reader, o.position").fetchall()
    out: dict[str, list[tuple]] = {}
    for reader, _, case, kind, session, repeat in rows:
        out.setdefault(reader, []).append((case, kind, session, repeat))
    return out


def _rows(text: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def _answer_all(study: Path, reader: str, clock: list[float], step: float = 10.0, confidence=None) -> None:
    while (v := reader_view(study, reader, now=clock[0])).token is not None:
        clock[0] += step
        if v.stage == STAGE_BMODE:
            submit_answer(study, reader, v.token, None, None, "3", confidence, now=clock[0])
        else:
            submit_answer(study, reader, v.token, "real", "2", "4a", confidence, now=clock[0])


def test_doctests_of_the_design_and_display_modules():
    for module in (designs, reader_png):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


@pytest.mark.parametrize("n", [1, 2, 5, 25])
def test_split_assignment_is_counterbalanced(n):
    pairs = [(f"r{i}", f"s{i}") for i in range(n)]
    a, other_a = split_assignment(pairs, 0)
    b, other_b = split_assignment(pairs, 1)
    assert a == other_b and b == other_a and sorted(a + b) == sorted(x for p in pairs for x in p)
    for shown in (a, b):
        assert len(shown) == n and sum(x.startswith("r") for x in shown) in (n // 2, (n + 1) // 2)
    assert split_assignment(pairs, 2) == (a, other_a)
    with pytest.raises(ValueError, match="reader index"):
        split_assignment(pairs, -1)


def test_reading_lists_by_design_and_repeats():
    pairs = [(f"r{i}", f"s{i}") for i in range(10)]
    split = reading_list("split", pairs, reader_index=0, seed=7)
    assert len(split) == 10 and {s.session for s in split} == {1} and not any(s.repeat for s in split)
    paired = reading_list("paired-sessions", pairs, reader_index=1, seed=7)
    first = [s.image for s in paired if s.session == 1]
    second = [s.image for s in paired if s.session == 2]
    assert paired[:10] == [Slot(i, 1, False) for i in first]  # session 1 first, then session 2
    assert sorted(first + second) == sorted(x for p in pairs for x in p) and set(first) == set(split_assignment(pairs, 1)[0])
    rep = reading_list("staged", pairs, reader_index=0, seed=7, repeat=0.3)
    assert len(rep) == 13 and [s.repeat for s in rep] == [False] * 10 + [True] * 3
    assert {s.image for s in rep[10:]} <= {s.image for s in rep[:10]} and len({s.image for s in rep[10:]}) == 3
    again = reading_list("paired-sessions", pairs, reader_index=0, seed=7, repeat=0.5)
    assert len(again) == 30 and all(s.session == 2 for s in again[20:])
    assert reading_list("split", pairs, reader_index=0, seed=7) == split  # reproducible
    for bad, match in ((dict(design="mixed"), "unknown design"), (dict(repeat=1.5), "repeat")):
        kw = {"design": "split", "repeat": 0.0, **bad}
        with pytest.raises(ValueError, match=match):
            reading_list(kw["design"], pairs, reader_index=0, seed=1, repeat=kw["repeat"])


def test_split_study_each_reader_one_image_per_case_half_real(built, tmp_path):
    study = copy_study(built, tmp_path / "s", readers=3)
    lists = _lists(study)
    for reader, items in lists.items():
        cases = [c for c, *_ in items]
        assert len(cases) == len(set(cases)) == N_TEST_CASES, reader
        assert sum(k == "real" for _, k, _, _ in items) in (N_TEST_CASES // 2, N_TEST_CASES // 2 + 1)
    kinds = {r: {c: k for c, k, _, _ in items} for r, items in lists.items()}
    assert all(kinds["r0"][c] != kinds["r1"][c] for c in kinds["r0"])  # the next reader: the other image
    assert kinds["r2"] == kinds["r0"]
    # The order of readings differs between readers with the same images (their own seeds).
    assert [c for c, *_ in lists["r0"]] != [c for c, *_ in lists["r2"]]


def test_paired_sessions_open_session_two_after_the_washout(built, tmp_path):
    study = copy_study(built, tmp_path / "s", readers=2, design="paired-sessions", washout_days=14)
    lists = _lists(study)
    for reader, items in lists.items():
        s1 = {(c, k) for c, k, s, _ in items if s == 1}
        s2 = {(c, k) for c, k, s, _ in items if s == 2}
        assert len(s1) == len(s2) == N_TEST_CASES and {c for c, _ in s1} == {c for c, _ in s2} and not s1 & s2
    # counterbalanced: what r0 reads in session 1, r1 reads in session 2
    assert {(c, k) for c, k, s, _ in lists["r0"] if s == 1} == {(c, k) for c, k, s, _ in lists["r1"] if s == 2}
    clock = [T0]
    for _ in range(N_TEST_CASES):
        v = reader_view(study, "r0", now=clock[0])
        clock[0] += 30
        submit_answer(study, "r0", v.token, "real", "3", "4a", now=clock[0])
    last = clock[0]
    waiting = reader_view(study, "r0", now=last + 13 * DAY)
    assert waiting.token is None and waiting.bmode is None and waiting.opens == pytest.approx(last + 14 * DAY)
    assert "Session 2 opens on" in waiting.progress_text and waiting.answered == N_TEST_CASES
    with pytest.raises(StudyError, match="not the image on your screen"):  # nothing is on screen
        submit_answer(study, "r0", "f" * 32, "real", "3", "4a", now=last + 13 * DAY)
    opened = reader_view(study, "r0", now=last + 14 * DAY + 1)
    assert opened.token is not None and opened.position == N_TEST_CASES + 1 and opened.elastogram is not None
    clock[0] = last + 14 * DAY + 1
    _answer_all(study, "r0", clock)
    _answer_all(study, "r1", [T0])  # r1 stops at its own washout
    assert reader_view(study, "r1", now=T0 + DAY).opens is not None
    rows = _rows(export_tables(study)["readings.csv"])
    assert {(r["reader"], r["session"]) for r in rows} == {("r0", "1"), ("r0", "2"), ("r1", "1")}
    assert {r["design"] for r in rows} == {"paired-sessions"}
    # ratings.csv: r0 read every case with both elastograms (a paired comparison for stats roc)
    ratings = _rows(export_tables(study)["ratings.csv"])
    r0 = [(r["case"], r["modality"]) for r in ratings if r["reader"] == "r0"]
    assert len(r0) == len(set(r0)) == 2 * N_TEST_CASES


def test_staged_reading_stores_bmode_alone_then_with_the_elastogram_and_times(built, tmp_path):
    study = copy_study(built, tmp_path / "s", readers=1, design="staged")
    v = reader_view(study, "r0", now=T0)
    assert v.stage == STAGE_BMODE and v.elastogram is None and v.bmode is not None and "B-mode alone" in v.progress_text
    with pytest.raises(StudyError, match="not the image on your screen"):  # a B-mode view takes no full answer
        with study_db.connect(study) as con:
            study_db.store_answer(con, "r0", v.token, "real", "3", "4a")
    missing = submit_answer(study, "r0", v.token, None, None, None, now=T0 + 1)
    assert "Please choose: BI-RADS category" in missing.message and missing.token == v.token
    full = submit_answer(study, "r0", v.token, None, None, "3", 20, now=T0 + 5)
    assert full.stage == STAGE_FULL and full.position == 1 and full.answered == 0 and full.elastogram is not None
    assert np.array_equal(full.bmode, v.bmode) and full.token != v.token
    assert "B-mode alone" in full.message and "final" in full.message
    nxt = submit_answer(study, "r0", full.token, "synthetic", "4", "4b", 80, now=T0 + 12)
    assert nxt.stage == STAGE_BMODE and nxt.position == 2 and nxt.answered == 1
    tables = export_tables(study)
    (row,) = _rows(tables["readings.csv"])
    assert (row["birads_bmode"], row["confidence_bmode"], row["birads"], row["confidence"]) == ("3", "20", "4b", "80")
    assert (row["reading_bmode_s"], row["reading_s"], row["staged"], row["design"]) == ("5.000", "7.000", "1", "staged")
    staged = _rows(tables["ratings_staged.csv"])
    assert [(r["modality"], r["rating"]) for r in staged] == [("bmode", "3"), ("bmode+elastogram", "4b")]


def test_repeats_come_last_flagged_and_stay_out_of_the_first_reading_files(built, tmp_path):
    study = copy_study(built, tmp_path / "s", readers=1, repeat=0.2, design="split")
    items = _lists(study)["r0"]
    assert len(items) == N_TEST_CASES + 5 and [r for *_, r in items] == [0] * N_TEST_CASES + [1] * 5
    assert {(c, k) for c, k, _, r in items if r} <= {(c, k) for c, k, _, r in items if not r}
    _answer_all(study, "r0", [T0])
    tables = export_tables(study)
    rows = _rows(tables["readings.csv"])
    assert len(rows) == N_TEST_CASES + 5 and sum(r["repeat"] == "1" for r in rows) == 5
    assert len(tables["answers.csv"].splitlines()) == 1 + N_TEST_CASES
    out = tmp_path / "answers.csv"
    out.write_text(tables["answers.csv"])
    assert len(stats_io.read_authenticity(out).reader) == N_TEST_CASES  # no duplicate (reader, case)


def test_reading_time_is_server_side_and_confidence_is_optional_0_to_100(built, tmp_path):
    study = copy_study(built, tmp_path / "s", readers=1)
    v = reader_view(study, "r0", now=T0)
    again = reader_view(study, "r0", now=T0 + 100)  # a reload: the same view, served at T0
    assert again.token == v.token
    for bad in (101, -1, "high", True, float("nan")):
        with pytest.raises(StudyError, match="confidence .* is not a number from 0 to 100"):
            submit_answer(study, "r0", v.token, "real", "3", "4a", bad, now=T0 + 120)
    v2 = submit_answer(study, "r0", v.token, "real", "3", "4a", 62.5, now=T0 + 120)
    submit_answer(study, "r0", v2.token, "synthetic", "1", "2", None, now=T0 + 130)
    tables = export_tables(study)
    rows = {r["position"]: r for r in _rows(tables["readings.csv"])}
    assert rows["1"]["reading_s"] == "120.000" and rows["1"]["confidence"] == "62.5"
    assert rows["2"]["reading_s"] == "10.000" and rows["2"]["confidence"] == ""
    assert rows["1"]["served_utc"] == "2030-03-17T17:46:40.000Z" and rows["1"]["answered_utc"] == "2030-03-17T17:48:40.000Z"
    assert list(_rows(tables["readings.csv"])[0]) == list(READINGS_COLUMNS)
    conf = _rows(tables["ratings_confidence.csv"])
    assert [(r["rating"], r["reader"]) for r in conf] == [("62.5", "r0")]


def test_answers_only_for_the_image_on_the_readers_screen(built, tmp_path):
    study = copy_study(built, tmp_path / "s", readers=2)
    with sqlite3.connect(study / study_db.DB_NAME) as con:
        listed = [i for (i,) in con.execute("SELECT image FROM reading_order WHERE reader = 'r0' ORDER BY position")]
    v = reader_view(study, "r0")
    for other in listed[1:4] + [listed[0]]:  # study image ids, even the current one's, are no answer key
        with pytest.raises(StudyError, match="not the image on your screen"):
            submit_answer(study, "r0", other, "real", "3", "4a")
    with pytest.raises(StudyError, match="not the image on your screen"):
        submit_answer(study, "r0", reader_view(study, "r1").token, "real", "3", "4a")  # another reader's
    with sqlite3.connect(study / study_db.DB_NAME) as con:
        assert con.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0
    assert submit_answer(study, "r0", v.token, "real", "3", "4a").answered == 1


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cases (case_id TEXT PRIMARY KEY, malignant INTEGER NOT NULL CHECK (malignant IN (0, 1)),
    bmode TEXT NOT NULL UNIQUE, ncc REAL, position INTEGER NOT NULL);
CREATE TABLE images (image TEXT PRIMARY KEY, case_id TEXT NOT NULL REFERENCES cases(case_id),
    kind TEXT NOT NULL CHECK (kind IN ('real', 'synthetic')), UNIQUE (case_id, kind));
CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('reader', 'lead')),
    grp TEXT CHECK (grp IN ('junior', 'senior')), password TEXT NOT NULL, seed TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE reading_order (reader TEXT NOT NULL REFERENCES users(name), position INTEGER NOT NULL,
    image TEXT NOT NULL REFERENCES images(image), PRIMARY KEY (reader, position), UNIQUE (reader, image));
CREATE TABLE answers (id INTEGER PRIMARY KEY, reader TEXT NOT NULL REFERENCES users(name),
    image TEXT NOT NULL REFERENCES images(image), judged TEXT NOT NULL CHECK (judged IN ('real', 'synthetic')),
    tsukuba TEXT NOT NULL CHECK (tsukuba IN ('1', '2', '3', '4', '5', 'cyst')),
    birads TEXT NOT NULL CHECK (birads IN ('2', '3', '4a', '4b', '4c', '5')), answered REAL NOT NULL,
    UNIQUE (reader, image));
"""


def _v1_study(built, dest: Path) -> Path:
    """A version-1 study (issue 5's schema) with the pristine study's images, one junior reader
    with both images of every case in the old order, and 3 answers."""
    import shutil

    from elastogan.app.passwords import hash_password
    from elastogan.app.reading_order import reader_seed, reading_order

    dest.mkdir()
    shutil.copytree(built.study / study_db.IMAGES_DIR, dest / study_db.IMAGES_DIR)
    with sqlite3.connect(built.study / study_db.DB_NAME) as src:
        meta = [r for r in src.execute("SELECT key, value FROM meta") if r[0] not in ("design", "repeat", "washout_days")]
        cases = src.execute("SELECT * FROM cases").fetchall()
        images = src.execute("SELECT * FROM images").fetchall()
    con = sqlite3.connect(dest / study_db.DB_NAME)
    con.executescript(V1_SCHEMA)
    con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, "1" if k == "schema_version" else v) for k, v in meta])
    con.executemany("INSERT INTO cases VALUES (?, ?, ?, ?, ?)", cases)
    con.executemany("INSERT INTO images VALUES (?, ?, ?)", images)
    study_id = dict(meta)["study_id"]
    pairs = [tuple(r) for r in con.execute(
        "SELECT r.image, s.image FROM cases c JOIN images r ON r.case_id = c.case_id AND r.kind = 'real'"
        " JOIN images s ON s.case_id = c.case_id AND s.kind = 'synthetic' ORDER BY c.case_id")]
    order = reading_order(pairs, reader_seed(study_id, "old"))
    con.execute("INSERT INTO users VALUES ('old', 'reader', 'junior', ?, '1', 1.0)", (hash_password(PASSWORD),))
    con.executemany("INSERT INTO reading_order VALUES ('old', ?, ?)", list(enumerate(order)))
    con.executemany("INSERT INTO answers (reader, image, judged, tsukuba, birads, answered) VALUES ('old', ?, 'real', '3', '4a', ?)",
                    [(order[i], 100.0 + i) for i in range(3)])
    con.commit()
    con.close()
    return dest


def test_a_version_1_study_is_migrated_keeping_every_answer(built, tmp_path):
    study = _v1_study(built, tmp_path / "v1")
    study_db.check_study(study)
    with study_db.connect(study) as con:
        assert study_db.get_meta(con, "schema_version") == "2" and study_db.design(con).name == "both"
        assert con.execute("SELECT position, judged, answered FROM answers ORDER BY position").fetchall() == [
            (0, "real", 100.0), (1, "real", 101.0), (2, "real", 102.0)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    v = reader_view(study, "old")
    assert (v.position, v.answered, v.total) == (4, 3, 2 * N_TEST_CASES)  # resumes where it stood
    # groups are free now; a new reader of a migrated study gets version 1's design (both images)
    assert add_user(study, "fellow1", PASSWORD, group="fellow") == 2 * N_TEST_CASES
    rows = _rows(export_tables(study)["readings.csv"])
    assert len(rows) == 3 and {r["design"] for r in rows} == {"both"} and rows[0]["reading_s"] == ""
    study_db.check_study(study)  # a second check is a no-op
    assert len(_rows(export_tables(study)["readings.csv"])) == 3


def test_study_create_design_options_and_their_mistakes(built, tmp_path, capsys):
    base = ["study", "create", "--data", str(built.manifest), "--checkpoint", str(built.checkpoint), "--n-cases", "4",
            "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "st"), "--design", "staged", "--repeat", "0.5"]) == 0
    assert "design staged" in capsys.readouterr().out
    with study_db.connect(tmp_path / "st") as con:
        assert study_db.design(con) == study_db.Design("staged", 0.5, 0.0)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    assert main(["study", "add-reader", str(tmp_path / "st"), "--name", "ann", "--group", "resident", "--password-file", str(pw)]) == 0
    assert "6 readings" in capsys.readouterr().out  # 4 cases, one image each, + 2 repeats
    for extra, message in ((["--repeat", "2"], "--repeat is the fraction"),
                           (["--washout-days", "3"], "--washout-days is for --design paired-sessions"),
                           (["--design", "paired-sessions", "--washout-days", "-1"], "--washout-days must be from 0 to 365")):
        assert main([*base, "--out", str(tmp_path / "bad"), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as e:
        main([*base, "--out", str(tmp_path / "bad"), "--design", "crossover"])
    assert e.value.code == 2
    with study_db.connect(tmp_path / "st") as con, pytest.raises(StudyError, match="cannot change once readers"):
        study_db.set_design(con, "split")


def test_a_long_value_is_quoted_short_in_every_refusal(built, tmp_path):
    study = copy_study(built, tmp_path / "s", readers=1)
    v = reader_view(study, "r0")
    big = "x" * 1_000_000
    for args in ((v.token, "real", big, "4a"), (v.token, big, "3", "4a"), (v.token, "real", "3", big)):
        with pytest.raises(StudyError) as e:
            submit_answer(study, "r0", *args)
        assert len(str(e.value)) < 120 and "x" * 30 not in str(e.value)
    for call in (lambda: add_user(study, big, PASSWORD), lambda: add_user(study, "ok", PASSWORD, group=big)):
        with pytest.raises(StudyError) as e:
            call()
        assert len(str(e.value)) < 160 and "x" * 30 not in str(e.value)
    assert re.fullmatch(r"'x{24}'…", study_db.short(big))
