"""``elastogan app``: launch the page, locked down.

- With a study: every page, API call and file needs a login (``auth=`` checks the study's
  scrypt hashes at the same cost whatever the name; wrong passwords are counted per name and
  per client address in the study database: ``accounts.LoginThrottle``). Without one the app
  is a local Preview and listens on loopback only.
- Files: everything the app serves lives in the study's ``served/`` folder (mode 0700, files
  0600; a private temporary folder without a study), made empty at start and removed at stop:
  ``served/files`` holds the reader images and exports, handed out by ``guard.Guard`` to
  their one user; ``served/gradio`` is Gradio's own cache (``GRADIO_TEMP_DIR``: the lead's
  Preview), not the host's shared ``/tmp/gradio``; ``served/preview`` the Preview's downloads.
  The database and ``images/`` are in ``blocked_paths``.
- ``guard.Guard`` in front of Gradio's routes: Gradio's file and upload routes closed to
  readers, upload limits for leads, the locked-login notice. ``guard.SecurityHeaders`` around
  everything (installed by the lifespan ``guard.headers_outermost``): security headers on every
  response, Gradio's CORS preflight answers and its 500 pages included.
- No telemetry, no monitoring dashboard, no run history in the browser, no MCP server, no
  share link, no footer links; uploads capped at ``uploads.MAX_UPLOAD_BYTES``.
"""

from __future__ import annotations

import asyncio
import atexit
import ipaddress
import os
import signal
import tempfile
from pathlib import Path

from elastogan.errors import UserError

from elastogan.app.uploads import MAX_UPLOAD_BYTES

# Before gradio is imported: no analytics or version pings, nothing from the Hugging Face hub.
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_RUN_HISTORY": "False",
}
SERVED_DIR = "served"

AUTH_MESSAGE = ("elastogan reader study: sign in with the name and password your study lead gave you. "
                "After 10 wrong passwords in 10 minutes a name is locked for 10 minutes.")
LOCKED_MESSAGE = ("This account (or your network address) is locked after too many wrong passwords. "
                  "Wait 10 minutes, or ask your study lead to unlock it (elastogan study unlock).")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, study: str | Path | None) -> None:
    """Refuse a non-loopback host without a study: with no accounts, nobody would need to log in."""
    if study is None and not _is_loopback(host):
        raise UserError(f"--host {host}: without --study there are no accounts, so the app listens on loopback only "
                        "(127.0.0.1); give --study to serve others with logins")


def _check_study_not_served(study: Path) -> None:
    shared = [Path(tempfile.gettempdir()) / "gradio"]
    if os.environ.get("GRADIO_TEMP_DIR"):
        shared.append(Path(os.environ["GRADIO_TEMP_DIR"]))
    s = study.resolve()
    for cache in (c.resolve() for c in shared):
        if s == cache or cache in s.parents:
            raise UserError(f"{study}: the study folder lies inside Gradio's shared file cache {cache}; move it elsewhere")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def served_folder(study: str | Path | None) -> Path:
    """The app's own folder for what it serves: ``STUDY/served``, or a private temporary one."""
    if study is None:
        return Path(tempfile.mkdtemp(prefix="elastogan-app-"))
    return Path(study) / SERVED_DIR


def launch(predictor, *, study: str | Path | None, host: str = "127.0.0.1", port: int = 7860,
           block: bool = True, quiet: bool = False):
    """Build and start the app; returns ``(app, local_url)`` when ``block`` is False.

    Raises:
        UserError: a non-loopback host without a study (nobody would need to log in), or a
            study folder that Gradio could serve.
    """
    import shutil

    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    check_host(host, study)
    if study is not None:
        from elastogan.app import study_db

        study = Path(study)
        study_db.check_study(study)
        _check_study_not_served(study)
        os.umask(0o077)  # whatever the app (and Gradio in it) writes: owner only
    served = served_folder(study)
    from elastogan.app.served_files import ServedFiles

    files = ServedFiles(served / "files")  # empties served/files (leftovers of a killed run)
    for sub in ("gradio", "preview"):
        shutil.rmtree(served / sub, ignore_errors=True)
        (served / sub).mkdir(mode=0o700, parents=True)
    os.chmod(served, 0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(served / "gradio")  # read when the Blocks and the App are made

    import gradio as gr  # noqa: F401  (after the environment above)
    from starlette.middleware import Middleware

    from elastogan.app.accounts import LoginThrottle, role_of
    from elastogan.app.guard import LOGIN, Guard, headers_outermost
    from elastogan.app.ui import CSS, build_app, theme

    auth = None
    blocked: list[str] = [str((served / "files").resolve())]
    if study is not None:
        from elastogan.app import study_db

        blocked += [str((study / f).resolve()) for f in (study_db.DB_NAME, study_db.DB_NAME + "-wal",
                                                          study_db.DB_NAME + "-shm", study_db.IMAGES_DIR)]
        throttle = LoginThrottle()

        async def auth(name: str, password: str) -> bool:
            ctx = LOGIN.get(None)
            result = await asyncio.to_thread(throttle.attempt, study, name, password, ctx["address"] if ctx else "")
            if ctx is not None:
                ctx["locked"] = result.locked
            return result.ok

    guard = Middleware(Guard, files=files, role_of=(lambda name: role_of(study, name)) if study is not None else None,
                       upload_folder=served / "gradio", max_upload_bytes=MAX_UPLOAD_BYTES,
                       auth_message=AUTH_MESSAGE if auth else "", locked_message=LOCKED_MESSAGE)
    demo = build_app(predictor, study, files=files, downloads=served / "preview")
    demo.queue(default_concurrency_limit=4, max_size=256)

    def clean_up() -> None:
        files.remove_folder()
        shutil.rmtree(served, ignore_errors=True)

    atexit.register(clean_up)
    if block:  # a SIGTERM stops the server like Ctrl-C, so the served files are removed
        signal.signal(signal.SIGTERM, _interrupt)
    _, local_url, _ = demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        auth_message=AUTH_MESSAGE if auth else None,
        share=False,
        enable_monitoring=False,
        run_history=False,
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        footer_links=[],
        max_file_size=MAX_UPLOAD_BYTES,
        allowed_paths=[],
        blocked_paths=blocked,
        app_kwargs={"middleware": [guard], "lifespan": headers_outermost},
        show_error=False,  # only our own gr.Error messages reach the page, never a traceback
        quiet=quiet,
        prevent_thread_lock=not block,
        theme=theme(),
        css=CSS,
    )
    if block:
        clean_up()
    return demo, local_url
