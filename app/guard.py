"""The app's door: an ASGI middleware in front of Gradio's routes, and the headers around all.

- **Headers** on every response the server sends (``SecurityHeaders``):
  ``X-Frame-Options: DENY``, a ``Content-Security-Policy`` (nothing from other origins, no
  framing, no plugins), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``.
  They must sit outside *everything*: Gradio adds its CORS middleware (which answers
  preflight ``OPTIONS`` itself) outside any middleware passed to it, and Starlette's
  ``ServerErrorMiddleware`` (which writes the 500 page) outside those. So the server's
  lifespan (``headers_outermost``) wraps the app's finished middleware stack, before the
  first request is accepted.
- **The app's files** (``served_files``): ``GET elastogan-file/<token>`` answers only the user
  the file was made for (anyone else: 404, the same as no such file), ``no-store``.
- **Gradio's file and upload routes are closed to readers** (403): a reader needs neither (their
  images come from the route above), and an upload is disk space. A lead's uploads are
  limited in size (``Content-Length`` required), in count per hour, and by the total size of
  the upload folder.
- **Logins**: the client address of a ``POST /login`` is handed to the auth function
  (``LOGIN``, a context variable); a login refused because the name or the address is locked
  gets ``locked`` back with a short-lived notice cookie, and the login page it reloads says
  that the account is locked and who can unlock it (Gradio's own page only knows "Incorrect
  Credentials").
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import time
from collections import deque
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Callable

from elastogan.app.served_files import URL_PREFIX, ServedFiles

# Set per POST /login: {"address": client address, "locked": set by the auth function}.
LOGIN: contextvars.ContextVar[dict] = contextvars.ContextVar("elastogan_login")

CSP = ("default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
NOTICE_COOKIE = "elastogan-notice"
UPLOAD_PATHS = ("/upload", "/gradio_api/upload")
MAX_UPLOADS_PER_HOUR = 200
MAX_UPLOAD_FOLDER_BYTES = 2 * 1024**3


def _header(scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v.decode("latin-1")
    return None


def _cookies(scope) -> dict[str, str]:
    raw = _header(scope, b"cookie")
    if not raw:
        return {}
    c = SimpleCookie()
    try:
        c.load(raw)
    except Exception:  # a malformed cookie header is no login
        return {}
    return {k: m.value for k, m in c.items()}


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


class SecurityHeaders:
    """ASGI wrapper: ``SECURITY_HEADERS`` on every HTTP response, replacing any of the same name."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def wrapped(message):
            if message["type"] == "http.response.start":
                ours = {k for k, _ in SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                message = {**message, "headers": kept + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, wrapped)


@contextlib.asynccontextmanager
async def headers_outermost(app):
    """A lifespan for Gradio's app: ``SecurityHeaders`` around its whole middleware stack.

    Starlette builds the stack on the first ASGI call, which is this lifespan's own startup
    message, so it exists here; uvicorn accepts no request before the lifespan has started.
    """
    app.middleware_stack = SecurityHeaders(app.middleware_stack or app.build_middleware_stack())
    yield


class Guard:
    """ASGI middleware (see the module docstring).

    Args:
        app: the wrapped ASGI app (Gradio's).
        files: the app's served files.
        role_of: user name → ``reader``/``lead``/None; None (no study) makes every request
            the local user ``local`` with the lead's rights.
        upload_folder: Gradio's upload folder (for its size limit).
        max_upload_bytes: largest upload request accepted.
        auth_message, locked_message: the login page's text, and what replaces it after a
            locked login.
    """

    def __init__(self, app, *, files: ServedFiles, role_of: Callable[[str | None], str | None] | None,
                 upload_folder: str | Path, max_upload_bytes: int, auth_message: str = "", locked_message: str = "",
                 max_uploads_per_hour: int = MAX_UPLOADS_PER_HOUR,
                 max_upload_folder_bytes: int = MAX_UPLOAD_FOLDER_BYTES, clock=time.monotonic) -> None:
        self.app, self.files, self.role_of = app, files, role_of
        self.upload_folder = Path(upload_folder)
        self.max_upload_bytes, self.max_uploads_per_hour = max_upload_bytes, max_uploads_per_hour
        self.max_upload_folder_bytes = max_upload_folder_bytes
        self.auth_message, self.locked_message = auth_message, locked_message
        self.clock = clock
        self._uploads: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ who
    def user(self, scope) -> str | None:
        if self.role_of is None:
            return "local"
        app = scope.get("app")
        cookie_id = getattr(app, "cookie_id", None)
        if cookie_id is None:
            return None
        cookies = _cookies(scope)
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return getattr(app, "tokens", {}).get(token) if token else None

    def role(self, user: str | None) -> str | None:
        if self.role_of is None:
            return "lead" if user == "local" else None
        return self.role_of(user) if user else None

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.startswith("/" + URL_PREFIX):
            return await self._serve_file(scope, send, path[len(URL_PREFIX) + 1:])
        bare = path.rstrip("/")
        if bare in UPLOAD_PATHS or "/file=" in path or path.startswith(("/file=", "/gradio_api/file")):
            refusal = self._refuse_file_or_upload(scope, bare in UPLOAD_PATHS)
            if refusal is not None:
                return await _plain(send, *refusal)
        if bare == "/login" and scope.get("method") == "POST":
            return await self._login(scope, receive, send)
        if bare in ("", "/config") and scope.get("method") == "GET" and _cookies(scope).get(NOTICE_COOKIE) == "locked":
            return await self._locked_page(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _serve_file(self, scope, send, token: str):
        entry = self.files.get(self.user(scope), token) if scope.get("method") in ("GET", "HEAD") else None
        if entry is None:
            return await _plain(send, 404, "Not found")
        data = entry.path.read_bytes()
        headers = [(b"content-type", entry.media_type.encode()), (b"content-length", str(len(data)).encode()),
                   (b"cache-control", b"no-store")]
        if entry.download_name:
            headers.append((b"content-disposition", f'attachment; filename="{entry.download_name}"'.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data})
        if scope["method"] == "GET":
            self.files.taken(token)

    def _refuse_file_or_upload(self, scope, upload: bool) -> tuple[int, str] | None:
        user = self.user(scope)
        if user is None:
            return None  # Gradio's own login check answers 401
        if self.role(user) != "lead":
            return 403, "Not available to study readers."
        if not upload:
            return None
        length = _header(scope, b"content-length")
        if length is None or not length.isdigit():
            return 411, "An upload needs a Content-Length."
        if int(length) > self.max_upload_bytes + 1024 * 1024:
            return 413, f"An upload is limited to {self.max_upload_bytes // 2**20} MiB."
        now = self.clock()
        with self._lock:
            q = self._uploads.setdefault(user, deque())
            while q and now - q[0] > 3600:
                q.popleft()
            if len(q) >= self.max_uploads_per_hour:
                return 429, f"At most {self.max_uploads_per_hour} uploads an hour; please wait."
            q.append(now)
        if _folder_bytes(self.upload_folder) + int(length) > self.max_upload_folder_bytes:
            return 507, "The app's upload space is full; please try again later."
        return None

    async def _login(self, scope, receive, send):
        client = scope.get("client") or ("", 0)
        ctx = {"address": str(client[0]), "locked": False}
        token = LOGIN.set(ctx)
        started: dict = {}

        async def intercept(message):
            if message["type"] == "http.response.start":
                if message["status"] == 400 and ctx["locked"]:
                    started["replaced"] = True
                    body = json.dumps({"success": False, "locked": True, "detail": self.locked_message}).encode()
                    await send({"type": "http.response.start", "status": 200, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"set-cookie", f"{NOTICE_COOKIE}=locked; Path=/; Max-Age=60; HttpOnly; SameSite=Strict".encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
            elif started.get("replaced"):
                return  # the original body of the replaced response
            await send(message)

        try:
            await self.app(scope, receive, intercept)
        finally:
            LOGIN.reset(token)

    async def _locked_page(self, scope, receive, send):
        """The login page (and its config) with the locked notice in place of the login text."""
        if self.user(scope) is not None or not self.auth_message:
            return await self.app(scope, receive, send)
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"accept-encoding"]
        scope = {**scope, "headers": headers}  # uncompressed, to be edited
        start: dict = {}
        chunks: list[bytes] = []

        async def collect(message):
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = b"".join(chunks).replace(self.auth_message.encode(), self.locked_message.encode())
                    hs = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    hs.append((b"content-length", str(len(body)).encode()))
                    await send({"type": "http.response.start", "status": start.get("status", 200), "headers": hs})
                    await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, collect)


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
