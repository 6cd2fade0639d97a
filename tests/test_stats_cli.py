"""``elastogan stats …`` end to end, the JSON contract, and bad input (exit 2, one line)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from elastogan.cli import main
from published import FIXTURES, assert_printed, expected


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def vandyke_rows():
    with open(FIXTURES / "VanDyke.csv", newline="") as f:
        return [[r["case"], r["truth"], r["reader"], "real" if r["treatment"] == "1" else "synthetic", r["rating"]]
                for r in csv.DictReader(f)]


RATINGS_HEADER = ["case", "truth", "reader", "modality", "rating"]


def _fails(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def test_roc_cli_reproduces_van_dyke_and_writes_the_json_contract(tmp_path, capsys, vandyke_rows):
    path = _write(tmp_path / "ratings.csv", RATINGS_HEADER, vandyke_rows)
    out = tmp_path / "roc.json"
    assert main(["stats", "roc", path, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Obuchowski–Rockette (paired design, jackknife covariance, 5 readers)" in text
    res = json.loads(out.read_text())
    ref = expected()["mrmc_or_VanDyke"]
    assert set(res["modalities"]) == {"real", "synthetic"}
    assert set(res["modalities"]["real"]["readers"]["1"]) >= {"auc", "se", "ci"}
    assert_printed(res["modalities"]["real"]["readers"]["1"]["auc"], ref["auc_trt1"][0])
    comp = res["comparisons"][0]
    assert set(comp) >= {"diff", "z", "p", "ci"} and comp["design"] == "paired"
    rr = res["mrmc"]["random_readers_random_cases"]
    assert set(rr) >= {"F", "df2", "p", "diff", "ci"}
    assert_printed(rr["F"], ref["random_readers_random_cases"]["F_exact"])
    assert_printed(rr["df2"], ref["random_readers_random_cases"]["ddf"])
    assert {"fixed_readers_random_cases", "random_readers_fixed_cases"} <= set(res["mrmc"])
    assert main(["stats", "roc", path, "--covariance", "delong", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["mrmc"]["covariance"] == "delong"


def test_roc_cli_unpaired_when_cases_are_disjoint(tmp_path, capsys, vandyke_rows):
    rows = [[f"{r[3]}-{r[0]}", *r[1:]] for r in vandyke_rows]
    path = _write(tmp_path / "ratings.csv", RATINGS_HEADER, rows)
    out = tmp_path / "roc.json"
    assert main(["stats", "roc", path, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["comparisons"][0]["design"] == "unpaired" and "df" in res["comparisons"][0]
    assert res["mrmc"]["design"] == "nested"


def test_birads_order_and_diagnostic(tmp_path, capsys, vandyke_rows):
    birads = {"1": "2", "2": "3", "3": "4a", "4": "4b", "5": "5"}
    rows = [[*r[:4], birads[r[4]]] for r in vandyke_rows]
    path = _write(tmp_path / "ratings.csv", RATINGS_HEADER, rows)
    out = tmp_path / "d.json"
    assert main(["stats", "diagnostic", path, "--order", "2,3,4a,4b,4c,5", "--positive-from", "4a",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    acc = res["per_modality"]["real"]["1"]
    truth = np.array([int(r[1]) for r in rows if r[2] == "1" and r[3] == "real"])
    call = np.array([r[4] in ("4a", "4b", "4c", "5") for r in rows if r[2] == "1" and r[3] == "real"])
    assert acc["sensitivity"]["value"] == pytest.approx(call[truth == 1].mean())
    assert set(acc) >= {"sensitivity", "specificity", "ppv", "npv"}
    comp = res["comparisons"][0]
    assert comp["design"] == "paired" and {"chi2", "p"} <= set(comp["sensitivity"]) and "statistic" in comp["ppv"]
    # the same ratings as ordinal categories give the same AUCs as the numbers
    out2 = tmp_path / "r.json"
    assert main(["stats", "roc", path, "--order", "2,3,4a,4b,4c,5", "--out", str(out2)]) == 0
    assert_printed(json.loads(out2.read_text())["modalities"]["synthetic"]["readers"]["4"]["auc"],
                   expected()["mrmc_or_VanDyke"]["auc_trt2"][3])


def _scores_rows():
    """Fleiss 1971 diagnoses as condition 'real' and a shuffled copy as 'synthetic' (same cases)."""
    with open(FIXTURES / "diagnoses.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    out = []
    rng = np.random.default_rng(0)
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            out.append([f"s{i}", f"rater{j + 1}", v[0], "real"])
        for j, v in enumerate(rng.permutation(r)):
            out.append([f"s{i}", f"rater{j + 1}", v[0], "synthetic"])
    return out


def test_agreement_cli_reproduces_fleiss_and_compares_conditions(tmp_path, capsys):
    path = _write(tmp_path / "scores.csv", ["case", "reader", "score", "condition"], _scores_rows())
    out = tmp_path / "a.json"
    assert main(["stats", "agreement", path, "--n-boot", "200", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    real = res["conditions"]["real"]
    assert set(real["fleiss_kappa"]) >= {"value", "se", "ci"}
    assert_printed(real["fleiss_kappa"]["value"], expected()["fleiss_1971"]["kappa"])
    # per-case permutation of readers changes nothing in Fleiss' kappa
    assert res["conditions"]["synthetic"]["fleiss_kappa"]["value"] == pytest.approx(real["fleiss_kappa"]["value"], abs=1e-14)
    assert set(real["cohen_kappa"]) == {"unweighted", "linear", "quadratic"}
    assert -1 <= real["krippendorff_alpha"] <= 1
    comp = res["comparison"]
    assert set(comp) >= {"diff", "ci", "p"} and comp["paired"] is True and comp["diff"] == pytest.approx(0, abs=1e-14)


def test_authenticity_cli(tmp_path, capsys):
    rows = []
    for rd, group in (("a", "junior"), ("b", "senior")):
        for i in range(20):
            rows.append([rd, f"c{i}", i % 2, (i // 2) % 2, group])
    path = _write(tmp_path / "answers.csv", ["reader", "case", "is_synthetic", "judged_synthetic", "group"], rows)
    out = tmp_path / "auth.json"
    assert main(["stats", "authenticity", path, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    for block in (res["overall"], res["readers"]["a"], res["groups"]["senior"]):
        assert set(block) >= {"accuracy", "p", "ci", "fraction_synthetic_judged_real", "fraction_real_judged_real", "d_prime"}
    assert res["overall"]["accuracy"] == 0.5 and res["overall"]["p"] == 1.0


def test_report_folder(tmp_path, capsys, vandyke_rows):
    birads = {"1": "2", "2": "3", "3": "4a", "4": "4b", "5": "5"}
    _write(tmp_path / "ratings.csv", RATINGS_HEADER, [[*r[:4], birads[r[4]]] for r in vandyke_rows])
    _write(tmp_path / "scores.csv", ["case", "reader", "score", "condition"], _scores_rows())
    _write(tmp_path / "per_case.csv", ["case", "ncc"], [["a", 0.5], ["b", 0.7], ["c", 0.9]])
    assert main(["stats", "report", str(tmp_path), "--n-boot", "200"]) == 0
    rep = tmp_path / "report"
    md = (rep / "report.md").read_text()
    for heading in ("## Image similarity", "## Agreement of Tsukuba scores", "## BI-RADS ROC", "## Diagnostic accuracy"):
        assert heading in md
    assert "Not in the export (sections skipped): answers.csv" in md
    assert "| NCC | 0.700 ± 0.200 | 0.700 | 0.500–0.900 | 3 | 0.70 ± 0.08" in md
    res = json.loads((rep / "report.json").read_text())
    assert res["image_metrics"]["ncc"]["n"] == 3 and res["missing"] == ["answers.csv"] and res["empty"] == []
    assert "![NCC per case](ncc_histogram.png)" in md
    with Image.open(rep / "ncc_histogram.png") as im:
        assert im.size == (640, 420) and len(im.getcolors(100000)) > 2
    with Image.open(rep / "roc.png") as im:
        assert im.size == (640, 640) and im.mode == "RGB"
        assert len(im.getcolors(100000)) > 3  # curves drawn, not a blank canvas


# ----- bad input: one clear line, exit 2, never a NaN -------------------------------------


def test_missing_column(tmp_path, capsys):
    path = _write(tmp_path / "r.csv", ["case", "reader", "modality", "rating"], [["1", "a", "m", "3"]])
    _fails(capsys, ["stats", "roc", path], "missing column(s) truth")


def test_rating_outside_the_declared_order(tmp_path, capsys, vandyke_rows):
    rows = [list(r) for r in vandyke_rows[:40]]
    rows[5][4] = "4d"
    path = _write(tmp_path / "r.csv", RATINGS_HEADER, rows)
    _fails(capsys, ["stats", "roc", path, "--order", "1,2,3,4,5"], "outside the declared order 1,2,3,4,5", "'4d'",
           "line 7")


def test_unknown_category_without_order(tmp_path, capsys):
    path = _write(tmp_path / "s.csv", ["case", "reader", "score"], [["1", "a", "3"], ["1", "b", "cyst"]])
    _fails(capsys, ["stats", "agreement", path], "score must be a number, or declare the categories with --order")


def test_unknown_score_category_with_order(tmp_path, capsys):
    path = _write(tmp_path / "s.csv", ["case", "reader", "score"], [["1", "a", "3"], ["1", "b", "7"]])
    _fails(capsys, ["stats", "agreement", path, "--order", "1,2,3,4,5"], "outside the declared order")


def test_one_class_truth(tmp_path, capsys):
    rows = [[f"c{i}", "1", r, "m", str(i % 5 + 1)] for i in range(10) for r in ("a", "b")]
    path = _write(tmp_path / "r.csv", RATINGS_HEADER, rows)
    _fails(capsys, ["stats", "roc", path], "one-class truth", "10 positive, 0 negative")


def test_reader_who_read_nothing(tmp_path, capsys, vandyke_rows):
    rows = [r for r in vandyke_rows if not (r[2] == "5" and r[3] == "synthetic")]
    path = _write(tmp_path / "r.csv", RATINGS_HEADER, rows)
    _fails(capsys, ["stats", "roc", path], "reader '5' read nothing in modality 'synthetic'")


def test_fewer_than_two_readers_for_agreement(tmp_path, capsys):
    path = _write(tmp_path / "s.csv", ["case", "reader", "score"], [["1", "a", "3"], ["2", "a", "2"]])
    _fails(capsys, ["stats", "agreement", path], "agreement needs at least 2 readers, got 1")


def test_empty_cell_duplicate_truth_and_binary(tmp_path, capsys):
    path = _write(tmp_path / "r.csv", RATINGS_HEADER, [["1", "1", "a", "m", ""]])
    _fails(capsys, ["stats", "roc", path], "empty cell(s): line 2 column rating")
    path = _write(tmp_path / "r.csv", RATINGS_HEADER, [["1", "1", "a", "m", "3"], ["1", "1", "a", "m", "4"]])
    _fails(capsys, ["stats", "roc", path], "line 3: second answer for modality 'm', reader 'a', case '1'")
    path = _write(tmp_path / "r.csv", RATINGS_HEADER, [["1", "1", "a", "m", "3"], ["1", "0", "b", "m", "4"]])
    _fails(capsys, ["stats", "roc", path], "case '1' has truth 0 but truth 1 on line 2")
    path = _write(tmp_path / "a.csv", ["reader", "case", "is_synthetic", "judged_synthetic"], [["a", "1", "yes", "0"]])
    _fails(capsys, ["stats", "authenticity", path], "is_synthetic must be 0 or 1")


def test_missing_file_and_bad_order(tmp_path, capsys):
    _fails(capsys, ["stats", "roc", str(tmp_path / "nope.csv")], "no such file")
    path = _write(tmp_path / "r.csv", RATINGS_HEADER, [["1", "1", "a", "m", "3"]])
    _fails(capsys, ["stats", "roc", path, "--order", "2,3,3"], "category listed twice: 3")
    _fails(capsys, ["stats", "report", str(tmp_path / "empty_dir_missing")], "not a folder")


def test_three_conditions_give_pairwise_comparisons_and_disjoint_cases_are_unpaired(tmp_path, capsys):
    rows = _scores_rows()
    rows += [[f"other{r[0]}", r[1], r[2], "third"] for r in rows if r[3] == "real"]
    path = _write(tmp_path / "scores.csv", ["case", "reader", "score", "condition"], rows)
    out = tmp_path / "a.json"
    assert main(["stats", "agreement", path, "--n-boot", "100", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "comparison" not in res
    pairs = {tuple(c["conditions"]): c["paired"] for c in res["comparisons"]}
    assert pairs == {("real", "synthetic"): True, ("real", "third"): False, ("synthetic", "third"): False}


def test_report_skips_header_only_files(tmp_path, capsys):
    _write(tmp_path / "answers.csv", ["reader", "case", "is_synthetic", "judged_synthetic"], [])
    _write(tmp_path / "per_case.csv", ["case", "ncc"], [["a", 0.5], ["b", 0.7]])
    assert main(["stats", "report", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    res = json.loads((tmp_path / "r" / "report.json").read_text())
    assert res["empty"] == ["answers.csv"] and "authenticity" not in res
    assert "No rows yet (sections skipped): answers.csv" in (tmp_path / "r" / "report.md").read_text()
    (tmp_path / "per_case.csv").write_text("case,ncc\n")
    _fails(capsys, ["stats", "report", str(tmp_path)], "only header lines in answers.csv, per_case.csv")


def test_report_counts_undefined_ncc_instead_of_failing(tmp_path):
    # `elastogan evaluate` writes nan for a case whose synthetic map is constant in the ROI.
    _write(tmp_path / "per_case.csv", ["case", "ncc"], [["a", 0.5], ["b", "nan"], ["c", 0.9]])
    assert main(["stats", "report", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "report" / "report.json").read_text())
    assert res["image_metrics"]["ncc"]["n"] == 2
    assert res["image_metrics"]["ncc"]["n_undefined"] == 1
    assert res["image_metrics"]["ncc"]["mean"] == pytest.approx(0.7)


# ----- undefined analyses: a clear line, or a section marked undefined in the report ------


def test_agreement_with_a_single_category_is_a_clear_error(tmp_path, capsys):
    rows = [[c, r, "3"] for c in ("1", "2") for r in ("a", "b")]
    path = _write(tmp_path / "s.csv", ["case", "reader", "score"], rows)
    _fails(capsys, ["stats", "agreement", path], "all 4 scores are '3'", "one category")
    # A declared scale does not help: with every rating in one category chance agreement is 1.
    _fails(capsys, ["stats", "agreement", path, "--order", "1,2,3,4,5"], "all 4 scores are '3'")
    both = [[*r, "real"] for r in [["1", "a", "2"], ["1", "b", "3"], ["2", "a", "3"], ["2", "b", "3"]]]
    both += [[*r, "synthetic"] for r in rows]
    path = _write(tmp_path / "s2.csv", ["case", "reader", "score", "condition"], both)
    _fails(capsys, ["stats", "agreement", path], "condition 'synthetic': all 4 scores are '3'")


def _perfect_ratings(n_cases: int = 12) -> list[list]:
    """Two readers, two modalities, every reader perfect: AUC 1 everywhere, no MS(T×R)."""
    return [[f"c{i}", str(i % 2), rd, m, str(4 if i % 2 else 2)]
            for m in ("real", "synthetic") for rd in ("a", "b") for i in range(n_cases)]


def test_roc_keeps_the_reader_aucs_when_only_mrmc_is_undefined(tmp_path, capsys, vandyke_rows):
    path = _write(tmp_path / "r.csv", RATINGS_HEADER, _perfect_ratings())
    out = tmp_path / "roc.json"
    assert main(["stats", "roc", path, "--out", str(out)]) == 0
    assert "Obuchowski–Rockette: undefined for these data: MRMC undefined: the reader AUCs have no reader-by-modality" \
        in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["modalities"]["synthetic"]["readers"]["b"]["auc"] == 1.0
    assert set(res["mrmc"]) == {"undefined"} and "MS(T×R) = 0" in res["mrmc"]["undefined"]
    # One positive case: DeLong AUCs exist, the jackknife does not (the DeLong covariance does).
    first_positive = next(r[0] for r in vandyke_rows if r[1] == "1")
    rows = [r for r in vandyke_rows if r[1] == "0" or r[0] == first_positive]
    path = _write(tmp_path / "one.csv", RATINGS_HEADER, rows)
    assert main(["stats", "roc", path, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["mrmc"] == {"undefined": "jackknife needs at least 2 positive and 2 negative cases, got 1 and 69"}
    assert len(res["modalities"]["real"]["readers"]) == 5
    assert main(["stats", "roc", path, "--covariance", "delong", "--out", str(out)]) == 0
    assert "F" in json.loads(out.read_text())["mrmc"]["random_readers_random_cases"]


def test_report_marks_undefined_sections_and_writes_the_others(tmp_path, capsys):
    _write(tmp_path / "ratings.csv", RATINGS_HEADER,
           [[*r[:4], {"2": "3", "4": "4b"}[r[4]]] for r in _perfect_ratings()])
    _write(tmp_path / "scores.csv", ["case", "reader", "score", "condition"], _scores_rows())
    # reader b saw only synthetic images: authenticity needs both kinds from every reader
    answers = [["a", f"c{i}", i % 2, 0] for i in range(10)] + [["b", f"c{i}", 1, 1] for i in range(5)]
    _write(tmp_path / "answers.csv", ["reader", "case", "is_synthetic", "judged_synthetic"], answers)
    assert main(["stats", "report", str(tmp_path), "--n-boot", "200"]) == 0
    res = json.loads((tmp_path / "report" / "report.json").read_text())
    assert res["authenticity"] == {"undefined": "reader 'b': saw 5 synthetic and 0 real images; "
                                                "authenticity needs both kinds"}
    assert_printed(res["agreement"]["conditions"]["real"]["fleiss_kappa"]["value"], expected()["fleiss_1971"]["kappa"])
    assert res["roc"]["modalities"]["real"]["readers"]["a"]["auc"] == 1.0 and "undefined" in res["roc"]["mrmc"]
    assert res["diagnostic"]["per_modality"]["real"]["a"]["sensitivity"]["value"] == 1.0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Authenticity: undefined for these data (section skipped): reader 'b': saw 5 synthetic" in md
    assert "## Authenticity" not in md and "## Agreement of Tsukuba scores" in md and "## Diagnostic accuracy" in md
    assert "Obuchowski–Rockette: undefined — MRMC undefined" in md
    assert (tmp_path / "report" / "roc.png").is_file()
    # An incomplete reader: ROC and diagnostic accuracy are undefined, the rest stands.
    rows = [r for r in _perfect_ratings() if not (r[2] == "b" and r[3] == "synthetic")]
    _write(tmp_path / "ratings.csv", RATINGS_HEADER, [[*r[:4], {"2": "3", "4": "4b"}[r[4]]] for r in rows])
    assert main(["stats", "report", str(tmp_path), "--n-boot", "200", "--out", str(tmp_path / "r2")]) == 0
    res = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert res["roc"] == res["diagnostic"] == {"undefined": "reader 'b' read nothing in modality 'synthetic'"}
    assert "fleiss_kappa" in res["agreement"]["conditions"]["real"]
    assert not (tmp_path / "r2" / "roc.png").exists()


def test_report_still_refuses_bad_files_and_flags(tmp_path, capsys):
    _write(tmp_path / "scores.csv", ["case", "reader", "score", "condition"], _scores_rows())
    _write(tmp_path / "ratings.csv", ["case", "reader", "modality", "rating"], [["1", "a", "m", "3"]])
    _fails(capsys, ["stats", "report", str(tmp_path)], "ratings.csv: missing column(s) truth")
    _write(tmp_path / "ratings.csv", RATINGS_HEADER, [[*r[:4], {"2": "3", "4": "4b"}[r[4]]] for r in _perfect_ratings()])
    _fails(capsys, ["stats", "report", str(tmp_path), "--positive-from", "6"], "--positive-from '6' is not in --order")
    _fails(capsys, ["stats", "report", str(tmp_path), "--n-boot", "10"], "at least 100 bootstrap replicates, got 10")
    assert not (tmp_path / "report" / "report.json").exists()


def test_a_folder_given_for_a_csv_is_named_as_such(tmp_path, capsys):
    _fails(capsys, ["stats", "roc", str(tmp_path)], f"{tmp_path}: is a folder; expected a CSV file")


def test_power_cli_from_a_pilot_and_from_flags(tmp_path, capsys, vandyke_rows):
    path = _write(tmp_path / "ratings.csv", RATINGS_HEADER, vandyke_rows)
    pilot = tmp_path / "pilot.json"
    assert main(["stats", "roc", path, "--out", str(pilot)]) == 0
    out = tmp_path / "power.json"
    assert main(["stats", "power", str(pilot), "--effect", "0.04380032", "--readers", "3,6,10", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not reachable: 3 readers" in text
    res = json.loads(out.read_text())
    assert [r["cases"] for r in res["sample_sizes"]] == [None, 251, 163]  # RJafroc's Van Dyke table
    assert res["pilot"]["n_cases"] == 114 and res["target_power"] == 0.8
    grid = tmp_path / "grid.json"
    assert main(["stats", "power", "--effect", "0.05", "--var-tr", "0.0002", "--var", "0.0008", "--cov1", "0.00035",
                 "--cov2", "0.00034", "--cov3", "0.00024", "--pilot-cases", "114", "--readers", "5",
                 "--cases", "114", "--out", str(grid)]) == 0
    (g,) = json.loads(grid.read_text())["grid"]
    assert (g["readers"], g["cases"]) == (5, 114) and 0 < g["power"] < 1


def test_power_cli_mistakes(tmp_path, capsys):
    _fails(capsys, ["stats", "power", "--effect", "0.05", "--var", "0.001"], "missing --var-tr", "--pilot-cases")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _fails(capsys, ["stats", "power", str(bad), "--effect", "0.05"], "not JSON")
    _fails(capsys, ["stats", "power", str(tmp_path / "none.json"), "--effect", "0.05"], "no such file")
    ok = tmp_path / "roc.json"
    ok.write_text(json.dumps({"modalities": {}}))
    _fails(capsys, ["stats", "power", str(ok), "--effect", "0.05"], "no \"mrmc\" block")
    _fails(capsys, ["stats", "power", str(ok), "--effect", "0.05", "--var", "1"], "not both")
    _fails(capsys, ["stats", "power", "--effect", "0.05", "--var-tr", "0", "--var", "0.001", "--cov1", "0",
                    "--cov2", "0", "--cov3", "0", "--pilot-cases", "50", "--readers", "4,x"], "--readers '4,x'")
