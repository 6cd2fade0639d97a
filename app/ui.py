"""The Gradio page: Preview, Reader study and Study lead tabs, wired to the plain handlers.

Each callback only adapts: it takes the logged-in name from ``gr.Request`` (never from the
page), calls a function of :mod:`~elastogan.app.preview` or :mod:`~elastogan.app.reading`, and
turns its result into component values. Roles are checked inside those functions on every
call; the tabs a role does not use are hidden only for tidiness.

Readers get no Preview: running the generator on a study B-mode would reproduce the synthetic
image of that case and unblind the reading. Progress lives in the study database, never in
``gr.State`` (lost on reload), so a reload or a restart shows the reader's first unanswered
image.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import gradio as gr

from elastogan.errors import UserError

from elastogan.app import study_db
from elastogan.app.accounts import role_of
from elastogan.app.preview import DEFAULT_SAMPLES, MAX_SAMPLES, preview
from elastogan.app.reader_png import reader_png
from elastogan.app.reading import ReaderView, lead_export_zip, lead_progress, reader_view, submit_answer

log = logging.getLogger("elastogan.app")

JUDGE_LABELS = [("Real", "real"), ("Synthetic", "synthetic")]
TSUKUBA_LABELS = [("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "5"), ("Cyst pattern (BGR)", "cyst")]
BIRADS_LABELS = [(b, b) for b in study_db.BIRADS_CHOICES]
PROGRESS_HEADERS = ["reader", "group", "answered", "total", "percent", "last answer (UTC)"]

# System fonts only: the page must not reach for web fonts (no network in clinics or CI).
FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "Consolas", "monospace"]
# Scale small frames up to the panel (the browser would otherwise show a 64-pixel phantom
# as a stamp); aspect ratio kept.
CSS = """
.frame img { width: 100%; height: 100%; object-fit: contain; }
footer { display: none !important; }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=FONTS, font_mono=MONO)


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def build_app(predictor, study: str | Path | None = None, *, downloads: str | Path | None = None) -> gr.Blocks:
    """The app's Blocks (not launched).

    Args:
        predictor: an ``elastogan.predict.Predictor`` for the Preview tab.
        study: a study folder; None for a Preview-only app (no accounts).
        downloads: folder for the files the page offers (default: a fresh temporary folder).
    """
    study = Path(study) if study is not None else None
    downloads = Path(downloads) if downloads is not None else Path(tempfile.mkdtemp(prefix="elastogan-app-"))

    def role(request: gr.Request | None) -> str | None:
        if study is None:
            return "local"
        return role_of(study, _user(request))

    # ---------------------------------------------------------------- preview
    def run_preview(bmode_file, real_file, lesion_box, uncertainty, n_samples, request: gr.Request):
        if role(request) not in ("local", "lead"):
            raise gr.Error("The preview is not available to study readers.")
        empty = (None, None, None, None, None, None)
        try:
            out = Path(tempfile.mkdtemp(dir=downloads))
            r = preview(predictor, bmode_file, real_file, lesion_box, out, samples=n_samples if uncertainty else 0)
        except UserError as e:
            return (*empty, f"⚠️ {e}")
        except Exception:  # a bug must not take the app down; the log keeps the traceback
            log.exception("preview failed")
            return (*empty, "⚠️ The image could not be processed. Please check the file and try again.")
        return r.bmode, r.synthetic, r.real, r.slider(), r.downloads(), r.sd, r.summary()

    # ---------------------------------------------------------------- reader
    def show(v: ReaderView, keep_choices: bool = False):
        done = v.image is None
        choices = (gr.skip(),) * 3 if keep_choices else (None, None, None)  # cleared for a new image
        # The elastogram goes out as a fixed-length PNG (reader_png): Gradio's own compressed
        # encoding would let the byte count tell real from synthetic.
        elastogram = None if v.elastogram is None else str(reader_png(v.elastogram, downloads / "reader"))
        return (v.progress_text, v.bmode, elastogram, v.image or "", *choices,
                v.message or ("" if not done else "You may close this page."),
                gr.Button(interactive=not done))

    def reader_open(request: gr.Request):
        try:
            return show(reader_view(study, _user(request)))
        except UserError as e:
            raise gr.Error(str(e)) from None

    def reader_answer(image, judged, tsukuba, birads, request: gr.Request):
        try:
            v = submit_answer(study, _user(request), image, judged, tsukuba, birads)
            return show(v, keep_choices=v.image == image)
        except UserError as e:
            raise gr.Error(str(e)) from None

    # ---------------------------------------------------------------- lead
    def lead_table(request: gr.Request):
        try:
            return lead_progress(study, _user(request))
        except UserError as e:
            raise gr.Error(str(e)) from None

    def lead_export(request: gr.Request):
        try:
            return str(lead_export_zip(study, _user(request), tempfile.mkdtemp(dir=downloads)))
        except UserError as e:
            raise gr.Error(str(e)) from None

    # ---------------------------------------------------------------- page
    def on_load(request: gr.Request):
        r = role(request)
        if study is None:
            return "Local preview (no study).", gr.Tab(visible=True)
        who = f"Signed in as **{_user(request)}** ({r}) · [Log out](logout)"
        selected = {"reader": "reader", "lead": "lead"}.get(r)
        return (who, gr.Tabs(selected=selected), gr.Tab(visible=r == "lead"), gr.Tab(visible=r == "reader"),
                gr.Tab(visible=r == "lead"))

    with gr.Blocks(title="elastogan — virtual strain elastography") as demo:
        gr.Markdown("## elastogan · virtual strain elastography")
        header = gr.Markdown()
        with gr.Tabs() as tabs:
            with gr.Tab("Preview", id="preview", visible=study is None) as tab_preview:
                gr.Markdown("Upload a B-mode (PNG, JPEG or DICOM, with or without a file extension) and, "
                            "optionally, the real E-mode of the same view. The synthetic elastogram is "
                            "**labelled SYNTHETIC** on screen and in every download.")
                with gr.Row():
                    bmode_file = gr.File(label="B-mode (PNG, JPEG or DICOM)", type="filepath", elem_id="bmode-upload")
                    real_file = gr.File(label="Real E-mode, same view (optional)", type="filepath", elem_id="real-upload")
                lesion_box = gr.Textbox(elem_id="lesion-box", label="Lesion box for the strain ratio: x0, y0, x1, y1 in pixels (optional)",
                                        placeholder="e.g. 90, 100, 150, 150")
                with gr.Row():
                    uncertainty = gr.Checkbox(label="Uncertainty layer: per-pixel SD of K samples of the generator "
                                              "(a grey/magenta map, not an elastogram), and the strain ratio's interval",
                                              value=False, elem_id="uncertainty")
                    n_samples = gr.Number(label=f"Samples K (2–{MAX_SAMPLES})", value=DEFAULT_SAMPLES, minimum=2,
                                          maximum=MAX_SAMPLES, precision=0, step=1, elem_id="n-samples")
                run = gr.Button("Make synthetic elastogram", variant="primary")
                message = gr.Markdown(elem_id="preview-message")
                # Captions above the images, not Gradio's label badge: the badge would cover the
                # top-left corner, where the SYNTHETIC label is burned in.
                with gr.Row():
                    out_bmode = _frame("B-mode", height=300)
                    out_synth = _frame("Synthetic E-mode (SYNTHETIC)", height=300)
                    out_sd = _frame("SD (uncertainty) — not an elastogram", height=300)
                    out_real = _frame("Real E-mode", height=300)
                gr.Markdown("**Slider**: real E-mode (or the B-mode when none was given) on the left, "
                            "synthetic on the right.")
                slider = gr.ImageSlider(label="Real (or B-mode) | synthetic", show_label=False, format="png",
                                        interactive=False)
                downloads_out = gr.File(label="Downloads: synthetic E-mode as PNG and DICOM Secondary Capture "
                                        "(and the SD picture with the uncertainty layer)",
                                        file_count="multiple", interactive=False)
                run.click(run_preview, [bmode_file, real_file, lesion_box, uncertainty, n_samples],
                          [out_bmode, out_synth, out_real, slider, downloads_out, out_sd, message],
                          api_name="preview", concurrency_limit=1)
            if study is not None:
                with gr.Tab("Reader study", id="reader", visible=False) as tab_reader:
                    progress = gr.Markdown(elem_id="reader-progress")
                    with gr.Row():
                        r_bmode = _frame("B-mode", height=360, buttons=["fullscreen"])
                        r_elasto = _frame("Elastogram", height=360, buttons=["fullscreen"])
                    image_id = gr.Textbox(visible=False)
                    judged = gr.Radio(JUDGE_LABELS, label="Is this elastogram real or synthetic?", elem_id="judged")
                    tsukuba = gr.Radio(TSUKUBA_LABELS, label="Tsukuba elasticity score", elem_id="tsukuba")
                    birads = gr.Radio(BIRADS_LABELS, label="BI-RADS category", elem_id="birads")
                    submit = gr.Button("Save answer and show next image", variant="primary")
                    r_message = gr.Markdown(elem_id="reader-message")
                    reader_outputs = [progress, r_bmode, r_elasto, image_id, judged, tsukuba, birads, r_message, submit]
                    submit.click(reader_answer, [image_id, judged, tsukuba, birads], reader_outputs,
                                 api_name="reader_answer", concurrency_limit=None)
                    refresh = gr.Button("Reload current image", size="sm")
                    refresh.click(reader_open, None, reader_outputs, api_name="reader_view", concurrency_limit=None)
                with gr.Tab("Study lead", id="lead", visible=False) as tab_lead:
                    table = gr.Dataframe(headers=PROGRESS_HEADERS, label="Progress per reader", interactive=False,
                                         elem_id="progress-table")
                    with gr.Row():
                        refresh_table = gr.Button("Refresh progress")
                        export = gr.Button("Export answers (answers, scores, ratings, per-case CSV)", variant="primary")
                    export_file = gr.File(label="Study export (zip)", interactive=False, elem_id="export-file")
                    refresh_table.click(lead_table, None, table, api_name="lead_progress")
                    export.click(lead_export, None, export_file, api_name="lead_export")
        if study is None:
            demo.load(on_load, None, [header, tab_preview], api_visibility="private")
        else:
            demo.load(on_load, None, [header, tabs, tab_preview, tab_reader, tab_lead], api_visibility="private")
            demo.load(_when_reader(reader_open, role), None, reader_outputs, api_visibility="private")
            demo.load(_when_lead(lead_table, role), None, table, api_visibility="private")
    return demo


def _frame(caption: str, **kwargs) -> gr.Image:
    """A lossless (PNG) output image with its caption above it, nothing drawn over it."""
    with gr.Column(min_width=160):
        gr.Markdown(f"**{caption}**")
        return gr.Image(label=caption, show_label=False, format="png", interactive=False, elem_classes="frame", **kwargs)


def _when_reader(fn, role):
    def load(request: gr.Request):
        if role(request) != "reader":
            return [gr.skip()] * 9
        return fn(request)
    return load


def _when_lead(fn, role):
    def load(request: gr.Request):
        if role(request) != "lead":
            return gr.skip()
        return fn(request)
    return load
