"""The app's handlers as plain functions: study creation, accounts, reading, export, preview."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elastogan.app import study_db
from elastogan.app.accounts import add_user, check_login, role_of
from elastogan.app.passwords import hash_password, verify_password
from elastogan.app.preview import preview
from elastogan.app.reader_png import display_pixels, fixed_size_png
from elastogan.app.reading import lead_export_zip, lead_progress, reader_view, submit_answer
from elastogan.app.reading_order import reader_seed, reading_order
from elastogan.app.study_create import create_study
from elastogan.app.study_db import StudyError
from elastogan.app.study_export import FILES, export_study, export_tables, report_study
from elastogan.app.uploads import UploadError, load_upload
from elastogan.cli import main
from elastogan.display import DisplayLayout
from elastogan.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
from app_support import LEAD, N_TEST_CASES, PASSWORD, SIZE, build, copy_study  # noqa: E402

BIRADS_ORDER = ("2", "3", "4a", "4b", "4c", "5")

from elastogan.eval.reader_stats import stats_io  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.getbasetemp() / "app")


@pytest.fixture()
def study(built, tmp_path):
    return copy_study(built, tmp_path / "study")


@pytest.fixture(scope="module")
def predictor(built):
    from elastogan.predict import Predictor

    return Predictor.from_checkpoint(built.checkpoint, device="cpu")


def truth(study: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(study / study_db.DB_NAME) as con:
        return {i: (c, k) for i, c, k in con.execute("SELECT image, case_id, kind FROM images")}


# ------------------------------------------------------------------------------------ order


def test_reader_seed_is_sha256_of_study_and_reader_and_stable():
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"elastogan-study\0s\0alice").digest()[:8], "big")
    assert reader_seed("s", "alice") == reader_seed("s", "alice") == expected == 17844154782317205150
    assert reader_seed("s", "alice") != reader_seed("s", "bob") != reader_seed("t", "bob")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 25])
def test_reading_order_keeps_the_two_images_of_a_case_apart_and_balanced(n):
    pairs = [(f"r{i}", f"s{i}") for i in range(n)]
    for seed in range(20):
        order = reading_order(pairs, seed)
        assert sorted(order) == sorted(x for p in pairs for x in p)
        pos = {x: i for i, x in enumerate(order)}
        assert min(abs(pos[r] - pos[s]) for r, s in pairs) >= max(1, n // 2)
        real_first = sum(pos[r] < pos[s] for r, s in pairs)
        assert real_first in (n // 2, (n + 1) // 2)
    assert reading_order(pairs, 1) == reading_order(pairs, 1)
    if n >= 3:
        assert reading_order(pairs, 1) != reading_order(pairs, 2)


# ------------------------------------------------------------------------------------ passwords


def test_passwords_are_salted_scrypt_hashes():
    a, b = hash_password("sesame-open"), hash_password("sesame-open")
    assert a != b and a.startswith("scrypt$") and "sesame" not in a
    assert verify_password("sesame-open", a) and not verify_password("sesame-opem", a)
    assert not verify_password("x", "garbage") and not verify_password("x", "md5$1$2$3$ab$cd")
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


# ------------------------------------------------------------------------------------ study


def test_study_images_are_opaque_identical_in_form_and_truth_is_only_in_the_db(built):
    study = built.study
    files = sorted((study / "images").iterdir())
    t = truth(study)
    assert len(t) == 2 * N_TEST_CASES and len(files) == 3 * N_TEST_CASES  # + one B-mode per case
    case_ids = set(c for c, _ in t.values())
    for f in files:
        assert re.fullmatch(r"[0-9a-f]{32}\.png", f.name)
        raw = f.read_bytes()
        chunks = _png_chunks(raw)
        assert chunks[0] == "IHDR" and chunks[-1] == "IEND" and set(chunks) <= {"IHDR", "IDAT", "IEND"}, chunks
        for word in (b"real", b"synthetic", b"malignant", b"benign", *[c.encode() for c in case_ids]):
            assert word not in raw
    forms = {(Image.open(study / "images" / f"{i}.png").size, Image.open(study / "images" / f"{i}.png").mode)
             for i in t}
    assert forms == {((SIZE, SIZE), "RGB")}
    # What a reader is served: one PNG length for every elastogram of the study, real or not.
    served = {len(fixed_size_png(np.asarray(Image.open(study / "images" / f"{i}.png")))) for i in t}
    assert served == {len(fixed_size_png(np.zeros((SIZE, SIZE, 3), np.uint8)))}
    # The colour bar is drawn on both kinds by the same path: identical pixels there.
    by_case: dict[str, dict[str, np.ndarray]] = {}
    for i, (c, k) in t.items():
        by_case.setdefault(c, {})[k] = np.asarray(Image.open(study / "images" / f"{i}.png"))
    for pair in by_case.values():
        x0, _, x1, _ = DisplayLayout(SIZE, SIZE).colorbar
        bar = slice(x0, x1)
        assert np.array_equal(pair["real"][:, bar], pair["synthetic"][:, bar])
    with sqlite3.connect(study / study_db.DB_NAME) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT COUNT(*) FROM cases WHERE ncc IS NOT NULL").fetchone()[0] == N_TEST_CASES


def test_reader_png_is_uncompressed_and_shown_at_least_512_pixels_across():
    import io

    flat = np.zeros((SIZE, SIZE, 3), np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    a, b = fixed_size_png(flat), fixed_size_png(noise)
    assert len(a) == len(b) and _png_chunks(b) == ["IHDR", "IDAT", "IEND"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(b))), noise)
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        fixed_size_png(np.zeros((4, 4), np.uint8))
    # 256² data (and the tests' 128²) shown ≥ 400 px across: whole-factor pixel replication.
    big = display_pixels(noise)
    assert big.shape == (512, 512, 3) and np.array_equal(big[::4, ::4], noise) and np.array_equal(big[3::4, 1::4], noise)
    assert display_pixels(np.zeros((256, 256, 3), np.uint8)).shape == (512, 512, 3)
    assert display_pixels(np.zeros((600, 800, 3), np.uint8)).shape == (600, 800, 3)


def _png_chunks(raw: bytes) -> list[str]:
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(raw):
        n = int.from_bytes(raw[i : i + 4], "big")
        out.append(raw[i + 4 : i + 8].decode("ascii"))
        i += 12 + n
    return out


def test_create_refuses_a_non_empty_folder_and_cases_without_truth(built, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("answers")
    with pytest.raises(UserError, match="not empty"):
        create_study(built.manifest, built.checkpoint, tmp_path / "busy")
    recs = [json.loads(line) for line in built.manifest.read_text().splitlines()]
    for r in recs:
        r.pop("pathology")
    bad = built.manifest.parent / "no_pathology.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(UserError, match="no pathology"):
        create_study(bad, built.checkpoint, tmp_path / "s2")
    with pytest.raises(UserError, match="--n-cases must be between 1 and 25"):
        create_study(built.manifest, built.checkpoint, tmp_path / "s3", n_cases=26)
    assert not (tmp_path / "s2").exists() and not (tmp_path / "s3").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_study_cli_creates_with_n_cases_and_adds_readers(built, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["study", "create", "--data", str(built.manifest), "--checkpoint", str(built.checkpoint),
                 "--out", str(out), "--n-cases", "4", "--seed", "3", "--device", "cpu"]) == 0
    assert "4 cases, 8 images" in capsys.readouterr().out
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    assert main(["study", "add-reader", str(out), "--name", "ann", "--group", "senior", "--password-file", str(pw)]) == 0
    assert "4 readings" in capsys.readouterr().out  # split design: one image of each case
    assert main(["study", "add-reader", str(out), "--name", "ann", "--password-file", str(pw)]) == 2
    assert "already an account named 'ann'" in capsys.readouterr().err
    assert main(["study", "add-reader", str(tmp_path), "--name", "x", "--password-file", str(pw)]) == 2
    assert "not a study folder" in capsys.readouterr().err
    # the wrong folder is said first, not a complaint about the password (too short here)
    (tmp_path / "short").write_text("x\n")
    assert main(["study", "add-reader", str(tmp_path), "--name", "x", "--password-file", str(tmp_path / "short")]) == 2
    err = capsys.readouterr().err
    assert "not a study folder" in err and "password" not in err


def test_accounts_check_login_role_and_refuse_bad_input(study):
    assert check_login(study, "r0", PASSWORD) and not check_login(study, "r0", "wrong-password")
    assert not check_login(study, "nobody", PASSWORD)
    assert role_of(study, "r0") == "reader" and role_of(study, LEAD) == "lead" and role_of(study, None) is None
    with pytest.raises(StudyError, match="already an account"):
        add_user(study, "r0", PASSWORD)
    with pytest.raises(StudyError, match="group"):
        add_user(study, "r9", PASSWORD, group="no spaces please")
    with pytest.raises(StudyError, match="only readers have a group"):
        add_user(study, "boss", PASSWORD, role="lead", group="senior")
    assert add_user(study, "r9", PASSWORD, group="fellow") == N_TEST_CASES  # any group name the lead chooses
    with pytest.raises(StudyError, match="at least 8"):
        add_user(study, "r9", "short")
    with pytest.raises(StudyError, match="reader name"):
        add_user(study, "../etc", PASSWORD)


# ------------------------------------------------------------------------------------ reading


def test_a_reading_stores_each_answer_once_and_resumes(study):
    v = reader_view(study, "r0")
    assert (v.position, v.answered, v.total) == (1, 0, N_TEST_CASES)  # split: one image of each case
    assert v.bmode.shape == v.elastogram.shape == (SIZE, SIZE, 3)
    first = v.token
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first not in truth(study)  # a view's token, not the image id
    v = submit_answer(study, "r0", first, "real", "3", "4a")
    assert v.message.startswith("Saved (final)") and v.answered == 1 and v.token != first
    again = submit_answer(study, "r0", first, "synthetic", "5", "5")  # a double click or a retry
    assert again.answered == 1 and "already answered" in again.message
    with sqlite3.connect(study / study_db.DB_NAME) as con:
        assert con.execute("SELECT judged, tsukuba, birads FROM answers WHERE reader = 'r0'").fetchall() == [("real", "3", "4a")]
    missing = submit_answer(study, "r0", v.token, None, "3", "4a")
    assert "Please choose: real or synthetic" in missing.message and missing.answered == 1
    with pytest.raises(StudyError, match="Tsukuba score '9'"):
        submit_answer(study, "r0", v.token, "real", "9", "4a")
    # Another reader's list is separate; a token that is not of this reader's screen is refused.
    other = reader_view(study, "r1")
    assert other.answered == 0
    for wrong in ("0" * 32, other.token):
        with pytest.raises(StudyError, match="not the image on your screen"):
            submit_answer(study, "r0", wrong, "real", "3", "4a")
    # Resume: a new call (a reload, a restart) shows the same reading under the same token.
    assert reader_view(study, "r0").token == v.token and reader_view(study, "r0").position == 2


def test_roles_are_checked_on_every_handler(study, tmp_path):
    with pytest.raises(StudyError, match="not a study reader"):
        reader_view(study, LEAD)
    with pytest.raises(StudyError, match="not a study reader"):
        submit_answer(study, None, "x", "real", "1", "2")
    with pytest.raises(StudyError, match="not a study lead"):
        lead_progress(study, "r0")
    with pytest.raises(StudyError, match="not a study lead"):
        lead_export_zip(study, "r0")
    assert lead_progress(study, LEAD)[0][:4] == ["r0", "junior", 0, N_TEST_CASES]


def _read_all(study: Path, reader: str, rng: np.random.Generator) -> None:
    t = truth(study)
    while (v := reader_view(study, reader)).token is not None:
        with sqlite3.connect(study / study_db.DB_NAME) as con:
            (image,) = con.execute("SELECT o.image FROM views w JOIN reading_order o ON o.reader = w.reader"
                                   " AND o.position = w.position WHERE w.token = ?", (v.token,)).fetchone()
        case, kind = t[image]
        malignant = int(case[1:]) % 2  # the manifest's pathology alternates with the index
        judged = kind if rng.random() < 0.6 else ("real" if kind == "synthetic" else "synthetic")
        birads = BIRADS_ORDER[min(5, max(0, 3 * malignant + int(rng.integers(-1, 3))))]
        submit_answer(study, reader, v.token, judged, str(rng.integers(1, 6)), birads)
    assert v.answered == v.total and "complete" in v.progress_text


def test_export_is_the_stats_format_and_report_runs_the_stats(built, tmp_path):
    """Four readers of a split study: r0 and r2 read one half of the images, r1 and r3 the
    other (so two readers per image, for the agreement of their Tsukuba scores)."""
    from elastogan.app.study_export import READINGS_COLUMNS

    study = copy_study(built, tmp_path / "study", readers=4)
    parse_order, read_authenticity, read_ratings, read_scores = (
        stats_io.parse_order, stats_io.read_authenticity, stats_io.read_ratings, stats_io.read_scores)

    rng = np.random.default_rng(0)
    for reader in ("r0", "r1", "r2", "r3"):
        _read_all(study, reader, rng)
    out = tmp_path / "export"
    paths = export_study(study, out)
    assert [p.name for p in paths] == list(FILES)
    assert (out / "answers.csv").read_text().splitlines()[0] == "reader,case,is_synthetic,judged_synthetic,group"
    assert (out / "scores.csv").read_text().splitlines()[0] == "case,reader,score,condition"
    assert (out / "ratings.csv").read_text().splitlines()[0] == "case,truth,reader,modality,rating"
    assert (out / "readings.csv").read_text().splitlines()[0] == ",".join(READINGS_COLUMNS)
    a = read_authenticity(out / "answers.csv")
    assert len(a.reader) == 4 * N_TEST_CASES and set(a.group) == {"junior", "senior"}
    # split: readers 0 and 1 read complementary halves (every image once), each half real; 2 reads as 0.
    pair = a.case[(a.reader == "r0") | (a.reader == "r1")]
    assert sorted(pair) == sorted(f"{c}/{k}" for c, k in truth(study).values())
    assert sorted(a.case[a.reader == "r2"]) == sorted(a.case[a.reader == "r0"])
    for reader in ("r0", "r1"):
        assert sum(a.is_synthetic[a.reader == reader]) in (N_TEST_CASES // 2, N_TEST_CASES // 2 + 1)
    s = read_scores(out / "scores.csv", parse_order("cyst,1,2,3,4,5"))
    assert set(s.condition) == {"real", "synthetic"}
    r = read_ratings(out / "ratings.csv", parse_order(",".join(BIRADS_ORDER)))
    assert r.truth.sum() == 4 * (N_TEST_CASES // 2)  # 12 malignant cases × 4 readers, one image each
    assert export_tables(study) == export_tables(study)
    written = report_study(study, tmp_path / "report", n_boot=200)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Authenticity" in md and "## Agreement of Tsukuba scores" in md and "## BI-RADS ROC" in md
    assert "Unfinished study" not in md
    assert any(p.name == "roc.png" for p in written)
    # The lead's zip holds the same files.
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(lead_export_zip(study, LEAD))) as z:
        assert sorted(z.namelist()) == sorted(FILES)
        assert z.read("answers.csv").decode() == (out / "answers.csv").read_text()


def test_export_without_groups_has_no_group_column(built, tmp_path):
    study = copy_study(built, tmp_path / "s", readers=1, groups=False)
    v = reader_view(study, "r0")
    submit_answer(study, "r0", v.token, "real", "1", "2")
    text = export_tables(study)["answers.csv"]
    assert text.splitlines()[0] == "reader,case,is_synthetic,judged_synthetic" and len(text.splitlines()) == 2


# ------------------------------------------------------------------------------------ preview


def test_preview_labels_synthetic_output_and_gives_ratio_and_ncc(built, predictor, tmp_path):
    import pydicom

    case = json.loads(built.manifest.read_text().splitlines()[-1])
    root = built.manifest.parent
    r = preview(predictor, root / case["bmode"], root / case["emode"], "20, 20, 40, 40", tmp_path)
    assert r.synthetic.shape == r.real.shape == (SIZE, SIZE, 3)
    assert r.strain_ratio > 0 and r.real_strain_ratio > 0 and -1 <= r.ncc <= 1
    # The ratio is the tsukuba rule's, on the strain the generator predicts in the found box.
    from elastogan.tsukuba import strain_ratio

    lesion = np.zeros((SIZE, SIZE), bool)
    lesion[20:40, 20:40] = True
    strain = predictor.predict(r.bmode[..., 0], roi=r.roi)[1]
    assert r.strain_ratio == strain_ratio(strain, lesion, r.roi)
    # The generator's own E-mode given as the real one: the same box, the same strain back.
    own = tmp_path / "own_emode.png"
    Image.fromarray(predictor.predict(r.bmode[..., 0], roi=tuple(case["roi"]))[0]).save(own)
    again = preview(predictor, root / case["bmode"], own, "20, 20, 40, 40")
    assert again.roi == tuple(case["roi"]) and again.ncc > 0.999
    assert again.real_strain_ratio == pytest.approx(again.strain_ratio, rel=0.01)
    assert "SYNTHETIC" in r.png.name and "SYNTHETIC" in r.dicom.name
    assert "SYNTHETIC" in Image.open(r.png).info["Description"]
    ds = pydicom.dcmread(r.dicom)
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "SYNTHETIC"] and ds.ConversionType == "SYN"
    assert "SYNTHETIC" in ds.SeriesDescription and ds.BurnedInAnnotation == "YES" and ds.PatientID == ""
    assert np.array_equal(ds.pixel_array, r.synthetic)
    assert not np.array_equal(r.synthetic[:8, :40], predictor.predict(r.bmode[..., 0], roi=r.roi)[0][:8, :40])  # label
    assert "Strain ratio" in r.summary() and "NCC" in r.summary()


def _preview_handler(predictor):
    """The Preview button's callback of the page itself (a local app: no study, no accounts)."""
    from elastogan.app.ui import build_app

    demo = build_app(predictor)
    (fn,) = [f.fn for f in demo.fns.values() if f.api_name == "preview"]
    return fn


