"""Manifest validation: every problem at once, with line numbers and fields."""

import json

import numpy as np
import pytest

from elastogan.cli import main
from elastogan.data.images import write_png, write_strain
from elastogan.data.manifest import read_manifest, validate_manifest


def _case(root, name, h=32, w=40):
    write_png(root / f"{name}_b.png", np.zeros((h, w), np.uint8))
    write_png(root / f"{name}_e.png", np.zeros((h, w, 3), np.uint8))
    write_strain(root / f"{name}_s.npy", np.full((h, w), 0.5, np.float32))
    return {"bmode": f"{name}_b.png", "emode": f"{name}_e.png", "strain": f"{name}_s.npy", "roi": [2, 2, 30, 30]}


def _write(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))


def test_valid_manifest_reads(tmp_path):
    recs = [dict(id=f"c{i}", patient_id=f"p{i}", split=s, tsukuba=t, birads="4a", **_case(tmp_path, f"c{i}"))
            for i, (s, t) in enumerate([("train", 1), ("val", "cyst"), ("test", 5)])]
    _write(tmp_path / "m.jsonl", recs)
    m = read_manifest(tmp_path / "m.jsonl")
    assert [c.split for c in m.cases] == ["train", "val", "test"]
    assert m.cases[0].bmode == tmp_path / "c0_b.png"
    assert main(["manifest", "validate", str(tmp_path / "m.jsonl")]) == 0


