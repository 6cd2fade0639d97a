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
