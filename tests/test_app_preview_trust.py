"""How far to trust the Preview (issue 14), at the handlers: the out-of-distribution banner and
the greyed result, the lesion box set by clicks and drawn on the images, the measurements
(EI/B, automatic Tsukuba score, over the draws too) and the explanation layer.

The shipped model (``elastogan/weights/default.pt``) carries the fingerprint of phantom-v2; a
phantom it never saw is simulated here (simulator v2, another seed), and pydicom's
own ultrasound files are the non-breast images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elastogan.app.box_clicks import box_text, click, frame_pixel
from elastogan.app.preview import preview
from elastogan.app.preview_trust import (BOX_COLOUR, click_scale, draw_box, ellipse_in_box, greyed, measure,
                                         ood_html)
from elastogan.cli import main
from elastogan.predict import Predictor, label_synthetic
from elastogan.weights import DEFAULT_CHECKPOINT

sys.path.insert(0, str(Path(__file__).parent))
from app_support import SIZE, build  # noqa: E402

NON_BREAST = ("US1_J2KR.dcm", "examples_ybr_color.dcm", "examples_palette.dcm", "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm")
BANNER = "Unlike anything this model was trained on: the synthetic elastogram is not meaningful."


@pytest.fixture(scope="module")
def shipped():
    return Predictor.from_checkpoint(DEFAULT_CHECKPOINT, device="cpu")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """One phantom-v1 case the shipped model never saw: (B-mode file, lesion box, manifest record)."""
    out = tmp_path_factory.mktemp("phantom")
    assert main(["simulate", "--out", str(out), "--n", "1", "--seed", "11", "--simulator", "v2", "--no-progress"]) == 0
    case = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    ys, xs = np.nonzero(np.asarray(Image.open(out / case["lesion"])))
    return out / case["bmode"], (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), case


def _pydicom_file(name: str) -> Path:
    from elastogan.eval.measurements.ood_scores import pydicom_ultrasound_files

    (path,) = [f for f in pydicom_ultrasound_files() if f.name == name]
    return path


def _handler(predictor, api_name: str):
    """A callback of the page itself (a local app: no study, no accounts)."""
    from elastogan.app.ui import build_app

    demo = build_app(predictor)
    (fn,) = [f.fn for f in demo.fns.values() if f.api_name == api_name]
    return fn


def _saturation(rgb: np.ndarray) -> float:
    x = rgb.astype(np.float64)
    return float((x.max(axis=-1) - x.min(axis=-1)).mean())


# ------------------------------------------------------------------------- out of distribution

@pytest.mark.parametrize("name", NON_BREAST)
def test_a_non_breast_ultrasound_file_gets_the_banner_and_a_greyed_result(shipped, name, tmp_path):
    r = preview(shipped, _pydicom_file(name), None, None, tmp_path)
    assert r.ood is not None and not r.ood["in_distribution"] and r.ood["score"] > r.ood_threshold
    assert r.ood["percentile"] == 100.0
    # the page: the banner with the score and its percentile, the result still shown, greyed
    out = _handler(shipped, "preview")(str(_pydicom_file(name)), None, "", False, 8, False, None)
    bmode, synth, real, slider, files, sd, status, ig, summary = out
    assert BANNER in status and f"OOD score {r.ood['score']:.1f}" in status and "percentile 100" in status
    assert 'role="alert"' in status and "shown greyed" in status
    shown = np.asarray(Image.open(synth))
    assert "SYNTHETIC" in Path(synth).name and "SYNTHETIC" in Image.open(synth).info["Description"]
    assert np.array_equal(shown, greyed(r.synthetic)) and _saturation(shown) < 0.3 * _saturation(r.synthetic)
    assert np.array_equal(slider[1], r.shown(slider_right(r), synthetic=True))
    # the downloads keep the full result, labelled SYNTHETIC
    assert [Path(f).suffix for f in files] == [".png", ".dcm"]
    assert np.array_equal(np.asarray(Image.open(files[0])), r.synthetic)


def slider_right(r):
    from elastogan.app.preview import label_top_right

    return label_top_right(r.synthetic)


def test_a_phantom_the_model_never_saw_is_in_distribution_with_a_quiet_line(shipped, phantom, tmp_path):
    bmode_file, box, _ = phantom
    r = preview(shipped, bmode_file, None, None, tmp_path)
    assert r.ood["in_distribution"] and r.ood["score"] <= r.ood_threshold and 0 <= r.ood["percentile"] <= 100
    out = _handler(shipped, "preview")(str(bmode_file), None, "", False, 8, False, None)
    status, synth = out[6], out[1]
    assert BANNER not in status and "Like the training data" in status and "percentile" in status
    assert 'class="ood-ok"' in status and f"{r.ood['percentile']:.0f}" in status
    assert np.array_equal(np.asarray(Image.open(synth)), r.synthetic)  # in colour, as predicted
    assert Path(synth) == Path(out[4][0])  # no box, in distribution: the download itself is shown


def test_the_banner_says_so_when_the_model_has_no_fingerprint(built_predictor, tmp_path):
    p = Predictor(built_predictor.generator, built_predictor.model, input_size=built_predictor.input_size, device="cpu")
    assert p.fingerprint is None
    frame = tmp_path / "f.png"
    Image.fromarray(np.full((64, 64), 90, np.uint8)).save(frame)
    r = preview(p, frame)
    assert r.ood is None and not r.out_of_distribution and "no out-of-distribution fingerprint" in ood_html(None, None)
    assert np.array_equal(r.shown(r.synthetic, synthetic=True), r.synthetic)


def test_greyed_keeps_a_quarter_of_the_colour_and_dims_towards_light_grey():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    g = greyed(red).astype(float)[0, 0]
    lum = 0.299 * 255
    expected = 0.55 * (0.25 * np.array([255.0, 0, 0]) + 0.75 * lum) + 0.45 * 170
    assert g == pytest.approx(np.rint(expected), abs=0.5)
    grey = np.full((2, 2, 3), 170, np.uint8)
    assert np.array_equal(greyed(grey), grey)  # the grey it dims towards stays


# ------------------------------------------------------------------------- the box by clicks

def test_two_clicks_make_the_box_in_the_frames_pixels():
    shape = (128, 200)
    scale = click_scale(shape)
    assert scale == 6 and max(shape) * scale >= 1024  # the picture is never shown larger than it is
    first = click(None, frame_pixel([90 * scale + 3, 40 * scale], scale, shape))
    assert first.pending == (90, 40) and first.box is None and "opposite corner" in first.message
    # the opposite corner may be above and left of the first: the box holds both clicked pixels
    second = click(first.pending, frame_pixel([60 * scale + 5, 20 * scale + 5], scale, shape))
    assert second.box == (60, 20, 91, 41) and second.pending is None and box_text(second.box) == "60, 20, 91, 41"
    # off the picture, or a box under 3 pixels a side: nothing set, said why
    assert frame_pixel(None, scale, shape) is None and frame_pixel([200 * scale, 0], scale, shape) is None
    off = click((5, 5), None)
    assert off.pending == (5, 5) and off.box is None and "picture" in off.message
    thin = click((5, 5), (6, 30))
    assert thin.box is None and thin.pending is None and "under 3 pixels" in thin.message


def test_clicks_on_the_page_set_the_box_draw_it_and_give_the_strain_ratio(built, built_predictor):
    import gradio as gr

    case = json.loads(built.manifest.read_text().splitlines()[-1])
    bmode_file = str(built.manifest.parent / case["bmode"])
    shown, pending, message = _handler(built_predictor, "show_bmode")(bmode_file, "", None)
    scale = click_scale((SIZE, SIZE))
    assert shown.shape == (SIZE * scale, SIZE * scale, 3) and pending is None and "Click two opposite corners" in message
    clicked = _handler(built_predictor, "box_click")
    after = _handler(built_predictor, "preview_after_click")
    ev = lambda x, y: gr.SelectData(None, {"index": [x * scale + 1, y * scale + 2], "value": None})  # noqa: E731
    text, pending, shown, message = clicked(bmode_file, "", None, ev(30, 25), None)
    assert text == "" and pending == {"corner": (30, 25), "ready": False} and "First corner at x 30, y 25" in message
    assert (shown[25 * scale + scale // 2, 30 * scale + scale // 2] == BOX_COLOUR).all()  # the cross marks it
    # the first click runs nothing
    assert all(v == gr.skip() for v in after(bmode_file, None, text, False, 8, False, pending, None))
    text, pending, shown, message = clicked(bmode_file, text, pending, ev(60, 50), None)
    assert text == "30, 25, 61, 51" and pending == {"corner": None, "ready": True}
    grey = np.repeat(np.asarray(Image.open(bmode_file).convert("L"))[..., None], 3, axis=-1)
    assert np.array_equal(shown, draw_box(grey, (30, 25, 61, 51), scale=scale))
    out = after(bmode_file, None, text, False, 8, False, pending, None)
    r = preview(built_predictor, bmode_file, None, text)
    assert f"synthetic **{r.strain_ratio:.2f}**" in out[-1] and "EI/B" in out[-1] and "Tsukuba" in out[-1]
    # the box on the B-mode (shown at the click scale) and on the synthetic image
    assert np.array_equal(out[0], draw_box(r.bmode, (30, 25, 61, 51), scale=scale))
    assert (np.asarray(Image.open(out[1]))[25, 30:61] == BOX_COLOUR).all()
    # typing stays possible: the typed box is drawn on the B-mode as soon as it is uploaded
    shown, _, _ = _handler(built_predictor, "show_bmode")(bmode_file, "10, 10, 40, 30", None)
    assert np.array_equal(shown, draw_box(grey, (10, 10, 40, 30), scale=scale))


def test_draw_box_outlines_the_box_at_the_display_scale():
    img = np.zeros((20, 30, 3), np.uint8)
    out = draw_box(img, (5, 4, 15, 12), scale=2)
    assert out.shape == (40, 60, 3)
    edge = np.all(out == BOX_COLOUR, axis=-1)
    assert edge[8, 10:30].all() and edge[23, 10:30].all() and edge[8:24, 10].all() and edge[8:24, 29].all()
    assert not edge[12:20, 12:28].any() and not edge[:8].any()


# ------------------------------------------------------------------------- measurements

def test_measurements_of_a_constructed_lesion():
    """A 21-px lesion box, stiff 0.2 in a 31-px disc on a 1.0 background: EI/B is the stiff
    disc's longest dimension over the inscribed circle's (≈ 31/21), score 5 (the hard region
    is more than 1.3× the lesion's size)."""
    from elastogan.measurements import feret_diameter

    yy, xx = np.mgrid[:96, :96]
    stiff = (yy - 48) ** 2 + (xx - 48) ** 2 <= 15**2
    strain = np.where(stiff, 0.2, 1.0).astype(np.float32)
    box = (38, 38, 59, 59)
    lesion = ellipse_in_box(strain.shape, box)
    assert lesion.sum() == pytest.approx(np.pi * 10.5**2, rel=0.05) and lesion[48, 38] and lesion[48, 58]
    assert not lesion[48, 37] and not lesion[48, 59] and not lesion[38, 38]
    m = measure(strain, lesion, (0, 0, 96, 96), np.full((96, 96), 100, np.uint8))
    assert m["ei_b"] == pytest.approx(feret_diameter(stiff) / feret_diameter(lesion)) and m["notes"] == []
    assert m["ei_b"] == pytest.approx(31 / 21, rel=0.05) and m["tsukuba"] == 5
    # a stiff core half the lesion's size: EI/B below 1, the rule scorer's hard core
    core = np.where((yy - 48) ** 2 + (xx - 48) ** 2 <= 5**2, 0.2, 1.0).astype(np.float32)
    assert measure(core, lesion, None, np.full((96, 96), 100, np.uint8))["ei_b"] < 0.6


def test_preview_measures_ei_b_and_tsukuba_on_both_elastograms_and_over_the_draws(built, built_predictor, monkeypatch):
    from elastogan.app.preview_trust import measure_draws
    from elastogan.measurements import ei_b_ratio
    from elastogan.tsukuba import score_tsukuba

    case = json.loads(built.manifest.read_text().splitlines()[-1])
    root = built.manifest.parent
    box = "20, 20, 60, 60"
    r = preview(built_predictor, root / case["bmode"], root / case["emode"], box)
    lesion = ellipse_in_box((SIZE, SIZE), (20, 20, 60, 60))
    strain = built_predictor.predict(r.bmode[..., 0], roi=r.roi)[1]
    for key in ("ei_b", "tsukuba"):
        assert key in r.measured and key in r.real_measured
    if r.measured["ei_b"] is not None:
        assert r.measured["ei_b"] == ei_b_ratio(strain, lesion, r.roi)["ratio"]
    assert r.measured["tsukuba"] == score_tsukuba(strain, lesion, roi=r.roi, bmode=r.bmode[..., 0])
    assert "EI/B" in r.summary() and "Automatic Tsukuba score" in r.summary() and "; real " in r.summary()
    # over K draws of a sampling generator: each draw measured
    strains = built_predictor.sample(r.bmode[..., 0], samples=3, roi=r.roi)
    d = measure_draws(strains, lesion, r.roi, r.bmode[..., 0], 0.9)
    assert d["samples"] == 3 and sum(d["tsukuba"].values()) <= 3
    withk = preview(built_predictor, root / case["bmode"], None, box, samples=3)
    assert withk.measured_draws == measure_draws(strains, lesion, withk.roi, r.bmode[..., 0], 0.9)
    assert "Over the 3 draws" in withk.summary() or not (withk.measured_draws["ei_b"] or withk.measured_draws["tsukuba"])


# ------------------------------------------------------------------------- explanation layer

def test_the_explanation_layer_gives_a_map_and_its_edge_correlation(shipped, phantom, tmp_path):
    from elastogan.explain import edge_correlation, integrated_gradients

    bmode_file, box, _ = phantom
    text = box_text(box)
    out = _handler(shipped, "preview")(str(bmode_file), None, text, False, 8, True, None)
    ig, summary = out[7], out[-1]
    r = preview(shipped, bmode_file, None, text, explain=True)
    e = integrated_gradients(shipped, r.bmode[..., 0], box)
    assert np.array_equal(r.explanation["attribution"], e.attribution) and r.explanation["box"] == box
    assert r.explanation["edge_correlation"] == edge_correlation(e.attribution, r.bmode[..., 0])
    assert abs(r.explanation["edge_correlation"]) < 0.5  # not an edge detector of the B-mode
    assert abs(r.explanation["completeness_gap"]) < 0.05 * abs(e.value - e.baseline_value) + 1e-3
    assert ig.shape == (*r.bmode.shape[:2], 3) and np.array_equal(ig, r.explanation["rgb"])
    assert _saturation(ig) > 5  # drawn in colour over the grey B-mode
    assert f"**{r.explanation['edge_correlation']:.2f}**" in summary and "Adebayo" in summary
    # no box: the elastography box is explained; the layer is off unless asked
    whole = preview(shipped, bmode_file, None, None, explain=True)
    assert whole.explanation["box"] == whole.roi
    assert preview(shipped, bmode_file).explanation is None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.getbasetemp() / "app")


@pytest.fixture(scope="module")
def built_predictor(built):
    return Predictor.from_checkpoint(built.checkpoint, device="cpu")


def test_labels_survive_the_box_and_the_greying(shipped, tmp_path):
    """The SYNTHETIC label stays legible on the greyed, boxed result (white on black)."""
    r = preview(shipped, _pydicom_file("US1_J2KR.dcm"), None, None, tmp_path)
    plain = label_synthetic(np.zeros_like(r.synthetic))
    ys, xs = np.nonzero(np.all(plain == label_synthetic(np.full_like(r.synthetic, 255)), axis=-1))
    shown = r.shown(r.synthetic, synthetic=True)[ys, xs].astype(int)
    text = plain[ys, xs, 0] == 255
    assert shown[text].mean() - shown[~text].mean() > 80