def test_every_problem_is_reported_with_line_and_field(tmp_path, capsys):
    good = _case(tmp_path, "a")
    write_png(tmp_path / "small.png", np.zeros((16, 16), np.uint8))
    (tmp_path / "junk.png").write_bytes(b"not a png")
    lines = [
        dict(id="a", patient_id="p1", split="train", **good),                           # 1 ok
        '{"id": "b", "patient_id": ',                                                     # 2 broken JSON
        dict(id="a", patient_id="p2", split="train", **good),                           # 3 duplicate id
        dict(id="c", patient_id="p1", split="test", **good),                            # 4 patient in 2 splits
        dict(id="d", patient_id="p3", split="train", bmode="missing.png"),              # 5 missing file
        dict(id="e", patient_id="p4", split="train", bmode="junk.png"),                 # 6 unreadable
        dict(good, id="f", patient_id="p5", split="train", strain="small.png"),         # 7 wrong shape
        dict(good, id="g", patient_id="p6", split="train", tsukuba=7, birads="6"),      # 8 unknown labels
        dict(good, id="h", patient_id="p7", split="holdout", colour="x"),               # 9 unknown split, field
        dict(id="i", split="train", bmode="a_b.png"),                                    # 10 missing patient
    ]
    _write(tmp_path / "m.jsonl", lines)
    _, problems = validate_manifest(tmp_path / "m.jsonl")
    found = {(p.line, p.field) for p in problems}
    expected = {(2, None), (3, "id"), (4, "patient_id"), (5, "bmode"), (6, "bmode"), (7, "strain"),
                (8, "tsukuba"), (8, "birads"), (9, "split"), (9, "colour"), (10, "patient_id")}
    assert expected <= found
    assert main(["manifest", "validate", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "line 4, field 'patient_id'" in err and "more than one split" in err
    assert "Traceback" not in err


def test_roi_outside_the_image_and_missing_roi(tmp_path):
    c = _case(tmp_path, "a")
    _write(tmp_path / "m.jsonl", [
        dict(c, id="a", patient_id="p", split="train", roi=[0, 0, 41, 10]),
        dict({k: v for k, v in c.items() if k != "roi"}, id="b", patient_id="q", split="train"),
    ])
    _, problems = validate_manifest(tmp_path / "m.jsonl")
    assert [(p.line, p.field) for p in problems] == [(1, "roi"), (2, "roi")]


def test_missing_manifest_is_a_clear_error(tmp_path, capsys):
    assert main(["manifest", "validate", str(tmp_path / "none.jsonl")]) == 2
    assert "manifest not found" in capsys.readouterr().err


def test_a_list_where_a_label_belongs_is_a_field_error_like_the_others(tmp_path, capsys):
    c = _case(tmp_path, "a")
    _write(tmp_path / "m.jsonl", [
        dict(c, id="a", patient_id="p", split="train", colormap=["hitachi"], pathology={"x": 1}),
        dict(c, id="b", patient_id="q", split="train", birads=4, pixel_spacing_mm=[float("inf"), 0.1]),
    ])
    _, problems = validate_manifest(tmp_path / "m.jsonl")
    assert {(p.line, p.field) for p in problems} == {(1, "colormap"), (1, "pathology"), (2, "birads"), (2, "pixel_spacing_mm")}
    assert main(["manifest", "validate", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "line 1, field 'colormap': unknown label ['hitachi']" in err and "Traceback" not in err


def _bad_files(root):
    """A good case, and (field, file, problem) for files the dataset's readers refuse."""
    from PIL import Image

    good = _case(root, "g")
    write_png(root / "noisy_b.png", np.random.default_rng(0).integers(0, 256, (32, 40), dtype=np.uint8))
    noisy = (root / "noisy_b.png").read_bytes()
    (root / "cut_b.png").write_bytes(noisy[: len(noisy) // 2])
    np.save(root / "int_s.npy", np.zeros((32, 40), np.int64))
    write_png(root / "eight_s.png", np.zeros((32, 40), np.uint8))
    Image.fromarray(np.zeros((32, 40), np.uint16)).save(root / "sixteen_b.png")
    assert Image.open(root / "sixteen_b.png").mode == "I;16"
    return good, [
        ("bmode", "cut_b.png", "not a readable image (image file is truncated)"),
        ("strain", "int_s.npy", "expected an H×W float strain array, got int64"),
        ("strain", "eight_s.png", "expected a 16-bit grey strain PNG, got 8-bit grey (mode L)"),
        ("bmode", "sixteen_b.png", "expected an 8-bit grey image, got 16-bit grey (mode I;16)"),
    ]


def test_files_the_training_readers_refuse_are_refused_here(tmp_path, capsys):
    from elastogan.data.dataset import load_case_arrays
    from elastogan.errors import InputFileError

    good, bad = _bad_files(tmp_path)
    lines = [dict(good, id=f"c{i}", patient_id=f"p{i}", split="train", **{key: name}) for i, (key, name, _) in enumerate(bad)]
    _write(tmp_path / "m.jsonl", [dict(good, id="ok", patient_id="p", split="train"), *lines])
    assert main(["manifest", "validate", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    for i, (key, name, problem) in enumerate(bad):
        assert f"line {i + 2}, field '{key}': {name}: {problem}" in err, err
    assert "line 1" not in err and "Traceback" not in err
    # ... and the dataset's readers do refuse each of them (the validator is not stricter).
    cases, _ = validate_manifest(tmp_path / "m.jsonl", check_files=False)
    for case in cases[1:]:
        with pytest.raises(InputFileError):
            load_case_arrays(case)
    load_case_arrays(cases[0])


def test_quick_validation_reads_headers_only(tmp_path, capsys):
    good, bad = _bad_files(tmp_path)
    _write(tmp_path / "m.jsonl", [dict(good, id="a", patient_id="p", split="train", bmode="cut_b.png"),
                                  dict(good, id="b", patient_id="q", split="train", strain="eight_s.png")])
    assert main(["manifest", "validate", "--quick", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    # the truncated PNG has a whole header; its pixel format and size are all --quick sees
    assert "line 1" not in err and "line 2, field 'strain'" in err
    _, problems = validate_manifest(tmp_path / "m.jsonl", decode=True)
    assert [(p.line, p.field) for p in problems] == [(1, "bmode"), (2, "strain")]


def test_the_clinical_template_is_a_valid_manifest(capsys):
    from pathlib import Path

    template = Path(__file__).parents[1] / "data_manifests" / "clinical-template.jsonl"
    assert main(["manifest", "validate", "--no-files", str(template)]) == 0
    out = capsys.readouterr().out
    assert "OK: 2 cases (1 train, 0 val, 1 test) from 2 patients" in out


def test_merge_out_errors_name_the_path_and_leave_nothing(tmp_path, capsys):
    _write(tmp_path / "a.jsonl", [dict(_case(tmp_path, "a"), id="a", patient_id="p", split="train")])
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, problem in [(tmp_path, f"{tmp_path}: is a folder; name the merged manifest file"),
                         (afile / "m.jsonl", f"{afile / 'm.jsonl'}: lies under {afile}, which is a file")]:
        assert main(["manifest", "merge", str(tmp_path / "a.jsonl"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert problem in err and "Traceback" not in err
    # A merge that fails validation leaves no folder it made; one that passes makes it.
    dup = tmp_path / "new" / "deeper" / "m.jsonl"
    assert main(["manifest", "merge", str(tmp_path / "a.jsonl"), str(tmp_path / "a.jsonl"), "--out", str(dup)]) == 2
    assert "duplicate id 'a'" in capsys.readouterr().err and not (tmp_path / "new").exists()
    assert main(["manifest", "merge", str(tmp_path / "a.jsonl"), "--out", str(dup)]) == 0
    assert read_manifest(dup).cases[0].bmode.resolve() == tmp_path / "a_b.png"
