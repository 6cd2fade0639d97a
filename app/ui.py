"""The Gradio page: Preview, Reader study and Study lead tabs, wired to the plain handlers.

Each callback only adapts: it takes the logged-in name from ``gr.Request`` (never from the
page), calls a function of :mod:`~elastogan.app.preview` or :mod:`~elastogan.app.reading`, and
turns its result into component values. Roles are checked inside those functions on every
call; the tabs a role does not use are hidden only for tidiness.

Readers get no Preview: running the generator on a study B-mode would reproduce the synthetic
image of that case and unblind the reading. Progress lives in the study database, never in
``gr.State`` (lost on reload), so a reload or a restart shows the reader's current reading.

A reader's images and the lead's export are the app's own files (``served_files``): written
for that one user under random names, shown as ``<img>``/``<a>`` in HTML, never handed to
Gradio's cache. The reader's inputs reach the handler raw (``preprocess=False``): the
handler checks them and a refusal quotes at most a short prefix of a value.

In the browser: "Save" first asks the server whether the session is still signed in; if not
(signed out in another tab, or the server restarted), the answer is kept in the browser and
the page says "please sign in again"; after signing in, the kept answer is filled in again for
the same image. "Log out" leaves in the same tab.
"""

from __future__ import annotations

import html
import logging
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from elastogan.errors import UserError

from elastogan.app import study_db
from elastogan.app.accounts import role_of
from elastogan.app.box_clicks import box_text, click, frame_pixel
from elastogan.app.preview import DEFAULT_SAMPLES, MAX_SAMPLES, parse_box, preview
from elastogan.app.preview_trust import click_scale, draw_box, ood_html
from elastogan.app.uploads import load_bmode_upload
from elastogan.app.reader_png import display_pixels, fixed_size_png
from elastogan.app.reading import FINAL, ReaderView, lead_export_zip, lead_progress, reader_view, submit_answer
from elastogan.app.served_files import ServedFiles, url
from elastogan.app.study_db import STAGE_BMODE

log = logging.getLogger("elastogan.app")

JUDGE_LABELS = [("Real", "real"), ("Synthetic", "synthetic")]
TSUKUBA_LABELS = [("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "5"), ("Cyst pattern (BGR)", "cyst")]
BIRADS_LABELS = [(b, b) for b in study_db.BIRADS_CHOICES]
PROGRESS_HEADERS = ["reader", "group", "answered", "total", "percent", "last answer (UTC)"]
EXPORT_NAME = "elastogan_study_export.zip"
PREVIEW_TTL_S = 3600.0  # the Preview's download folders are removed after an hour (Gradio's cache too)

# System fonts only: the page must not reach for web fonts (no network in clinics or CI).
FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "Consolas", "monospace"]
# Preview frames scale small images up to the panel (aspect kept). A reader's images come at
# their display size already (reader_png.display_pixels) and are never scaled down below it
# unless the window is narrower.
CSS = """
.frame img { width: 100%; height: 100%; object-fit: contain; }
.study-image img { max-width: 100%; height: auto; image-rendering: pixelated; display: block; }
.study-image { min-width: 400px; }
footer { display: none !important; }
.ood-banner { background: #fdecea; color: #611a15; border-left: 6px solid #d32f2f; padding: 10px 14px;
              font-size: 1.05em; }
.ood-ok, .ood-none { color: #555; font-size: 0.95em; }
#bmode-frame img { cursor: crosshair; }
"""

STALE = ("⚠️ **Your session has ended** (you signed out, or the study server restarted). "
         "Please [sign in again](./): your answer is kept in this browser and will be filled in again "
         "for this image after you sign in.")
RESTORED = "Your answer from before you signed in again is filled in: check it and press Save."

# The visible Save button runs this first: it sends the answer (by clicking the hidden button
# wired to the handler) only while the session is signed in; otherwise it keeps the answer.
SAVE_JS = """
async (token, judged, tsukuba, birads, confidence) => {
  let ok = false;
  try { ok = (await fetch("gradio_api/login_check", {credentials: "same-origin", cache: "no-store"})).ok; }
  catch (e) { ok = false; }
  if (ok) { document.querySelector("#save-now").click(); return ""; }
  try { localStorage.setItem("elastogan-pending", JSON.stringify({token, judged, tsukuba, birads, confidence})); }
  catch (e) {}
  return %s;
}
""" % repr(STALE)
RESTORE_JS = """
(token, judged, tsukuba, birads, confidence, message) => {
  let p = null;
  try { p = JSON.parse(localStorage.getItem("elastogan-pending") || "null"); } catch (e) {}
  if (!p || !token || p.token !== token) return [judged, tsukuba, birads, confidence, message];
  localStorage.removeItem("elastogan-pending");
  return [p.judged, p.tsukuba, p.birads, p.confidence, %s];
}
""" % repr(RESTORED)
LOGOUT_JS = "() => { window.location.assign('logout'); }"


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=FONTS, font_mono=MONO)


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def _img_html(files: ServedFiles, owner: str, rgb: np.ndarray, alt: str) -> str:
    """An ``<img>`` of ``rgb`` at display size, served to ``owner`` only, under a fresh random URL."""
    big = display_pixels(rgb)
    token = files.put(owner, fixed_size_png(big), media_type="image/png", group="reader")
    return (f'<img src="{url(token)}" width="{big.shape[1]}" height="{big.shape[0]}" alt="{alt}" '
            f'class="study-frame">')