# A constructed strain map: 0.5 everywhere, 0.25 in a 20×20 lesion box (x 40–60, y 50–70), so
# the strain ratio (reference / lesion) is exactly 0.5 / 0.25 = 2.
LESION = (40, 50, 60, 70)


def _constructed_strain() -> np.ndarray:
    strain = np.full((SIZE, SIZE), 0.5, np.float32)
    x0, y0, x1, y1 = LESION
    strain[y0:y1, x0:x1] = 0.25
    return strain


def test_preview_of_a_known_strain_map_gives_ratio_two_and_ncc_one(built, predictor, tmp_path, monkeypatch):
    """The generator replaced by a known strain map; its E-mode, drawn by the predictor's own
    display path, given back as the "real" E-mode: the page must find the same box, recover
    the same strain (NCC ≈ 1) and the strain ratio 2 from both."""
    from elastogan.data.loaders import rgb_to_grey

    case = json.loads(built.manifest.read_text().splitlines()[-1])
    root = built.manifest.parent
    bmode_file = root / case["bmode"]
    roi = tuple(case["roi"])
    strain = _constructed_strain()
    monkeypatch.setattr(predictor, "_forward", lambda b, seeds: np.repeat(strain[None], len(b), axis=0))
    bmode = rgb_to_grey(load_upload(bmode_file, "B-mode"))
    emode, _ = predictor.predict(bmode, roi=roi)  # unlabelled: a stand-in for a scanner's image
    real_file = tmp_path / "real_emode.png"
    Image.fromarray(emode).save(real_file)
    box = ", ".join(map(str, LESION))
    r = preview(predictor, bmode_file, real_file, box)
    assert r.roi == roi
    assert r.strain_ratio == pytest.approx(2.0, rel=1e-6)
    assert r.real_strain_ratio == pytest.approx(2.0, rel=0.03)  # through the colour-map inversion
    assert r.ncc > 0.99
    # The page's handler: B-mode | synthetic | real, and the slider real | synthetic.
    from elastogan.app.preview import label_top_right
    from elastogan.predict import label_synthetic

    out = _preview_handler(predictor)(str(bmode_file), str(real_file), box, False, 8, False, None)
    shown_bmode, shown_synth, shown_real, slider, files, shown_sd, _, shown_ig, summary = out
    assert shown_sd is None and shown_ig is None  # no uncertainty or explanation layer unless asked
    # The synthetic panel shows (and its download button saves) the labelled file: SYNTHETIC
    # in its name and its metadata, not Gradio's "image.png"; the lesion box drawn on it.
    assert "SYNTHETIC" in Path(shown_synth).name and "SYNTHETIC" in Image.open(shown_synth).info["Description"]
    assert np.array_equal(shown_real, r.shown(emode)) and np.array_equal(np.asarray(Image.open(shown_synth)),
                                                                          r.shown(r.synthetic, synthetic=True))
    assert len(slider) == 2 and np.array_equal(slider[0], r.shown(label_synthetic(emode, "REAL")))
    assert np.array_equal(slider[1], r.shown(label_top_right(r.synthetic), synthetic=True))
    assert [Path(f).suffix for f in files] == [".png", ".dcm"]
    assert np.array_equal(np.asarray(Image.open(files[0])), r.synthetic)  # the download: no box drawn
    assert "synthetic **2.00**; real 2.0" in summary and "NCC real vs synthetic" in summary
    # Without a real E-mode the slider shows the B-mode (labelled B-MODE) against the synthetic image.
    _, synth, real, slider, _, _, _, _, summary = _preview_handler(predictor)(str(bmode_file), None, "", False, 8, False,
                                                                              None)
    assert real is None and np.array_equal(slider[0], label_synthetic(r.bmode, "B-MODE"))
    assert np.array_equal(slider[1], label_top_right(np.asarray(Image.open(synth))))
    assert "NCC" not in summary and "Strain ratio" not in summary


