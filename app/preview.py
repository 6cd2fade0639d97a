"""The clinician preview, as a plain function: B-mode upload → synthetic E-mode, numbers, downloads.

``preview(predictor, bmode_file, real_file, lesion_box, out_dir)`` returns a ``PreviewResult``;
the Gradio page only shows it. The synthetic E-mode is labelled SYNTHETIC wherever it leaves
the function (on screen and in both downloads), so that it is never taken for an acquisition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elastogan.app.uploads import UploadError, load_upload
from elastogan.display import Box, DisplayLayout


@dataclass
class PreviewResult:
    """What the preview shows.

    Attributes:
        bmode: H×W×3 uint8 grey B-mode as uploaded (cropped to its DICOM image region).
        synthetic: H×W×3 uint8 synthetic E-mode, labelled SYNTHETIC.
        real: the real E-mode if one was given.
        roi: the elastography box used.
        strain_ratio: synthetic strain ratio for the lesion box (and ``real_strain_ratio``).
        ncc: NCC of the real and synthetic mapped strain inside the ROI, with the share of real
            pixels that matched the colour map poorly.
        png, dicom: the two downloads (file names say SYNTHETIC).
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
    png: Path | None = None
    dicom: Path | None = None
    notes: list[str] = field(default_factory=list)

    def slider(self) -> tuple[np.ndarray, np.ndarray]:
        """The two images of the slider: the real E-mode (the B-mode when none was given) and
        the synthetic one."""
        return (self.real if self.real is not None else self.bmode), self.synthetic

    def summary(self) -> str:
        """Markdown lines for the page."""
        lines = [f"**Synthetic E-mode** from a {self.bmode.shape[0]}×{self.bmode.shape[1]} B-mode "
                 f"(elastography box {self.roi})."]
        if self.strain_ratio is not None:
            real = "" if self.real_strain_ratio is None else f"; real {self.real_strain_ratio:.2f}"
            lines.append(f"Strain ratio (reference / lesion): synthetic **{self.strain_ratio:.2f}**{real}.")
        if self.ncc is not None:
            lines.append(f"NCC real vs synthetic (mapped strain in the box): **{self.ncc:.3f}** "
                         f"({100 * (self.poor_fraction or 0):.0f} % of real pixels matched the colour map poorly).")
        lines += self.notes
        return "\n\n".join(lines)


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
        raise UploadError(f"The {what} must be four numbers x0, y0, x1, y1 in pixels; got {text!r}.")
    h, w = shape
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise UploadError(f"The {what} {box} is not inside the {w}×{h} (width×height) B-mode.")
    return box  # type: ignore[return-value]


def default_roi(shape: tuple[int, int]) -> Box:
    """The whole frame left of the colour bar."""
    h, w = shape
    return (0, 0, DisplayLayout(h, w).max_roi_x1, h)


def _without_colorbar(emode: np.ndarray, bmode: np.ndarray, colormap: str) -> np.ndarray:
    """``emode`` with the colour bar and its SOFT/HARD labels, where the display path draws
    them, replaced by the B-mode: the box detection must not take them for the elastography
    box (on small frames the labels reach left of ``DisplayLayout.max_roi_x1``)."""
    from elastogan.display import draw_colorbar

    h, w = bmode.shape
    black, white = np.zeros((h, w, 3), np.uint8), np.full((h, w, 3), 255, np.uint8)
    drawn = (draw_colorbar(black, colormap) != black).any(-1) | (draw_colorbar(white, colormap) != white).any(-1)
    return np.where(drawn[..., None], bmode[..., None], emode).astype(np.uint8)


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


def _labelled_png(rgb: np.ndarray) -> bytes:
    """PNG bytes with a ``Description`` text chunk saying SYNTHETIC (besides the burned-in label)."""
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Description", "SYNTHETIC strain elastogram generated by elastogan; not an acquired image")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def preview(predictor, bmode_file: str | Path | None, real_file: str | Path | None = None,
            lesion_box: str | None = None, out_dir: str | Path | None = None) -> PreviewResult:
    """Run the generator on an uploaded B-mode and compare with the real E-mode if given.

    Args:
        predictor: an ``elastogan.predict.Predictor``.
        bmode_file: uploaded PNG/JPEG/DICOM (any name).
        real_file: the real E-mode of the same view, same size (optional).
        lesion_box: ``"x0, y0, x1, y1"`` for the strain ratio (optional).
        out_dir: where the downloads are written (None: no downloads).

    Raises:
        UploadError: a message for the page (bad file, sizes differ, box outside the frame…).
    """
    from elastogan.data.colormap_inversion import detect_roi, invert_emode
    from elastogan.data.loaders import rgb_to_grey
    from elastogan.eval.metrics import MetricError, ncc
    from elastogan.predict import label_synthetic

    from elastogan.app.secondary_capture import synthetic_secondary_capture

    rgb = load_upload(bmode_file, "B-mode")
    bmode = rgb_to_grey(rgb)
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
        found = detect_roi(_without_colorbar(real, bmode, predictor.model.colormap), bmode=bmode)
        if found is not None:
            roi = found
        else:
            notes.append("No coloured elastography box found in the real E-mode: the whole frame is used.")
    emode, strain = predictor.predict(bmode, roi=roi)
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
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(bmode_file).stem)[:40] or "bmode"
        result.png = out_dir / f"{stem}_SYNTHETIC_emode.png"
        result.png.write_bytes(_labelled_png(result.synthetic))
        result.dicom = out_dir / f"{stem}_SYNTHETIC_emode.dcm"
        result.dicom.write_bytes(synthetic_secondary_capture(result.synthetic, model=f"elastogan {predictor.model.name}"))
    return result
