"""Shared set-up of the app tests: a tiny checkpoint, a study, readers, and live servers.

Built once per test session (module-level cache keyed by pytest's base temp folder): a
``SIZE``² numpy phantom manifest (4 train, 2 val, 25 test cases with pathology), a generator
trained for 2 steps (on frames resized to 64²), and a study of the 25 test cases (split design:
25 readings per reader). Each test that changes answers copies the study folder first.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from tiny_manifest import make_manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct-horse-7"
LEAD = "chief"
N_TEST_CASES = 25
SIZE = 128  # frame side of the test data: large enough for a legible colour bar in the screenshots
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# A generator small enough to train 2 steps in seconds on a shared CPU.
TINY = ["model.base_channels=4", "model.max_channels=16", "model.num_levels=4", "model.embed_dim=16",
        "model.transformer_depth=1", "model.num_heads=2", "model.norm_groups=2", "model.disc_channels=4",
        "model.disc_layers=1", "optim.batch_size=2", "optim.steps=2", "data.image_size=64", "data.workers=0",
        "run.log_every=1", "run.val_every=2", "run.ckpt_every=2", "run.samples=1"]

_CACHE: dict[str, "Built"] = {}


@dataclass(frozen=True)
class Built:
    manifest: Path
    checkpoint: Path
    study: Path  # pristine: copy before changing it


def build(root: Path) -> Built:
    """The session's manifest, checkpoint and study (made on the first call)."""
    key = str(root)
    if key in _CACHE:
        return _CACHE[key]
    from elastogan.app.study_create import create_study
    from elastogan.training.config import CONFIG_DIR, load_config
    from elastogan.training.trainer import train

    data = root / "data"
    manifest = make_manifest(data, size=(SIZE, SIZE), splits={"train": 4, "val": 2, "test": N_TEST_CASES}, seed=6)
    recs = [json.loads(line) for line in manifest.read_text().splitlines()]
    for i, r in enumerate(recs):
        r["pathology"] = "malignant" if i % 2 else "benign"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in recs))
    run = root / "run"
    train(load_config(CONFIG_DIR / "tiny.yaml", TINY), data=manifest, out=run, progress=False)
    checkpoint = run / "checkpoints" / "best.pt"
    study = root / "study"
    create_study(manifest, checkpoint, study, device="cpu", log=lambda *_: None)
    _CACHE[key] = Built(manifest, checkpoint, study)
    return _CACHE[key]


def copy_study(built: Built, dest: Path, readers: int = 2, lead: bool = True, groups: bool = True,
               design: str | None = None, repeat: float = 0.0, washout_days: float = 0.0) -> Path:
    """A fresh copy of the study with readers ``r0..`` (junior/senior alternately) and the lead ``chief``.

    ``design`` (with ``repeat``, ``washout_days``) re-declares the copy's design before the
    readers are added (the images are the same for every design); None keeps the study's
    (``split``, ``study create``'s default).
    """
    from elastogan.app import study_db
    from elastogan.app.accounts import add_user

    shutil.copytree(built.study, dest)
    if design is not None:
        with study_db.connect(dest) as con, study_db.transaction(con):
            study_db.set_design(con, design, repeat, washout_days)
    for i in range(readers):
        add_user(dest, f"r{i}", PASSWORD, role="reader", group=("junior", "senior")[i % 2] if groups else None)
    if lead:
        add_user(dest, LEAD, PASSWORD, role="lead")
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``elastogan app`` in a subprocess on a free loopback port."""

    def __init__(self, checkpoint: Path, study: Path | None, tmp: Path, port: int | None = None) -> None:
        self.checkpoint, self.study, self.tmp = checkpoint, study, tmp
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None
        self.log = tmp / f"server-{self.port}.log"

    def start(self, timeout: float = 90.0) -> "Server":
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.tmp / "gradio-cache"), "OMP_NUM_THREADS": "1",
               "GRADIO_ANALYTICS_ENABLED": "False"}
        cmd = [sys.executable, "-m", "elastogan", "app", "--checkpoint", str(self.checkpoint), "--port", str(self.port),
               "--device", "cpu"]
        if self.study is not None:
            cmd += ["--study", str(self.study)]
        self.proc = subprocess.Popen(cmd, cwd=self.tmp, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url, timeout=2.0).status_code == 200:
                    return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no clean-up, as a crash or an OOM kill."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


_SERVERS: dict[str, Server] = {}


def shared_server(root: Path) -> Server:
    """One live server for the session's gradio_client and browser tests (stopped at exit).

    Its study has readers r0-r3 (r0: access checks, r1: a whole reading, r2: the blinding walk,
    r3: the browser) and the lead.
    """
    key = str(root)
    if key not in _SERVERS:
        built = build(root)
        tmp = root / "shared-server"
        tmp.mkdir()
        study = copy_study(built, tmp / "study", readers=4)
        _SERVERS[key] = Server(built.checkpoint, study, tmp).start()
        atexit.register(_SERVERS[key].stop)
    return _SERVERS[key]


def login(url: str, name: str, password: str = PASSWORD) -> httpx.Client:
    """An HTTP client holding the login cookie of ``name``."""
    c = httpx.Client(base_url=url, timeout=30.0)
    r = c.post("login", data={"username": name, "password": password})
    r.raise_for_status()
    if not r.json().get("success"):
        raise RuntimeError(f"login of {name} refused: {r.text[:200]}")
    return c


def call_raw(c: httpx.Client, api_name: str, data: list) -> tuple[str, list]:
    """Call an endpoint over plain HTTP; returns the raw text of the whole response and its data."""
    r = c.post(f"gradio_api/call/{api_name}", json={"data": data})
    r.raise_for_status()
    event = r.json()["event_id"]
    s = c.get(f"gradio_api/call/{api_name}/{event}")
    s.raise_for_status()
    text = s.text
    kind, payload = None, None
    for line in text.splitlines():
        if line.startswith("event: "):
            kind = line[7:].strip()
        elif line.startswith("data: ") and kind in ("complete", "error"):
            payload = json.loads(line[6:])
            break
    if kind != "complete":
        raise RuntimeError(f"{api_name} failed: {text[-500:]}")
    return r.text + text, payload