def test_the_slider_shows_a_synthetic_label_at_every_divider_position(built, predictor):
    """The slider shows the left image left of the divider and the synthetic one right of it:
    at every position some label is whole on screen, SYNTHETIC wherever the synthetic part is
    wider than the label."""
    from elastogan.predict import label_synthetic

    case = json.loads(built.manifest.read_text().splitlines()[-1])
    r = preview(predictor, built.manifest.parent / case["bmode"], built.manifest.parent / case["emode"])
    left, right = r.slider()
    w = right.shape[1]
    plain = label_synthetic(np.zeros_like(right))  # where the label is drawn, from the top-left
    ys, xs = np.nonzero(np.all(plain == label_synthetic(np.full_like(right, 255)), axis=-1))
    width = xs.max() + 1
    # the label is whole at the top-right of the synthetic image too
    assert np.array_equal(right[ys.min():ys.max() + 1, w - width:], plain[ys.min():ys.max() + 1, :width])
    for x in range(0, w + 1):  # divider at x: columns < x from the left image, the rest synthetic
        shown = np.concatenate([left[:, :x], right[:, x:]], axis=1)
        synthetic_label = (x == 0 and np.array_equal(shown[:ys.max() + 1, :width], right[:ys.max() + 1, :width])) or \
            (x <= w - width and np.array_equal(shown[:ys.max() + 1, w - width:], right[:ys.max() + 1, w - width:]))
        real_label_whole = x >= width
        assert synthetic_label or real_label_whole, x
        if w - x >= width:  # the synthetic part is at least as wide as its label: the label shows
            assert synthetic_label, x


