"""The clinician preview, as a plain function: B-mode upload → synthetic E-mode, numbers, downloads.

``preview(predictor, bmode_file, real_file, lesion_box, out_dir, samples=K)`` returns a
``PreviewResult``; the Gradio page only shows it. The synthetic E-mode is labelled SYNTHETIC
wherever it leaves the function (on screen and in both downloads), so that it is never taken
for an acquisition.

The synthetic E-mode is always *one sample* of the generator (seed ``seed``): what a scanner
would have shown. With ``samples`` K ≥ 2 the preview adds an uncertainty layer: the per-pixel
standard deviation of K samples, drawn by ``elastogan.uncertainty.sd_png`` on its own grey /
magenta scale with its own labelled bar, so that it can never be taken for an elastogram, and,
for a lesion box, the strain ratio's interval over the samples.

The B-mode is read by the library's one loader rule (``elastogan.bmode_input``): a dual-display
DICOM gives its grey panel here exactly as in ``elastogan predict``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elastogan.app.study_db import short
from elastogan.app.uploads import UploadError, load_bmode_upload, load_upload
from elastogan.display import Box, DisplayLayout, colorbar_mask

# The uncertainty layer's sample count: the page's default and the most one request may ask for
# (each sample is one generator pass; the server stays responsive for everyone else).
DEFAULT_SAMPLES = 8
MAX_SAMPLES = 32


@dataclass
class PreviewResult:
    """What the preview shows.

    Attributes:
        bmode: H×W×3 uint8 grey B-mode as uploaded (a DICOM's B-mode region: ``elastogan.bmode_input``).
        synthetic: H×W×3 uint8 synthetic E-mode, labelled SYNTHETIC.
        real: the real E-mode if one was given.
        roi: the elastography box used.
        strain_ratio: synthetic strain ratio for the lesion box (and ``real_strain_ratio``).
        ncc: NCC of the real and synthetic mapped strain inside the ROI, with the share of real
            pixels that matched the colour map poorly.
        samples: how many samples the uncertainty layer drew (None: no layer).
        sd: H×W×3 uint8 picture of the per-pixel SD of the samples (labelled "SYNTHETIC SD
            (uncertainty)"; never an elastogram: ``elastogan.uncertainty.labelled_sd_png``), or None.
        sd_mean: mean SD inside the elastography box.
        ratio_interval: the strain ratio over the samples: ``{"value", "lo", "hi", "samples"}``
            (``elastogan.uncertainty.strain_ratio_interval``), for a lesion box.
        png, dicom: the two downloads (file names say SYNTHETIC); ``sd_png`` the SD picture's.
        notes: lines for the page (warnings, how a number was obtained).
    """

    bmode: np.ndarray
    synthetic: np.ndarray
    real: np.ndarray | None = None
    roi: Box | None = None
    strain_ratio: float | None = None
    real_strain_ratio: float | None = None
    ncc: float | None = None
    poor_fraction: float | None = None
    samples: int | None = None
    sd: np.ndarray | None = None
    sd_mean: float | None = None
    ratio_interval: dict | None = None
    png: Path | None = None
    dicom: Path | None = None
    sd_png: Path | None = None
    notes: list[str] = field(default_factory=list)

    def downloads(self) -> list[str]:
        """The files the page offers."""
        return [str(p) for p in (self.png, self.dicom, self.sd_png) if p is not None]

    def slider(self) -> tuple[np.ndarray, np.ndarray]:
        """The two images of the slider: the real E-mode (the B-mode when none was given),
        labelled REAL (B-MODE) top left, and the synthetic one, labelled SYNTHETIC in both top
        corners: whichever part of it the slider uncovers from the right shows the label
        (the page's caption above the slider says it too)."""
        from elastogan.predict import label_synthetic

        left = label_synthetic(self.real, "REAL") if self.real is not None else label_synthetic(self.bmode, "B-MODE")
        return left, label_top_right(self.synthetic)

    def summary(self) -> str:
        """Markdown lines for the page."""
        lines = [f"**Synthetic E-mode** from a {self.bmode.shape[0]}×{self.bmode.shape[1]} B-mode "
                 f"(elastography box {self.roi})."]
        if self.strain_ratio is not None:
            real = "" if self.real_strain_ratio is None else f"; real {self.real_strain_ratio:.2f}"
            lines.append(f"Strain ratio (reference / lesion): synthetic **{self.strain_ratio:.2f}**{real}.")
        if self.samples is not None:
            line = f"Uncertainty over {self.samples} samples: mean SD in the box **{self.sd_mean:.3f}** (strain units, 0–1)"
            if self.ratio_interval is not None:
                i = self.ratio_interval
                line += (f"; strain ratio of the mean map **{i['value']:.2f}**, "
                         f"{i['level']:.0%} interval of the samples {i['lo']:.2f}–{i['hi']:.2f}"
                         + (" (calibrated on held-out cases)" if i.get("calibrated") else " (not calibrated)"))
            lines.append(line + ". The SD picture is not an elastogram.")
        if self.ncc is not None:
            lines.append(f"NCC real vs synthetic (mapped strain in the box): **{self.ncc:.3f}** "
                         f"({100 * (self.poor_fraction or 0):.0f} % of real pixels matched the colour map poorly).")
        lines += self.notes
        return "\n\n".join(lines)


def label_top_right(rgb: np.ndarray) -> np.ndarray:
    """A copy of ``rgb`` with the SYNTHETIC label (``predict.label_synthetic``'s) also in the
    top-right corner."""
    from elastogan.predict import label_synthetic

    black = label_synthetic(np.zeros_like(rgb))
    white = label_synthetic(np.full_like(rgb, 255))
    ys, xs = np.nonzero(np.all(black == white, axis=-1))  # the label's own pixels: the same on any image
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    out = rgb.copy()
    w = rgb.shape[1]
    out[y0:y1, w - x1 : w - x0] = black[y0:y1, x0:x1]
    return out


def parse_box(text: str | None, shape: tuple[int, int], what: str = "lesion box") -> Box | None:
    """``"x0, y0, x1, y1"`` (pixels, end-exclusive) → a box inside an H×W frame; blank → None."""
    if text is None or not text.strip():
        return None
    parts = re.split(r"[,\s]+", text.strip())
    try:
        box = tuple(int(round(float(p))) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise UploadError(f"The {what} must be four numbers x0, y0, x1, y1 in pixels; got {short(text)}.")
    h, w = shape
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise UploadError(f"The {what} {box} is not inside the {w}×{h} (width×height) B-mode.")
    return box  # type: ignore[return-value]


def default_roi(shape: tuple[int, int]) -> Box:
    """The whole frame left of the colour bar."""
    h, w = shape
    return (0, 0, DisplayLayout(h, w).max_roi_x1, h)


def _box_mask(shape: tuple[int, int], box: Box) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[box[1] : box[3], box[0] : box[2]] = True
    return m


def _strain_ratio(strain: np.ndarray, lesion: Box, roi: Box) -> float:
    from elastogan.tsukuba import strain_ratio

    try:
        return strain_ratio(strain, _box_mask(strain.shape, lesion), roi)
    except ValueError as e:
        raise UploadError(f"No strain ratio for the lesion box {lesion}: {e}.") from None


def _labelled_png(rgb: np.ndarray, description: str = "SYNTHETIC strain elastogram generated by elastogan; not an acquired image") -> bytes:
    """PNG bytes with a ``Description`` text chunk saying SYNTHETIC (besides the burned-in label)."""
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Description", description)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def check_samples(samples: int | float | None) -> int:
    """The uncertainty layer's sample count: 0 (no layer) or a whole number from 2 to
    ``MAX_SAMPLES`` (a page's number field may send ``8.0``)."""
    ok = (isinstance(samples, (int, float, np.integer, np.floating)) and not isinstance(samples, bool)
          and float(samples).is_integer() and (samples == 0 or 2 <= samples <= MAX_SAMPLES))
    if not ok:
        raise UploadError(f"The number of samples for the uncertainty layer must be a whole number from 2 to "
                          f"{MAX_SAMPLES}; got {short(samples)}.")
    return int(samples)


def preview(predictor, bmode_file: str | Path | None, real_file: str | Path | None = None,
            lesion_box: str | None = None, out_dir: str | Path | None = None, *,
            samples: int = 0, seed: int = 0) -> PreviewResult:
    """Run the generator on an uploaded B-mode and compare with the real E-mode if given.

    Args:
        predictor: an ``elastogan.predict.Predictor``.
        bmode_file: uploaded PNG/JPEG/DICOM (any name).
        real_file: the real E-mode of the same view, same size (optional).
        lesion_box: ``"x0, y0, x1, y1"`` for the strain ratio (optional).
        out_dir: where the downloads are written (None: no downloads).
        samples: 0 for no uncertainty layer, or K from 2 to ``MAX_SAMPLES``: the SD of K samples
            (sample 0 is the synthetic E-mode shown) and the strain ratio's interval.
        seed: the generator's seed; the same seed gives the same images.

    Raises:
        UploadError: a message for the page (bad file, sizes differ, box outside the frame…).
    """
    from elastogan.data.colormap_inversion import detect_roi, invert_emode
    from elastogan.eval.metrics import MetricError, ncc
    from elastogan.predict import label_synthetic

    from elastogan.app.secondary_capture import synthetic_secondary_capture

    samples = check_samples(samples)
    bmode = load_bmode_upload(bmode_file)
    shape = bmode.shape
    lesion = parse_box(lesion_box, shape)
    notes: list[str] = []
    real = None
    roi = default_roi(shape)
    if real_file is not None:
        real = load_upload(real_file, "real E-mode")
        if real.shape[:2] != shape:
            raise UploadError(f"The real E-mode is {real.shape[1]}×{real.shape[0]} but the B-mode is "
                              f"{shape[1]}×{shape[0]} (width×height); upload the two images of one view.")
        found = detect_roi(real, bmode=bmode, ignore=colorbar_mask(*shape))
        if found is not None:
            roi = found
        else:
            notes.append("No coloured elastography box found in the real E-mode: the whole frame is used.")
    emode, strain = predictor.predict(bmode, roi=roi, seed=seed)
    result = PreviewResult(bmode=np.repeat(bmode[..., None], 3, axis=-1), synthetic=label_synthetic(emode),
                           real=real, roi=roi, notes=notes)
    real_strain = None
    if real is not None:
        inv = invert_emode(real, roi, predictor.model.colormap, bmode=bmode)
        real_strain, result.poor_fraction = inv.strain, inv.poor_fraction
        try:
            result.ncc = ncc(real_strain, strain, _box_mask(shape, roi))
        except MetricError as e:
            notes.append(f"NCC not defined: {e}.")
    if lesion is not None:
        result.strain_ratio = _strain_ratio(strain, lesion, roi)
        if real_strain is not None:
            result.real_strain_ratio = _strain_ratio(real_strain, lesion, roi)
    if samples:
        _uncertainty(result, predictor, bmode, lesion, samples, seed)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(bmode_file).stem)[:40] or "bmode"
        result.png = out_dir / f"{stem}_SYNTHETIC_emode.png"
        result.png.write_bytes(_labelled_png(result.synthetic))
        result.dicom = out_dir / f"{stem}_SYNTHETIC_emode.dcm"
        result.dicom.write_bytes(synthetic_secondary_capture(result.synthetic, model=f"elastogan {predictor.model.name}"))
        if result.sd is not None:
            result.sd_png = out_dir / f"{stem}_SYNTHETIC_strain_sd.png"
            result.sd_png.write_bytes(_labelled_png(result.sd, "SYNTHETIC per-pixel standard deviation of elastogan "
                                                               "samples (uncertainty); not an elastogram"))
    return result


def _uncertainty(result: PreviewResult, predictor, bmode: np.ndarray, lesion: Box | None, samples: int, seed: int) -> None:
    """Fill the uncertainty layer of ``result`` from ``samples`` draws of the generator."""
    from elastogan.uncertainty import labelled_sd_png

    roi = result.roi
    strains = predictor.sample(bmode, samples=samples, seed=seed, roi=roi)  # (K, H, W)
    summary = predictor.summarise(strains)  # intervals widened by the checkpoint's calibration, if any
    result.samples = samples
    result.sd = labelled_sd_png(summary.sd, roi)
    result.sd_mean = float(np.nanmean(summary.sd[_box_mask(bmode.shape, roi)]))
    if not predictor.stochastic:
        result.notes.append("This model draws no noise: its samples are all equal, so the SD is 0 everywhere. "
                            "It gives no uncertainty estimate.")
    if lesion is not None:
        try:
            result.ratio_interval = predictor.ratio_interval(strains, _box_mask(bmode.shape, lesion), roi)
            c = predictor.calibration
            result.ratio_interval["calibrated"] = c is not None and c.ratio_scale is not None
        except ValueError as e:
            raise UploadError(f"No strain ratio for the lesion box {lesion}: {e}.") from None
