"""Load and faults on a live server: 10 readers × 25 answers at once, each stored exactly once;
the server SIGKILLed mid-study and restarted, no acknowledged answer lost, readers resume.

The measured figures are printed (``pytest -s``) and written to ``app_load_figures.json`` in
the test's temporary folder.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from app_support import N_TEST_CASES, PASSWORD, Server, build, call_raw, copy_study, login  # noqa: E402

pytestmark = pytest.mark.slow

LOAD_READERS = 10
FAULT_READERS = 4
PER_READER = N_TEST_CASES  # 25: a whole reading (split design: one image of each case)


def _client(url: str, name: str):
    from gradio_client import Client

    return Client(url, auth=(name, PASSWORD), verbose=False, download_files=False)


def _answers(study: Path) -> list[tuple]:
    """``(reader, view token, judged, tsukuba, birads)`` of every stored answer (the token the page sent)."""
    with sqlite3.connect(study / "study.sqlite") as con:
        return con.execute("SELECT a.reader, v.token, a.judged, a.tsukuba, a.birads FROM answers a JOIN views v"
                           " ON v.reader = a.reader AND v.position = a.position AND v.stage = 2"
                           " ORDER BY a.rowid").fetchall()


class Reader(threading.Thread):
    """Answers its reading over plain HTTP (the page's own calls) until ``limit`` answers or the
    server is gone; records what the server acknowledged."""

    def __init__(self, url: str, name: str, limit: int, start_gate: threading.Barrier | None = None,
                 retry_every: int = 0) -> None:
        super().__init__(daemon=True)
        self.url, self.name, self.limit, self.gate, self.retry_every = url, name, limit, start_gate, retry_every
        self.acked: list[tuple] = []
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            c = login(self.url, self.name)
            image = call_raw(c, "reader_view", [])[1][3]
            if self.gate is not None:
                self.gate.wait(timeout=120)
            k = 0
            while image and len(self.acked) < self.limit:
                answer = (("real", "synthetic")[k % 2], str(1 + k % 5), ("2", "3", "4a", "4b", "4c", "5")[k % 6])
                out = call_raw(c, "reader_answer", [image, *answer, None])[1]
                self.acked.append((self.name, image, *answer))
                if self.retry_every and k % self.retry_every == 0:  # the same submit again: a retry
                    call_raw(c, "reader_answer", [image, "synthetic", "5", "5", None])
                    self.retries += 1
                image = out[3]
                k += 1
        except BaseException as e:  # the server was killed: stop like a browser would
            self.error = e


def test_load_then_sigkill_and_restart(built_load, tmp_path):
    built, study, tmp = built_load
    server = Server(built.checkpoint, study, tmp).start()
    figures: dict = {}
    try:
        # --- load: 10 readers answer their whole reading at once.
        gate = threading.Barrier(LOAD_READERS + 1)
        readers = [Reader(server.url, f"r{i}", PER_READER, gate, retry_every=10) for i in range(LOAD_READERS)]
        for r in readers:
            r.start()
        gate.wait(timeout=120)
        t0 = time.perf_counter()
        for r in readers:
            r.join(timeout=300)
        seconds = time.perf_counter() - t0
        assert all(r.error is None for r in readers), [repr(r.error) for r in readers if r.error]
        stored = _answers(study)
        acked = [a for r in readers for a in r.acked]
        assert len(acked) == LOAD_READERS * PER_READER
        assert sorted(stored) == sorted(acked)  # each exactly once, as acknowledged (retries stored nothing)
        figures["load"] = {"readers": LOAD_READERS, "answers_per_reader": PER_READER, "submits": len(acked) + sum(r.retries for r in readers),
                           "stored": len(stored), "duplicates": len(stored) - len(set((a[0], a[1]) for a in stored)),
                           "seconds": round(seconds, 2), "answers_per_s": round(len(stored) / seconds, 1)}

        # --- fault: 4 more readers mid-reading when the server is SIGKILLed.
        before = len(stored)
        readers = [Reader(server.url, f"r{LOAD_READERS + i}", PER_READER) for i in range(FAULT_READERS)]
        for r in readers:
            r.start()
        deadline = time.monotonic() + 120
        while sum(len(r.acked) for r in readers) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        for r in readers:
            r.join(timeout=60)
        acked = [a for r in readers for a in r.acked]
        stored = _answers(study)[before:]
        lost = set(acked) - set(stored)
        assert not lost and 30 <= len(acked) < FAULT_READERS * PER_READER
        figures["fault"] = {"readers": FAULT_READERS, "acknowledged_before_kill": len(acked),
                            "stored_after_kill": len(stored), "lost": len(lost),
                            "stored_not_yet_acknowledged": len(set(stored) - set(acked))}

        # --- restart on the same study: every reader resumes at their first unanswered image.
        t1 = time.perf_counter()
        server = Server(built.checkpoint, study, tmp, port=server.port).start()
        figures["fault"]["restart_s"] = round(time.perf_counter() - t1, 1)
        with sqlite3.connect(study / "study.sqlite") as con:
            for i in range(FAULT_READERS):
                name = f"r{LOAD_READERS + i}"
                n, first_open = con.execute(
                    "SELECT (SELECT COUNT(*) FROM answers WHERE reader = ?1),"
                    " (SELECT o.position FROM reading_order o WHERE o.reader = ?1 AND o.position NOT IN"
                    "  (SELECT position FROM answers WHERE reader = ?1) ORDER BY o.position LIMIT 1)", (name,)).fetchone()
                view = _client(server.url, name).predict(api_name="/reader_view")
                shown = con.execute("SELECT position FROM views WHERE reader = ? AND token = ?", (name, view[3])).fetchone()
                assert shown == (first_open,) and view[0] == f"Image {n + 1} of {PER_READER} · {n} answered"
        readers = [Reader(server.url, f"r{LOAD_READERS + i}", 5) for i in range(FAULT_READERS)]
        for r in readers:
            r.start()
        for r in readers:
            r.join(timeout=120)
        assert all(r.error is None for r in readers)
        final = _answers(study)
        assert len(final) == len(set((a[0], a[1]) for a in final)) == before + len(stored) + 5 * FAULT_READERS
        figures["fault"]["resumed_answers"] = 5 * FAULT_READERS
    finally:
        server.stop()
    print("\napp load/fault figures:", json.dumps(figures))
    (tmp_path / "app_load_figures.json").write_text(json.dumps(figures, indent=2))


@pytest.fixture(scope="module")
def built_load(tmp_path_factory):
    built = build(tmp_path_factory.getbasetemp() / "app")
    tmp = tmp_path_factory.mktemp("load")
    study = copy_study(built, tmp / "study", readers=LOAD_READERS + FAULT_READERS)
    return built, study, tmp