def test_preview_uncertainty_layer_shows_the_sd_of_k_samples_and_the_ratio_interval(built, predictor, tmp_path, monkeypatch):
    """A stand-in generator whose draws differ by a known amount: the layer's SD picture is
    ``sd_png`` of their SD (labelled SYNTHETIC, downloadable), the synthetic E-mode stays draw 0,
    the strain ratio gets the draws' interval; a deterministic generator says it has no SD."""
    from elastogan.predict import label_synthetic, noise_seed
    from elastogan.uncertainty import labelled_sd_png
    from elastogan.uncertainty import summarise_samples

    case = json.loads(built.manifest.read_text().splitlines()[-1])
    bmode_file = built.manifest.parent / case["bmode"]
    box = ", ".join(map(str, LESION))
    strain = _constructed_strain()

    def draws(b, seeds):  # the lesion's strain moves with the seed: 0.2 … 0.3
        out = np.repeat(strain[None], len(b), axis=0)
        for i, s in enumerate(seeds):
            out[i][strain < 0.5] = 0.2 + 0.1 * (s % 1000) / 999
        return out

    # A deterministic generator: SD 0 everywhere, and the page says why.
    flat = preview(predictor, bmode_file, None, box, samples=4)
    assert flat.samples == 4 and flat.sd_mean == 0 and "draws no noise" in flat.summary()
    assert flat.ratio_interval["lo"] == flat.ratio_interval["hi"]

    monkeypatch.setattr(predictor, "_forward", draws)
    monkeypatch.setattr(predictor, "stochastic", True)
    r = preview(predictor, bmode_file, None, box, tmp_path, samples=5, seed=3)
    bmode = r.bmode[..., 0]
    strains = predictor.sample(bmode, samples=5, seed=3, roi=r.roi)
    assert np.array_equal(r.synthetic, label_synthetic(predictor.predict(bmode, roi=r.roi, seed=3)[0]))  # draw 0
    sd = summarise_samples(strains).sd
    assert np.array_equal(r.sd, labelled_sd_png(sd, r.roi))  # the picture `elastogan predict` writes
    assert r.sd_mean == pytest.approx(float(np.nanmean(sd[r.roi[1]:r.roi[3], r.roi[0]:r.roi[2]])))
    lesion_values = [0.2 + 0.1 * (noise_seed(3, k) % 1000) / 999 for k in range(5)]
    assert r.strain_ratio == pytest.approx(0.5 / lesion_values[0], rel=1e-5)
    i = r.ratio_interval
    assert sorted(i["samples"]) == pytest.approx(sorted(0.5 / v for v in lesion_values), rel=1e-5)
    assert i["lo"] < i["value"] < i["hi"] and "draws no noise" not in r.summary()
    assert f"{i['lo']:.2f}–{i['hi']:.2f}" in r.summary() and "not an elastogram" in r.summary()
    assert r.sd_png.name == f"{bmode_file.stem}_SYNTHETIC_strain_sd.png"
    assert np.array_equal(np.asarray(Image.open(r.sd_png)), r.sd)
    assert "not an elastogram" in Image.open(r.sd_png).info["Description"]
    again = preview(predictor, bmode_file, None, box, samples=5, seed=3)
    assert np.array_equal(again.sd, r.sd) and again.ratio_interval == r.ratio_interval  # same seed, same layer
    # The page: the SD picture beside the synthetic E-mode, its download, the interval in the text.
    out = _preview_handler(predictor)(str(bmode_file), None, box, True, 5.0, False, None)  # the page's seed: 0
    assert np.array_equal(np.asarray(Image.open(out[5])), preview(predictor, bmode_file, None, box, samples=5).sd)
    assert Path(out[4][-1]).name.endswith("_SYNTHETIC_strain_sd.png") and Path(out[5]).name == Path(out[4][-1]).name
    assert "Uncertainty over 5 samples" in out[-1]
    for bad in (1, 33, 2.5, None):
        with pytest.raises(UploadError, match="whole number from 2 to 32"):
            preview(predictor, bmode_file, samples=bad)
        assert "whole number from 2 to 32" in _preview_handler(predictor)(str(bmode_file), None, "", True, bad, False,
                                                                          None)[-1]


