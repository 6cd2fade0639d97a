"""``elastogan app``: launch the page, locked down.

- With a study: every page, API call and file needs a login (``auth=`` checks the study's
  scrypt hashes; 10 wrong passwords for a name lock it for 10 minutes); without one the app is a local Preview and listens on loopback only.
- No telemetry, no monitoring dashboard, no run history in the browser, no MCP server, no
  share link, no footer links; uploads capped at ``uploads.MAX_UPLOAD_BYTES``.
- The study folder is in ``blocked_paths`` and outside Gradio's cache, and nothing in it is
  ever handed to Gradio as a file: the database cannot be fetched over HTTP.
"""

from __future__ import annotations

import ipaddress
import os
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

AUTH_MESSAGE = "elastogan reader study: sign in with the name and password your study lead gave you."


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
    from gradio import utils

    cache = Path(utils.get_cache_folder()).resolve()
    s = study.resolve()
    if s == cache or cache in s.parents:
        raise UserError(f"{study}: the study folder lies inside Gradio's file cache {cache}; move it elsewhere")


def launch(predictor, *, study: str | Path | None, host: str = "127.0.0.1", port: int = 7860,
           block: bool = True, quiet: bool = False):
    """Build and start the app; returns ``(app, local_url)`` when ``block`` is False.

    Raises:
        UserError: a non-loopback host without a study (nobody would need to log in), or a
            study folder that Gradio could serve.
    """
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    import gradio as gr  # noqa: F401  (after the environment above)

    from elastogan.app import study_db
    from elastogan.app.accounts import LoginThrottle
    from elastogan.app.ui import CSS, build_app, theme

    check_host(host, study)
    auth = None
    blocked: list[str] = []
    if study is not None:
        study = Path(study)
        study_db.check_study(study)
        _check_study_not_served(study)
        blocked = [str(study.resolve())]

        throttle = LoginThrottle()

        def auth(name: str, password: str) -> bool:
            return throttle.check(study, name, password)

    downloads = Path(tempfile.mkdtemp(prefix="elastogan-app-"))
    demo = build_app(predictor, study, downloads=downloads)
    demo.queue(default_concurrency_limit=4, max_size=256)
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
        show_error=False,  # only our own gr.Error messages reach the page, never a traceback
        quiet=quiet,
        prevent_thread_lock=not block,
        theme=theme(),
        css=CSS,
    )
    return demo, local_url