def build_app(predictor, study: str | Path | None = None, *, files: ServedFiles | None = None,
              downloads: str | Path | None = None) -> gr.Blocks:
    """The app's Blocks (not launched).

    Args:
        predictor: an ``elastogan.predict.Predictor`` for the Preview tab.
        study: a study folder; None for a Preview-only app (no accounts).
        files: the app's served files (default: a fresh private temporary folder).
        downloads: folder for the Preview's downloads (default: a fresh private temporary folder).
    """
    study = Path(study) if study is not None else None
    files = files if files is not None else ServedFiles(Path(tempfile.mkdtemp(prefix="elastogan-app-")) / "files")
    downloads = Path(downloads) if downloads is not None else Path(tempfile.mkdtemp(prefix="elastogan-app-"))

    def role(request: gr.Request | None) -> str | None:
        if study is None:
            return "local"
        return role_of(study, _user(request))

    # ---------------------------------------------------------------- preview
    def run_preview(bmode_file, real_file, lesion_box, uncertainty, n_samples, explain, request: gr.Request):
        if role(request) not in ("local", "lead"):
            raise gr.Error("The preview is not available to study readers.", print_exception=False)
        empty = (None, None, None, None, None, None, "", None)
        _sweep(downloads, PREVIEW_TTL_S)  # Gradio has its own copies of older downloads by now
        try:
            out = Path(tempfile.mkdtemp(dir=downloads))
            r = preview(predictor, bmode_file, real_file, lesion_box, out, samples=n_samples if uncertainty else 0,
                        explain=bool(explain))
        except UserError as e:
            return (*empty, f"⚠️ {e}")
        except Exception:  # a bug must not take the app down; the log keeps the traceback
            log.exception("preview failed")
            return (*empty, "⚠️ The image could not be processed. Please check the file and try again.")
        # the file: its name and metadata say SYNTHETIC (the shown one: box drawn, greyed out of distribution)
        synthetic = str(r.shown_png or r.png) if r.png is not None else r.shown(r.synthetic, synthetic=True)
        sd = str(r.sd_png) if r.sd_png is not None else r.sd
        bmode = r.shown(r.bmode, scale=click_scale(r.bmode.shape[:2]))
        real = r.shown(r.real) if r.real is not None else None
        ig = r.explanation["rgb"] if r.explanation is not None else None
        return (bmode, synthetic, real, r.slider(), r.downloads(), sd, ood_html(r.ood, r.ood_threshold), ig,
                r.summary())

    def show_bmode(bmode_file, lesion_box, request: gr.Request):
        """The uploaded B-mode at once (to draw the box on), the typed box on it."""
        if role(request) not in ("local", "lead"):
            raise gr.Error("The preview is not available to study readers.", print_exception=False)
        if bmode_file is None:
            return None, None, ""
        try:
            bmode = load_bmode_upload(bmode_file)
        except UserError as e:
            return None, None, f"⚠️ {e}"
        except Exception:
            log.exception("B-mode upload failed")
            return None, None, "⚠️ The image could not be processed. Please check the file and try again."
        grey = np.repeat(bmode[..., None], 3, axis=-1)
        return (draw_box(grey, _typed_box(lesion_box, bmode.shape, quiet=True), scale=click_scale(bmode.shape)), None,
                "Click two opposite corners of the lesion on the B-mode (or type the box), then make the elastogram.")

    def box_click(bmode_file, lesion_box, pending, evt: gr.SelectData, request: gr.Request):
        """A click on the B-mode: the first corner, or the box (then the preview runs)."""
        if role(request) not in ("local", "lead"):
            raise gr.Error("The preview is not available to study readers.", print_exception=False)
        try:
            bmode = load_bmode_upload(bmode_file)
        except UserError as e:
            return gr.skip(), None, gr.skip(), f"⚠️ {e}"
        scale = click_scale(bmode.shape)
        corner = tuple(pending["corner"]) if isinstance(pending, dict) and pending.get("corner") else None
        c = click(corner, frame_pixel(evt.index, scale, bmode.shape))
        grey = np.repeat(bmode[..., None], 3, axis=-1)
        text = box_text(c.box) if c.box is not None else lesion_box
        shown = draw_box(grey, c.box if c.box is not None else _typed_box(lesion_box, bmode.shape, quiet=True),
                         scale=scale, corner=c.pending)
        return text, {"corner": c.pending, "ready": c.box is not None}, shown, c.message

    def preview_after_click(bmode_file, real_file, lesion_box, uncertainty, n_samples, explain, pending,
                            request: gr.Request):
        if not (isinstance(pending, dict) and pending.get("ready")):
            return [gr.skip()] * len(preview_outputs)
        return run_preview(bmode_file, real_file, lesion_box, uncertainty, n_samples, explain, request)

    # ---------------------------------------------------------------- reader
    def show(v: ReaderView, user: str, keep_choices: bool = False):
        files.drop(user, "reader")  # the previous screen's files are no longer needed
        done = v.token is None
        staged = v.stage == STAGE_BMODE
        bmode = "" if v.bmode is None else _img_html(files, user, v.bmode, "B-mode")
        if v.elastogram is not None:
            elastogram = _img_html(files, user, v.elastogram, "Elastogram")
        elif staged:
            elastogram = "<p><em>The elastogram is shown after your BI-RADS on the B-mode alone.</em></p>"
        else:
            elastogram = ""
        clear = {} if keep_choices else {"value": None}  # choices are cleared for a new screen
        return (v.progress_text, bmode, elastogram, v.token or "",
                gr.Radio(visible=not staged and not done, **clear),
                gr.Radio(visible=not staged and not done, **clear),
                gr.Radio(label="BI-RADS category (B-mode alone)" if staged else "BI-RADS category", visible=not done, **clear),
                gr.skip() if keep_choices else None,
                v.message or ("" if not done else "You may close this page."),
                gr.Button(interactive=not done))

    def reader_open(request: gr.Request):
        user = _user(request)
        try:
            return show(reader_view(study, user), user)
        except UserError as e:
            raise _refusal(e) from None

    def reader_answer(token, judged, tsukuba, birads, confidence, request: gr.Request):
        user = _user(request)
        try:
            v = submit_answer(study, user, token if isinstance(token, str) else None, judged, tsukuba, birads, confidence)
            return show(v, user, keep_choices=v.token == token)
        except UserError as e:
            raise _refusal(e) from None

    # ---------------------------------------------------------------- lead
    def lead_table(request: gr.Request):
        try:
            return lead_progress(study, _user(request))
        except UserError as e:
            raise _refusal(e) from None

    def lead_export(request: gr.Request):
        user = _user(request)
        try:
            data = lead_export_zip(study, user)
        except UserError as e:
            raise _refusal(e) from None
        files.drop(user, "export")
        token = files.put(user, data, media_type="application/zip", download_name=EXPORT_NAME, once=True, group="export")
        return (f'<a href="{url(token)}" download="{EXPORT_NAME}">Download {EXPORT_NAME}</a> '
                "(one download; export again for a fresh copy)")

    # ---------------------------------------------------------------- page
    def on_load(request: gr.Request):
        r = role(request)
        if study is None:
            return "Local preview (no study).", gr.Tab(visible=True)
        who = f"Signed in as **{html.escape(str(_user(request)))}** ({r})"
        selected = {"reader": "reader", "lead": "lead"}.get(r)
        return (who, gr.Tabs(selected=selected), gr.Tab(visible=r == "lead"), gr.Tab(visible=r == "reader"),
                gr.Tab(visible=r == "lead"))

    with gr.Blocks(title="elastogan — virtual strain elastography", delete_cache=(600, 3600)) as demo:
        with gr.Row():
            gr.Markdown("## elastogan · virtual strain elastography")
            header = gr.Markdown(elem_id="signed-in")
            if study is not None:
                logout = gr.Button("Log out", size="sm", elem_id="logout", scale=0)
                logout.click(None, js=LOGOUT_JS)
        with gr.Tabs() as tabs:
            with gr.Tab("Preview", id="preview", visible=study is None) as tab_preview:
                gr.Markdown("Upload a B-mode (PNG, JPEG or DICOM, with or without a file extension) and, "
                            "optionally, the real E-mode of the same view. The synthetic elastogram is "
                            "**labelled SYNTHETIC** on screen and in every download.")
                with gr.Row():
                    bmode_file = gr.File(label="B-mode (PNG, JPEG or DICOM)", type="filepath", elem_id="bmode-upload")
                    real_file = gr.File(label="Real E-mode, same view (optional)", type="filepath", elem_id="real-upload")
                lesion_box = gr.Textbox(elem_id="lesion-box", label="Lesion box for the strain ratio, EI/B and Tsukuba "
                                        "score: click two opposite corners on the B-mode, or type x0, y0, x1, y1 in "
                                        "pixels (optional)",
                                        placeholder="e.g. 90, 100, 150, 150", max_length=200)
                pending = gr.State(None)  # the first corner of a box being clicked (nothing to keep over a reload)
                with gr.Row():
                    uncertainty = gr.Checkbox(label="Uncertainty layer: per-pixel SD of K samples of the generator "
                                              "(a grey/magenta map, not an elastogram), and the strain ratio's interval",
                                              value=False, elem_id="uncertainty")
                    n_samples = gr.Number(label=f"Samples K (2–{MAX_SAMPLES})", value=DEFAULT_SAMPLES, minimum=2,
                                          maximum=MAX_SAMPLES, precision=0, step=1, elem_id="n-samples")
                    explain = gr.Checkbox(label="Explanation layer: which B-mode pixels drive the predicted stiffness "
                                          "in the box (integrated gradients; a few seconds)", value=False,
                                          elem_id="explain")
                run = gr.Button("Make synthetic elastogram", variant="primary")
                ood_status = gr.HTML(elem_id="ood-status")
                message = gr.Markdown(elem_id="preview-message")
                # Captions above the images, not Gradio's label badge: the badge would cover the
                # top-left corner, where the SYNTHETIC label is burned in. Downloads only where
                # the file is the labelled one (its name and metadata say SYNTHETIC); no Share.
                with gr.Row():
                    out_bmode = _frame("B-mode — click two corners of the lesion", height=300, elem_id="bmode-frame")
                    out_synth = _frame("Synthetic E-mode (SYNTHETIC)", height=300, buttons=["download", "fullscreen"],
                                       elem_id="synthetic-frame")
                    out_sd = _frame("SD (uncertainty) — not an elastogram", height=300, buttons=["download", "fullscreen"])
                    out_real = _frame("Real E-mode", height=300)
                    out_explain = _frame("Explanation (integrated gradients) — not an elastogram", height=300,
                                         elem_id="explain-frame")
                gr.Markdown("**Slider** — ◀ left: real E-mode (or the B-mode when none was given), labelled REAL "
                            "(B-MODE) · right: **SYNTHETIC** E-mode, labelled in both top corners ▶",
                            elem_id="slider-caption")
                slider = gr.ImageSlider(label="Real (or B-mode) | SYNTHETIC", show_label=False, format="png",
                                        interactive=False, buttons=["fullscreen"], elem_id="preview-slider")
                downloads_out = gr.File(label="Downloads: synthetic E-mode as PNG and DICOM Secondary Capture "
                                        "(and the SD picture with the uncertainty layer), all named SYNTHETIC",
                                        file_count="multiple", interactive=False)
                preview_inputs = [bmode_file, real_file, lesion_box, uncertainty, n_samples, explain]
                preview_outputs = [out_bmode, out_synth, out_real, slider, downloads_out, out_sd, ood_status,
                                   out_explain, message]
                run.click(run_preview, preview_inputs, preview_outputs, api_name="preview", concurrency_limit=1)
                bmode_file.change(show_bmode, [bmode_file, lesion_box], [out_bmode, pending, message],
                                  api_visibility="private")
                out_bmode.select(box_click, [bmode_file, lesion_box, pending], [lesion_box, pending, out_bmode, message],
                                 api_visibility="private").then(
                    preview_after_click, [*preview_inputs, pending], preview_outputs, api_visibility="private",
                    concurrency_limit=1)
            if study is not None:
                with gr.Tab("Reader study", id="reader", visible=False) as tab_reader:
                    progress = gr.Markdown(elem_id="reader-progress")
                    with gr.Row():
                        with gr.Column(min_width=400):
                            gr.Markdown("**B-mode**")
                            r_bmode = gr.HTML(elem_id="reader-bmode", elem_classes="study-image")
                        with gr.Column(min_width=400):
                            gr.Markdown("**Elastogram**")
                            r_elasto = gr.HTML(elem_id="reader-elastogram", elem_classes="study-image")
                            # The bar's own letters are drawn at the frame's resolution; say it in type too.
                            gr.Markdown("Colour bar at the right edge: **SOFT** at the top, **HARD** at the bottom.",
                                        elem_id="bar-legend")
                    token = gr.Textbox(visible="hidden", elem_id="reader-token")
                    judged = gr.Radio(JUDGE_LABELS, label="Is this elastogram real or synthetic?", elem_id="judged")
                    tsukuba = gr.Radio(TSUKUBA_LABELS, label="Tsukuba elasticity score", elem_id="tsukuba")
                    birads = gr.Radio(BIRADS_LABELS, label="BI-RADS category", elem_id="birads")
                    confidence = gr.Number(label="Confidence of malignancy: 0 = certainly not cancer, 100 = certainly "
                                           "cancer (optional)", value=None, minimum=0, maximum=100,
                                           elem_id="confidence")
                    gr.Markdown(f"**{FINAL}**", elem_id="final-note")
                    save = gr.Button("Save answer and show next image", variant="primary", elem_id="save")
                    save_now = gr.Button("send", visible="hidden", elem_id="save-now")
                    r_message = gr.Markdown(elem_id="reader-message")
                    reader_outputs = [progress, r_bmode, r_elasto, token, judged, tsukuba, birads, confidence, r_message, save]
                    answer_inputs = [token, judged, tsukuba, birads, confidence]
                    save.click(None, answer_inputs, r_message, js=SAVE_JS)
                    save_now.click(reader_answer, answer_inputs, reader_outputs, api_name="reader_answer",
                                   concurrency_limit=None, preprocess=False)
                    refresh = gr.Button("Reload current image", size="sm")
                    refresh.click(reader_open, None, reader_outputs, api_name="reader_view", concurrency_limit=None)
                with gr.Tab("Study lead", id="lead", visible=False) as tab_lead:
                    table = gr.Dataframe(headers=PROGRESS_HEADERS, label="Progress per reader", interactive=False,
                                         elem_id="progress-table")
                    with gr.Row():
                        refresh_table = gr.Button("Refresh progress")
                        export = gr.Button("Export answers (answers, scores, ratings, readings, per-case CSV)",
                                           variant="primary")
                    export_file = gr.HTML(elem_id="export-file")
                    refresh_table.click(lead_table, None, table, api_name="lead_progress")
                    export.click(lead_export, None, export_file, api_name="lead_export")
        if study is None:
            demo.load(on_load, None, [header, tab_preview], api_visibility="private")
        else:
            demo.load(on_load, None, [header, tabs, tab_preview, tab_reader, tab_lead], api_visibility="private")
            demo.load(_when_reader(reader_open, role, len(reader_outputs)), None, reader_outputs,
                      api_visibility="private").then(
                None, [*answer_inputs, r_message], [judged, tsukuba, birads, confidence, r_message], js=RESTORE_JS)
            demo.load(_when_lead(lead_table, role), None, table, api_visibility="private")
    return demo