def test_preview_reads_extensionless_dicom(predictor, tmp_path):
    from pydicom import examples

    src = tmp_path / "IMG0001"
    shutil.copy(examples.get_path("rgb_color"), src)
    r = preview(predictor, src)
    # the B-mode by the library's one rule (elastogan.bmode_input), as `elastogan predict` reads it
    from elastogan.bmode_input import bmode_of
    from elastogan.data.loaders import load_image

    expected = bmode_of(load_image(examples.get_path("rgb_color")))
    assert r.synthetic.shape == (*expected.shape, 3) and np.array_equal(r.bmode[..., 0], expected) and r.real is None


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's own notes on the broken file
def test_uploads_are_refused_with_a_clear_message(predictor, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(UploadError, match="The B-mode file notes.png cannot be used"):
        preview(predictor, text)
    dcm = tmp_path / "broken"
    dcm.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 10)
    with pytest.raises(UploadError, match="The B-mode file broken cannot be used"):
        preview(predictor, dcm)
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(big)
    with pytest.raises(UploadError, match=r"300×300 pixels; the limit is 10,000 pixels"):
        load_upload(big, "B-mode", max_pixels=100 * 100)
    with pytest.raises(UploadError, match=r"MiB; the limit is"):
        load_upload(big, "B-mode", max_bytes=100)
    with pytest.raises(UploadError, match="No B-mode uploaded"):
        preview(predictor, None)
    ok = tmp_path / "ok.png"
    Image.fromarray(np.full((64, 64), 90, np.uint8)).save(ok)
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(other)
    with pytest.raises(UploadError, match="upload the two images of one view"):
        preview(predictor, ok, other)
    with pytest.raises(UploadError, match="lesion box"):
        preview(predictor, ok, None, "1, 2, 3")
    with pytest.raises(UploadError, match="not inside"):
        preview(predictor, ok, None, "10, 10, 90, 20")


