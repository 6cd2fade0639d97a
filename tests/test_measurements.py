"""The measurements a radiologist reads (issue 14 §3): EI/B on lesions of known sizes,
Bland–Altman against its published example, and the real-vs-synthetic report."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from elastogan.eval.measurements.bland_altman import bland_altman, bland_altman_png
from elastogan.eval.measurements.report import case_labels, measure_case, measurement_report
from elastogan.eval.reader_stats.roc import delong, paired_test
from elastogan.measurements import ei_b_ratio, feret_diameter, stiff_region

H, W = 96, 128
YY, XX = np.mgrid[:H, :W]


def ellipse(cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((YY - cy) / ry) ** 2 + ((XX - cx) / rx) ** 2 <= 1.0


def strain_with(stiff: np.ndarray, *, hard: float = 0.2, soft: float = 1.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    s = np.where(stiff, hard, soft) + noise * np.random.default_rng(seed).standard_normal((H, W))
    return s.astype(np.float32)


def test_feret_diameter_of_shapes_of_known_size():
    bar = np.zeros((H, W), bool)
    bar[40, 10:41] = True
    assert feret_diameter(bar) == 31.0
    rect = np.zeros((H, W), bool)
    rect[10:14, 20:24] = True  # 4×4 pixels: centres 3 apart on each side
    assert feret_diameter(rect) == pytest.approx(np.hypot(3, 3) + 1)
    assert feret_diameter(ellipse(48, 64, 8, 20)) == 41.0  # long axis 2·20 + 1
    assert feret_diameter(np.zeros((4, 4), bool)) == 0.0


@pytest.mark.parametrize("stiff_rx, expected", [(12, 25 / 25), (18, 37 / 25), (24, 49 / 25)])
def test_ei_b_is_the_stiff_regions_length_over_the_lesions(stiff_rx, expected):
    lesion = ellipse(48, 64, 6, 12)  # 25 px long on the B-mode
    stiff = ellipse(48, 64, stiff_rx / 2, stiff_rx)  # a stiff halo, as a carcinoma's desmoplasia
    r = ei_b_ratio(strain_with(stiff), lesion)
    assert r["b"] == 25.0 and r["ratio"] == pytest.approx(expected)


def test_a_benign_lesion_smaller_on_the_elastogram_and_a_soft_one_not_seen_at_all():
    lesion = ellipse(48, 64, 8, 16)  # 33 px
    core = ellipse(48, 64, 4, 8)  # only the core is stiff: 17 px
    assert ei_b_ratio(strain_with(core), lesion)["ratio"] == pytest.approx(17 / 33)
    soft = ei_b_ratio(strain_with(np.zeros((H, W), bool)), lesion)
    assert soft["ei"] == 0.0 and soft["ratio"] == 0.0


def test_stiff_tissue_apart_from_the_lesion_and_hard_speckle_do_not_count():
    lesion = ellipse(48, 40, 6, 12)  # 25 px
    stiff = lesion | ellipse(48, 100, 10, 20)  # another stiff structure, not touching
    speckle = np.zeros((H, W), bool)
    speckle[48, 53] = speckle[48, 55] = True  # single hard pixels beside the lesion
    r = ei_b_ratio(strain_with(stiff | speckle), lesion)
    assert r["ratio"] == pytest.approx(1.0)
    region = stiff_region(strain_with(stiff | speckle), lesion)
    assert not region[48, 100] and not region[48, 55]
    # noise in the soft background does not change the measured length
    assert ei_b_ratio(strain_with(ellipse(48, 40, 9, 18), noise=0.05), lesion)["ratio"] == pytest.approx(37 / 25)


def test_the_roi_bounds_the_stiff_region_and_bad_input_is_refused():
    lesion = ellipse(48, 64, 6, 12)
    stiff = ellipse(48, 64, 10, 30)  # 61 px long, but the ROI keeps 40 columns of it
    roi = (44, 0, 84, H)
    strain = np.where(np.isfinite(strain_with(stiff)) & (XX >= 44) & (XX < 84), strain_with(stiff), np.nan)
    inside = (XX >= 44) & (XX < 84)
    assert feret_diameter(stiff) == 61.0
    # corner to corner of the 40 columns kept (the opening rounds the cut corners a little)
    assert 40 <= ei_b_ratio(strain, lesion, roi)["ei"] <= feret_diameter(stiff & inside) < 45
    with pytest.raises(ValueError, match="one shape"):
        ei_b_ratio(np.zeros((4, 4)), lesion)
    with pytest.raises(ValueError, match="inside the ROI"):
        ei_b_ratio(strain_with(stiff), lesion, (0, 0, 10, 10))


def test_bland_altman_reproduces_the_published_example():
    # Bland & Altman, Lancet 1986;i:307, Table 1 (Wright − mini Wright peak flow meter, l/min)
    wright = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
    mini = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]
    r = bland_altman(mini, wright)
    assert (round(r["bias"], 1), round(r["sd"], 1), r["n"]) == (-2.1, 38.8, 17)
    assert r["loa"] == pytest.approx([r["bias"] - 1.959964 * r["sd"], r["bias"] + 1.959964 * r["sd"]], rel=1e-6)
    assert r["bias_ci"][0] < r["bias"] < r["bias_ci"][1]
    with pytest.raises(ValueError, match="at least 2 pairs"):
        bland_altman([1.0], [2.0])
    with pytest.raises(ValueError, match="one length"):
        bland_altman([1.0, 2.0], [2.0])


def rows_and_labels(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, labels = [], {}
    for i in range(n):
        malignant = i % 2
        sr = (4.0 if malignant else 1.5) + rng.normal(0, 0.3)
        ei_b = (1.5 if malignant else 0.8) + rng.normal(0, 0.1)
        tsukuba = 5 if malignant else (2 if i % 4 else "cyst")
        rows.append({"case": f"c{i}", "strain_ratio_real": sr, "strain_ratio_synthetic": sr + 0.25,
                     "ei_b_real": ei_b, "ei_b_synthetic": rng.uniform(0.5, 2.0), "tsukuba_real": tsukuba,
                     "tsukuba_synthetic": tsukuba, "tsukuba_label": tsukuba})
        labels[f"c{i}"] = {"malignant": malignant, "strain_ratio_true": sr - 0.5}
    return rows, labels


def test_the_report_measures_agreement_and_compares_diagnostic_value_by_paired_delong():
    rows, labels = rows_and_labels()
    res, lines, png = measurement_report(rows, labels)
    ba = res["bland_altman"]
    assert ba["strain_ratio"]["bias"] == pytest.approx(0.25) and ba["strain_ratio"]["sd"] == pytest.approx(0, abs=1e-12)
    assert ba["strain_ratio_real_vs_true"]["bias"] == pytest.approx(0.5)
    assert ba["ei_b"]["n"] == 40
    t = res["tsukuba"]["synthetic_vs_real"]
    assert t["agreement"] == 1.0 and t["kappa_linear"]["value"] == pytest.approx(1.0) and t["n_with_cyst"] == 10
    auc = res["auc_malignancy"]
    assert auc["strain_ratio"]["auc_real"] == 1.0 and auc["strain_ratio"]["auc_synthetic"] == 1.0
    assert auc["tsukuba"]["auc_real"] == 1.0  # malignant 5, benign 2 or cyst (ranked below 1)
    # EI/B: real separates, the synthetic values are noise: the paired test is the project's DeLong
    truth = np.array([labels[r["case"]]["malignant"] for r in rows])
    ref = paired_test(delong(np.array([[r["ei_b_real"] for r in rows], [r["ei_b_synthetic"] for r in rows]]), truth))
    assert auc["ei_b"]["auc_real"] == 1.0 and auc["ei_b"]["delong"]["p"] == pytest.approx(ref["p"])
    assert auc["ei_b"]["delong"]["p"] < 0.05
    text = "\n".join(lines)
    assert "Bland–Altman" in text and "paired DeLong" in text and "| strain ratio, synthetic − real | 40 | 0.250" in text
    assert Image.open(io.BytesIO(png)).size == (2 * 460, 380)


def test_the_mean_of_k_draws_ratio_is_judged_for_malignancy_beside_one_draw_s():
    """One draw's ratio carries noise that hides malignancy, the mean of the K draws' does not:
    both AUCs are reported, each against the real map's by the paired DeLong test."""
    rows, labels = rows_and_labels()
    rng = np.random.default_rng(3)
    for r in rows:
        r["strain_ratio_mean_of_samples"] = r["strain_ratio_synthetic"]
        r["strain_ratio_synthetic"] = float(rng.uniform(1.0, 5.0))
    res, lines, _ = measurement_report(rows, labels)
    auc = res["auc_malignancy"]
    assert auc["strain_ratio_mean_of_samples"]["auc_synthetic"] == 1.0 and auc["strain_ratio_mean_of_samples"]["n"] == 40
    assert auc["strain_ratio"]["auc_synthetic"] < 0.8 and auc["strain_ratio"]["delong"]["p"] < 0.05
    assert res["bland_altman"]["strain_ratio_mean_of_samples"]["bias"] == pytest.approx(0.25)
    text = "\n".join(lines)
    assert "| strain ratio of the mean of K draws (predict's value) | 40 (20) | 1.000 | 1.000 |" in text
    assert "| strain ratio of the mean of K draws, synthetic − real | 40 | 0.250" in text