def _sweep(folder: Path, age_s: float) -> None:
    """Remove the entries of ``folder`` last changed more than ``age_s`` ago."""
    import shutil
    import time

    cutoff = time.time() - age_s
    for p in folder.iterdir() if folder.is_dir() else ():
        if p.stat().st_mtime < cutoff:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _typed_box(text: str | None, shape: tuple[int, int], *, quiet: bool = False):
    """The box typed in the lesion-box field, or None (blank; or, ``quiet``, not a box in the frame)."""
    try:
        return parse_box(text, shape)
    except UserError:
        if quiet:
            return None
        raise


def _refusal(e: UserError) -> gr.Error:
    """A user's mistake for the page: its (short) message, no traceback in the log."""
    return gr.Error(str(e), print_exception=False)


def _frame(caption: str, *, buttons: list[str] | None = None, elem_id: str | None = None, **kwargs) -> gr.Image:
    """A lossless (PNG) output image with its caption above it, nothing drawn over it."""
    with gr.Column(min_width=160):
        gr.Markdown(f"**{caption}**")
        return gr.Image(label=caption, show_label=False, format="png", interactive=False, elem_classes="frame",
                        buttons=buttons or ["fullscreen"], elem_id=elem_id, **kwargs)


def _when_reader(fn, role, n_outputs: int):
    def load(request: gr.Request):
        if role(request) != "reader":
            return [gr.skip()] * n_outputs
        return fn(request)
    return load


def _when_lead(fn, role):
    def load(request: gr.Request):
        if role(request) != "lead":
            return gr.skip()
        return fn(request)
    return load