def test_app_command_names_the_missing_default_checkpoint_and_refuses_open_host(built, capsys, monkeypatch, tmp_path):
    import elastogan.weights

    missing = tmp_path / "weights" / "default.pt"  # an installation without the shipped model
    monkeypatch.setattr(elastogan.weights, "DEFAULT_CHECKPOINT", missing)
    assert main(["app"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--checkpoint" in err
    assert main(["app", "--checkpoint", str(built.checkpoint), "--host", "0.0.0.0", "--device", "cpu"]) == 2
    assert "loopback only" in capsys.readouterr().err


def test_export_complete_only_keeps_the_readers_who_finished_and_report_says_unfinished(study, tmp_path, capsys):
    with pytest.raises(StudyError, match="no reader has answered their whole list yet"):
        export_tables(study, complete_only=True)
    _read_all(study, "r0", np.random.default_rng(1))
    v = reader_view(study, "r1")
    submit_answer(study, "r1", v.token, "real", "2", "3")
    assert main(["study", "export", str(study), "--out", str(tmp_path / "all")]) == 0
    assert main(["study", "export", str(study), "--out", str(tmp_path / "done"), "--complete-only"]) == 0
    every = (tmp_path / "all" / "answers.csv").read_text().splitlines()[1:]
    done = (tmp_path / "done" / "answers.csv").read_text().splitlines()[1:]
    assert len(every) == N_TEST_CASES + 1 and len(done) == N_TEST_CASES
    assert {line.split(",")[0] for line in done} == {"r0"}
    capsys.readouterr()
    # The report on the unfinished study says so at its top (and on stderr); --complete-only does not.
    assert main(["study", "report", str(study), "--out", str(tmp_path / "rep"), "--n-boot", "100"]) == 0
    assert "Unfinished study" in capsys.readouterr().err
    first = (tmp_path / "rep" / "report.md").read_text().splitlines()[0]
    assert first.startswith("> **Unfinished study**") and f"r1 (1/{N_TEST_CASES})" in first
    assert main(["study", "report", str(study), "--out", str(tmp_path / "rep2"), "--n-boot", "100", "--complete-only"]) == 0
    assert "Unfinished" not in (tmp_path / "rep2" / "report.md").read_text()


def test_login_throttle_counts_per_name_and_address_in_the_database(study, capsys):
    from elastogan.app.accounts import LoginThrottle

    now = [1000.0]

    def throttle():  # a new one each time: a restarted server, reading the same database
        return LoginThrottle(max_per_pair=3, max_per_address=5, max_per_name=8, window_s=60, clock=lambda: now[0])

    t = throttle()
    assert t.check(study, "r0", PASSWORD, "10.0.0.1")
    for _ in range(3):
        assert not t.check(study, "r0", "wrong-password", "10.0.0.1")
    locked = throttle().attempt(study, "r0", PASSWORD, "10.0.0.1")  # persisted across a restart
    assert not locked.ok and locked.locked  # refused even with the right password
    assert t.check(study, "r1", PASSWORD, "10.0.0.1")  # other names from that address are not affected
    assert t.check(study, "r0", PASSWORD, "10.0.0.2")  # nor the name from another machine: no one locks another out
    # Per address: 5 wrong passwords from one address, for any names, lock that address only.
    for name in ("a", "b", "c", "d", "e"):
        assert not t.check(study, name, "wrong-password", "10.0.0.9")
    assert t.attempt(study, "r1", PASSWORD, "10.0.0.9").locked
    assert t.check(study, "r1", PASSWORD, "10.0.0.8")
    # Per name from many addresses (a spread-out guesser): 8 lock the name everywhere.
    for k in range(8):
        assert not t.check(study, "r1", "wrong-password", f"10.1.0.{k}")
    assert t.attempt(study, "r1", PASSWORD, "10.2.0.1").locked
    # The lead unlocks (a user mistake is one line and exit 2).
    assert main(["study", "unlock", str(study), "--name", "r0"]) == 0
    assert "unlocked name r0 (3 wrong password(s) forgotten)" in capsys.readouterr().out
    assert t.check(study, "r0", PASSWORD, "10.0.0.1")
    assert main(["study", "unlock", str(study), "--address", "10.0.0.9"]) == 0
    assert t.attempt(study, "r1", PASSWORD, "10.0.0.9").locked  # still: the name's own 8
    assert main(["study", "unlock", str(study), "--name", "r1"]) == 0
    assert t.check(study, "r1", PASSWORD, "10.0.0.9")
    assert main(["study", "unlock", str(study.parent)]) == 2
    assert "not a study folder" in capsys.readouterr().err
    # The window passes: a name is free again without the lead.
    for _ in range(3):
        t.check(study, "r1", "wrong-password", "10.0.0.4")
    assert t.attempt(study, "r1", PASSWORD, "10.0.0.4").locked
    now[0] += 61
    assert t.check(study, "r1", PASSWORD, "10.0.0.4")


def test_login_costs_one_scrypt_check_whatever_the_name(study, monkeypatch):
    """Constant time by construction: an unknown name does the same hashing work as a known one
    (counted, not timed)."""
    import hashlib

    from elastogan.app import passwords

    calls: list[tuple] = []
    real = hashlib.scrypt

    def counting(password, *, salt, n, r, p, dklen, maxmem=0):
        calls.append((n, r, p, dklen, len(salt)))
        return real(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)

    check_login(study, "nobody", PASSWORD)  # the dummy hash is made once, outside the count
    monkeypatch.setattr(passwords.hashlib, "scrypt", counting)
    for name, password, expected in (("r0", "wrong-password", False), ("nobody", PASSWORD, False),
                                     ("r0", PASSWORD, True), ("x" * 500, "y", False)):
        calls.clear()
        assert check_login(study, name, password) is expected
        assert calls == [(2**14, 8, 1, 32, 16)], (name, calls)


def test_each_synthetic_study_image_is_its_cases_own_draw(built, tmp_path):
    """study create draws case c with case_seed(seed, c): the synthetic images share no noise (one
    seed for all would give every image the same noise maps and the texture stage's frame code
    the same value, a fingerprint no scanner's scans share). The shipped model samples."""
    from elastogan.app.study_create import render_study_image
    from elastogan.bmode_input import load_bmode
    from elastogan.data.manifest import read_manifest
    from elastogan.predict import Predictor, case_seed
    from elastogan.weights import DEFAULT_CHECKPOINT

    study = create_study(built.manifest, DEFAULT_CHECKPOINT, tmp_path / "s", n_cases=2, seed=4, device="cpu",
                         log=lambda *_: None).path
    predictor = Predictor.from_checkpoint(DEFAULT_CHECKPOINT, device="cpu")
    assert predictor.stochastic
    cases = {c.id: c for c in read_manifest(built.manifest).split("test")}
    with sqlite3.connect(study / study_db.DB_NAME) as con:
        rows = con.execute("SELECT image, case_id FROM images WHERE kind = 'synthetic'").fetchall()
        colormap = dict(con.execute("SELECT key, value FROM meta").fetchall())["colormap"]
    assert len(rows) == 2
    for image, case_id in rows:
        bmode, roi = load_bmode(cases[case_id].bmode), tuple(int(v) for v in cases[case_id].roi)
        shown = (study / study_db.IMAGES_DIR / f"{image}.png").read_bytes()
        own = render_study_image(bmode, predictor.predict(bmode, roi=roi, seed=case_seed(4, case_id))[1], roi, colormap)
        shared = render_study_image(bmode, predictor.predict(bmode, roi=roi, seed=4)[1], roi, colormap)
        assert shown == own and shown != shared, case_id
