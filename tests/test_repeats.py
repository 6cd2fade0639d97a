"""Repeated readings (intra-reader κ), reading times, and the export columns that carry them.

The end-to-end check is a simulated study with a known answer: Van Dyke's ratings with cases
nested within readers (a split-plot whose OR result MRMCaov prints) plus repeated readings and
reading times. The repeats must not move the MRMC result by a digit; κ, the fraction repeated
and the time medians are fixed by construction.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from elastogan.cli import main
from elastogan.errors import InputFileError, UserError
from elastogan.eval.agreement import cohen_kappa
from elastogan.eval.reader_stats import repeats
from elastogan.eval.reader_stats.stats_io import first_readings, read_authenticity
from published import FIXTURES, assert_printed


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def test_pairs_and_kappa_by_hand():
    reader = np.array(["a"] * 6 + ["b"] * 4, dtype=object)
    case = np.array(["1", "2", "3", "1", "2", "3", "1", "2", "1", "2"], dtype=object)
    answer = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    rep = np.array([0, 0, 0, 1, 1, 1, 0, 0, 1, 1], bool)
    rd, a1, a2 = repeats.pair_repeats(reader, [case], answer, rep)
    assert rd.tolist() == ["a", "a", "a", "b", "b"]
    assert a1.tolist() == [0, 1, 1, 0, 1] and a2.tolist() == [0, 1, 0, 1, 1]
    res = repeats.intra_reader_kappa(rd, a1, a2, ["no", "yes"], ordinal=False)
    # pooled table [[1, 1], [1, 2]]: po = 3/5, pe = (2·2 + 3·3)/25 = 13/25, κ = (15/25 − 13/25)/(12/25) = 1/6
    assert res["pooled"]["unweighted"]["value"] == pytest.approx(1 / 6, rel=1e-12)
    assert res["pooled"]["agreement"] == pytest.approx(0.6)
    assert res["readers"]["a"]["n_pairs"] == 3
    # reader b: table [[0, 1], [0, 1]]: po = 1/2 = pe (the repeat always "yes"): κ = 0
    assert res["readers"]["b"]["unweighted"]["value"] == 0.0 and res["readers"]["b"]["agreement"] == 0.5
    one = repeats.intra_reader_kappa(rd[3:], a2[3:], a2[3:], ["no", "yes"], ordinal=False)
    assert "undefined" in one["pooled"]  # both readings "yes" only: κ undefined, said so
    assert res["weights"] == ["unweighted"]


def test_repeat_without_a_first_reading_is_refused():
    with pytest.raises(UserError, match="reader 'a': a repeated reading of '9' without a first reading"):
        repeats.pair_repeats(np.array(["a", "a"], dtype=object), [np.array(["1", "9"], dtype=object)],
                             np.array([0, 1]), np.array([False, True]))


def test_reading_time_summary():
    t = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    by = {"reader": np.array(["a", "a", "a", "b", "b", "b"], dtype=object)}
    res = repeats.reading_times(t, by)
    assert res["overall"] == {"n": 5, "median": 3.0, "q1": 2.0, "q3": 4.0, "mean": 22.0,
                              "sd": pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1)), "min": 1.0, "max": 100.0,
                              "total": 110.0}
    assert res["n_missing"] == 1
    assert res["by"]["reader"]["b"]["median"] == 52.0 and res["by"]["reader"]["b"]["n"] == 2


def test_export_columns_are_read_strictly(tmp_path):
    head = ["reader", "case", "is_synthetic", "judged_synthetic", "repeat", "reading_time_s"]
    ok = _write(tmp_path / "a.csv", head, [["a", "1", 1, 1, "false", "3.5"], ["a", "1", 1, 0, "TRUE", ""],
                                           ["a", "2", 0, 0, "0", "2"]])
    ans = read_authenticity(ok)
    assert ans.repeat.tolist() == [False, True, False]
    assert np.isnan(ans.reading_time_s[1]) and ans.reading_time_s[0] == 3.5
    assert first_readings(ans).case.tolist() == ["1", "2"]
    bad = _write(tmp_path / "b.csv", head, [["a", "1", 1, 1, "maybe", "1"]])
    with pytest.raises(InputFileError, match="column repeat must be 0/1 or true/false: line 2: 'maybe'"):
        read_authenticity(bad)
    bad = _write(tmp_path / "c.csv", head, [["a", "1", 1, 1, "0", "-2"]])
    with pytest.raises(InputFileError, match="reading_time_s must be a number of seconds ≥ 0"):
        read_authenticity(bad)
    twice = _write(tmp_path / "d.csv", head, [["a", "1", 1, 1, "1", "1"], ["a", "1", 1, 1, "1", "1"]])
    with pytest.raises(InputFileError, match="second answer"):
        read_authenticity(twice)


# --- a simulated study with a known answer ----------------------------------------------------


def _study(tmp_path):
    """Van Dyke, cases nested within readers (case2), as the app would export it, plus:
    reader 1 re-rates 20 cases of modality real (15 identical, 5 one category up), every first
    reading takes 10 s (real) or 20 s (synthetic), every repeat 5 s; an authenticity reading in
    which reader r1 repeats 10 images (8 identical, 2 flipped)."""
    with open(FIXTURES / "VanDyke.csv", newline="") as f:
        vd = list(csv.DictReader(f))
    rows = []
    for r in vd:
        modality = "real" if r["treatment"] == "1" else "synthetic"
        rows.append([r["case2"], r["truth"], r["reader"], modality, r["rating"], "0",
                     "10" if modality == "real" else "20"])
    again = [r for r in rows if r[2] == "1" and r[3] == "real"][:20]
    for k, r in enumerate(again):
        rating = int(r[4]) if k < 15 else min(int(r[4]) + 1, 5)
        rows.append([*r[:4], str(rating), "1", "5"])
    _write(tmp_path / "ratings.csv", ["case", "truth", "reader", "modality", "rating", "repeat", "reading_time_s"], rows)
    answers = [["r1", f"i{k}", k % 2, (k // 2) % 2, "0", "4"] for k in range(40)]
    answers += [["r1", f"i{k}", k % 2, (k // 2) % 2 if k < 8 else 1 - (k // 2) % 2, "1", "3"] for k in range(10)]
    answers += [["r2", f"i{k}", k % 2, k % 2, "0", "6"] for k in range(40)]
    _write(tmp_path / "answers.csv", ["reader", "case", "is_synthetic", "judged_synthetic", "repeat", "reading_time_s"],
           answers)
    return again


def test_roc_with_repeats_keeps_the_published_split_plot_result(tmp_path, capsys):
    again = _study(tmp_path)
    out = tmp_path / "roc.json"
    assert main(["stats", "roc", str(tmp_path / "ratings.csv"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "split-plot design" in text and "Intra-reader agreement" in text and "Reading time" in text
    res = json.loads(out.read_text())
    rr = res["mrmc"]["random_readers_random_cases"]
    assert res["mrmc"]["design"] == "split-plot" and len(res["mrmc"]["blocks"]) == 5
    assert_printed(rr["F"], "8.704")  # MRMCaov, cases nested within readers: repeats left out
    assert_printed(rr["p"], "0.04195875")
    intra = res["intra_reader"]
    assert intra["weights"] == ["unweighted", "linear", "quadratic"]
    assert intra["pooled"]["n_pairs"] == 20 and intra["pooled"]["agreement"] == 0.75
    assert set(intra["readers"]) == {"1"}
    first = np.array([int(r[4]) for r in again]) - 1
    second = np.r_[first[:15], np.minimum(first[15:] + 1, 4)]
    table = np.zeros((5, 5))
    np.add.at(table, (first, second), 1)
    assert intra["pooled"]["linear"]["value"] == pytest.approx(cohen_kappa(table, "linear")["value"], rel=1e-12)
    times = res["reading_time"]
    assert times["overall"]["n"] == 1140 + 20
    assert times["by"]["reading"]["first"]["median"] == 15.0 and times["by"]["reading"]["repeat"]["median"] == 5.0
    assert times["by"]["modality"]["synthetic"]["median"] == 20.0


def test_report_has_the_new_sections(tmp_path, capsys):
    _study(tmp_path)
    assert main(["stats", "report", str(tmp_path), "--order", "1,2,3,4,5", "--positive-from", "4"]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Obuchowski–Rockette, random readers and cases (split-plot design" in md
    assert "Reader blocks: reader 1 on 114 cases; reader 2 on 114 cases" in md
    assert "## Repeated readings and reading times: bi-rads roc" in md
    assert "## Repeated readings and reading times: authenticity" in md
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    auth = rep["authenticity"]
    assert auth["readers"]["r1"]["n"] == 40  # first readings only
    assert auth["intra_reader"]["readers"]["r1"]["agreement"] == 0.8
    # r1's 10 pairs: first answers (k // 2) % 2 for k < 10, the last two flipped
    first = np.array([(k // 2) % 2 for k in range(10)])
    second = np.r_[first[:8], 1 - first[8:]]
    table = np.zeros((2, 2))
    np.add.at(table, (first, second), 1)
    assert auth["intra_reader"]["readers"]["r1"]["unweighted"]["value"] == pytest.approx(cohen_kappa(table)["value"])
    assert auth["reading_time"]["by"]["reader"]["r2"]["median"] == 6.0
    # reader r2 names every image right: H = 1, F = 0, the corrected d' is labelled
    assert auth["readers"]["r2"]["d_prime_method"].startswith("log-linear")
    assert "† d′ with the log-linear correction" in md


READINGS_HEADER = ["reader", "group", "case", "image", "modality", "truth", "judged_synthetic", "tsukuba", "birads",
                   "confidence", "birads_bmode", "confidence_bmode", "design", "session", "staged", "repeat", "position",
                   "served_utc", "answered_utc", "reading_s", "reading_bmode_s"]


def _readings_rows():
    """Two readers × 6 images, the first 4 shown again: r1 repeats every answer, r2 changes
    its real/synthetic call on one image and its BI-RADS by one category on another."""
    rows = []
    for rd, grp in (("r1", "junior"), ("r2", "senior")):
        for k in range(6):
            kind = "real" if k % 2 else "synthetic"
            judged, tsukuba, birads = k % 2, str(1 + k % 5), ("3", "4a", "4b", "5", "2", "3")[k]
            rows.append([rd, grp, f"c{k}", f"c{k}/{kind}", kind, k % 2, judged, tsukuba, birads, "", "", "", "split", 1,
                         0, 0, k, "", "", 10 + k, ""])
            if k < 4:
                j2 = 1 - judged if (rd, k) == ("r2", 1) else judged
                b2 = "4c" if (rd, k) == ("r2", 2) else birads
                rows.append([rd, grp, f"c{k}", f"c{k}/{kind}", kind, k % 2, j2, tsukuba, b2, "", "", "", "split", 1,
                             0, 1, 6 + k, "", "", 4, ""])
    return rows


def test_readings_export_kappa_and_times(tmp_path, capsys):
    path = _write(tmp_path / "readings.csv", READINGS_HEADER, _readings_rows())
    out = tmp_path / "readings.json"
    assert main(["stats", "readings", path, "--score-order", "cyst,1,2,3,4,5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("20 readings, 8 of them repeats") and "Intra-reader agreement" in text
    res = json.loads(out.read_text())
    assert (res["n_readings"], res["n_repeats"]) == (20, 8)
    judged = res["intra_reader"]["judged_synthetic"]
    assert judged["readers"]["r1"]["agreement"] == 1.0 and judged["readers"]["r1"]["unweighted"]["value"] == 1.0
    assert judged["readers"]["r2"]["agreement"] == 0.75 and judged["pooled"]["n_pairs"] == 8
    # r2, judged: first (0, 1, 0, 1), repeat (0, 0, 0, 1): table [[2, 0], [1, 1]] → κ = 0.5
    assert judged["readers"]["r2"]["unweighted"]["value"] == pytest.approx(0.5, rel=1e-12)
    birads = res["intra_reader"]["birads"]
    assert birads["categories"] == ["2", "3", "4a", "4b", "4c", "5"] and birads["pooled"]["agreement"] == 7 / 8
    assert res["intra_reader"]["tsukuba"]["pooled"]["agreement"] == 1.0
    assert "birads_bmode" not in res["intra_reader"]  # not asked in this design
    times = res["reading_time"]["reading_s"]
    assert times["by"]["reading"]["repeat"]["median"] == 4.0 and times["by"]["reading"]["first"]["median"] == 12.5
    assert set(times["by"]) == {"reader", "group", "modality", "design", "session", "staged", "reading"}
    assert "reading_bmode_s" not in res["reading_time"]  # every cell empty


def test_report_reads_the_readings_export(tmp_path, capsys):
    _study(tmp_path)
    _write(tmp_path / "readings.csv", READINGS_HEADER, _readings_rows())
    assert main(["stats", "report", str(tmp_path), "--order", "1,2,3,4,5", "--positive-from", "4"]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Repeated readings and reading times\n\n20 readings, 8 of them repeats (readings.csv)." in md
    assert "Intra-reader agreement, first against repeated reading (Cohen's κ, 95% CI) — real or synthetic" in md
    # the readings' BI-RADS lie outside the report's --order 1..5: that κ is undefined, the rest stands
    assert "Intra-reader agreement — BI-RADS: undefined — readings: birads value(s) outside the declared order" in md
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    assert rep["readings"]["reading_time"]["reading_s"]["overall"]["n"] == 20


def test_report_reads_the_staged_and_confidence_ratings(tmp_path, capsys):
    """Van Dyke's two treatments as B-mode alone vs with the elastogram (paired), and its
    ratings ×20 as confidence: both sections reproduce the published OR F."""
    with open(FIXTURES / "VanDyke.csv", newline="") as f:
        vd = list(csv.DictReader(f))
    birads = {"1": "2", "2": "3", "3": "4a", "4": "4b", "5": "5"}
    staged = [[r["case"], r["truth"], r["reader"], "bmode" if r["treatment"] == "1" else "bmode+elastogram",
               birads[r["rating"]]] for r in vd]
    conf = [[r["case"], r["truth"], r["reader"], "real" if r["treatment"] == "1" else "synthetic",
             str(20 * int(r["rating"]))] for r in vd]
    header = ["case", "truth", "reader", "modality", "rating"]
    _write(tmp_path / "ratings.csv", header, staged)
    _write(tmp_path / "ratings_staged.csv", header, staged)
    _write(tmp_path / "ratings_confidence.csv", header, conf)
    assert main(["stats", "report", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    for key in ("roc_staged", "roc_confidence"):
        assert_printed(rep[key]["mrmc"]["random_readers_random_cases"]["F"], "4.456319")  # OR-DBM MRMC 2.51
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## BI-RADS ROC, staged reading: B-mode alone, then with the elastogram" in md
    assert "## Confidence ROC (ratings 0–100)" in md and "bmode − bmode+elastogram" in md