def test_cases_without_values_or_one_class_only_give_notes_not_nan():
    rows, labels = rows_and_labels(6)
    for r in rows:
        r["ei_b_synthetic"] = None
    benign = {k: {**v, "malignant": 0} for k, v in labels.items()}
    res, lines, png = measurement_report(rows, benign)
    assert res["bland_altman"]["ei_b"]["bias"] is None and res["bland_altman"]["ei_b"]["n"] == 0
    assert "needs benign and malignant" in res["auc_malignancy"]["strain_ratio"]["note"]
    assert Image.open(io.BytesIO(png)).size == (460, 380)  # the strain-ratio panel alone
    assert not re.search(r"\bnan\b", "\n".join(lines).lower())


def test_measure_case_and_case_labels():
    lesion = ellipse(48, 64, 6, 12)
    row = measure_case(strain_with(ellipse(48, 64, 9, 18)), strain_with(lesion), lesion, None)
    assert row == {"ei_b_real": pytest.approx(37 / 25), "ei_b_synthetic": pytest.approx(1.0)}
    assert measure_case(strain_with(lesion), strain_with(lesion), None, None) == {"ei_b_real": None, "ei_b_synthetic": None}

    class Case:
        def __init__(self, id, pathology, source):
            self.id, self.pathology, self.source = id, pathology, source

    got = case_labels([Case("a", "malignant", {"strain_ratio_true": 3.2}), Case("b", "benign", {}), Case("c", None, {})])
    assert got == {"a": {"malignant": 1, "strain_ratio_true": 3.2}, "b": {"malignant": 0, "strain_ratio_true": None},
                   "c": {"malignant": None, "strain_ratio_true": None}}


def test_bland_altman_figure_is_a_png_per_panel():
    png = bland_altman_png([("a", [1.0, 2.0, 3.0], [1.1, 2.3, 2.9])])
    assert Image.open(io.BytesIO(png)).format == "PNG"
    with pytest.raises(ValueError, match="at least one panel"):
        bland_altman_png([])
