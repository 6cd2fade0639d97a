"""The app live on a loopback port: logins, a reading over gradio_client, resume, export,
blinding of every response a reader gets, path traversal, bad uploads."""

from __future__ import annotations

import io
import re
import sqlite3
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from elastogan.app.reader_png import fixed_size_png

sys.path.insert(0, str(Path(__file__).parent))
from app_support import LEAD, N_TEST_CASES, PASSWORD, SIZE, Server, build, call_raw, login, shared_server  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.getbasetemp() / "app")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    return shared_server(tmp_path_factory.getbasetemp() / "app")


def client(server: Server, name: str | None = None):
    from gradio_client import Client

    return Client(server.url, auth=(name, PASSWORD) if name else None, verbose=False, download_files=False)


def truth(study: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(study / "study.sqlite") as con:
        return {i: (c, k) for i, c, k in con.execute("SELECT image, case_id, kind FROM images")}


def test_everything_needs_a_login(server):
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises((AuthenticationError, ValueError)):
        client(server)
    with pytest.raises(Exception):
        client(server, "r0").__class__(server.url, auth=("r0", "wrong-password"), verbose=False)
    anon = httpx.Client(base_url=server.url, timeout=10)
    for path in ("config", "gradio_api/info", "gradio_api/openapi.json", "monitoring"):
        assert anon.get(path).status_code in (401, 403, 404), path
    assert anon.post("gradio_api/call/reader_view", json={"data": []}).status_code == 401
    assert anon.post("gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"}).status_code == 401
    assert anon.post("gradio_api/upload", files={"files": ("a.png", b"x")}).status_code == 401
    page = anon.get("").text
    assert "auth_required" in page and "r0" not in page
    assert anon.post("login", data={"username": "r0", "password": "nope-nope"}).status_code == 400


def test_no_file_of_the_study_is_reachable(server):
    c = login(server.url, "r0")
    db = server.study / "study.sqlite"
    image = next((server.study / "images").iterdir())
    for target in (str(db), str(image), "../" * 12 + str(db).lstrip("/"), str(db).replace("/", "%2F"),
                   "/etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", str(server.log)):
        for prefix in ("gradio_api/file=", "file=", "gradio_api/file/"):
            r = c.get(prefix + target)
            assert r.status_code in (403, 404), (prefix + target, r.status_code)
            assert b"SQLite format" not in r.content and b"root:" not in r.content
    assert c.get("monitoring").status_code in (403, 404)
    assert c.get("gradio_api/runs").status_code == 404


def _export_link(html: str) -> str:
    m = re.fullmatch(r'<a href="(elastogan-file/[A-Za-z0-9_-]+)" download="elastogan_study_export.zip">.*', html, re.S)
    assert m, html
    return m.group(1)


def test_full_reading_session_resume_and_export(server):
    reader = client(server, "r1")
    out = reader.predict(api_name="/reader_view")
    progress, _, _, image = out[:4]
    assert progress == f"Image 1 of {N_TEST_CASES} · 0 answered"
    seen = []
    for k in range(5):
        seen.append(image)
        out = reader.predict(image, "synthetic", "2", "3", 70, api_name="/reader_answer")
        progress, _, _, image = out[:4]
        assert progress.endswith(f"{k + 1} answered") and out[-1].startswith("Saved (final)")
    # A new client (a reload, another browser) resumes at the first unanswered image.
    again = client(server, "r1").predict(api_name="/reader_view")
    assert again[3] == image and again[0] == f"Image 6 of {N_TEST_CASES} · 5 answered"
    # The rest of the reading, with one retried submit that must not be stored twice.
    reader = client(server, "r1")
    assert "already answered" in reader.predict(seen[-1], "real", "1", "2", None, api_name="/reader_answer")[-1]
    while image:
        out = reader.predict(image, "real", "4", "4b", None, api_name="/reader_answer")
        image = out[3]
    assert out[0].startswith(f"Reading complete: {N_TEST_CASES} of {N_TEST_CASES}")
    lead = client(server, LEAD)
    table = lead.predict(api_name="/lead_progress")
    rows = {r[0]: r for r in table["data"]}
    assert rows["r1"][2:5] == [N_TEST_CASES, N_TEST_CASES, 100.0]
    link = _export_link(lead.predict(api_name="/lead_export"))
    data = login(server.url, LEAD).get(link).content
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        answers = z.read("answers.csv").decode().splitlines()
        readings = z.read("readings.csv").decode().splitlines()
    assert len([a for a in answers if a.startswith("r1,")]) == N_TEST_CASES
    assert sum(",70," in r for r in readings if r.startswith("r1,")) == 5  # the confidences given
    with sqlite3.connect(server.study / "study.sqlite") as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT image) FROM answers WHERE reader='r1'").fetchone() == (
            N_TEST_CASES, N_TEST_CASES)
        assert con.execute("SELECT a.judged FROM answers a JOIN views v ON v.reader = a.reader AND v.position = a.position"
                           " WHERE v.token = ? AND a.reader='r1'", (seen[-1],)).fetchone() == ("synthetic",)


def test_readers_get_no_lead_functions_and_no_preview(server, built):
    from gradio_client import handle_file

    reader = client(server, "r0")
    for api in ("/lead_progress", "/lead_export"):
        with pytest.raises(Exception, match="not a study lead"):
            reader.predict(api_name=api)
    bmode = built.manifest.parent / "c030_bmode.png"
    with pytest.raises(Exception, match="(?i)not available to study readers|403"):  # the upload is refused first
        reader.predict(handle_file(str(bmode)), None, "", api_name="/preview")
    with pytest.raises(Exception, match="not available to study readers"):  # and the call without one
        reader.predict(None, None, "", api_name="/preview")
    lead = client(server, LEAD)
    with pytest.raises(Exception, match="not a study reader"):
        lead.predict(api_name="/reader_view")


def _png_chunks(raw: bytes) -> list[str]:
    out, i = [], 8
    while i < len(raw):
        n = int.from_bytes(raw[i : i + 4], "big")
        out.append(raw[i + 4 : i + 8].decode("ascii"))
        i += 12 + n
    return out


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="(elastogan-file/[A-Za-z0-9_-]+)" width="512" height="512" alt="(?:B-mode|Elastogram)" '
                      r'class="study-frame">', html)


def test_blinding_no_response_a_reader_gets_reveals_the_truth(server):
    """Walk a whole reading over raw HTTP and check every byte the reader receives."""
    t = truth(server.study)
    case_ids = sorted({c for c, _ in t.values()})
    c = login(server.url, "r2")
    texts = [c.get("").text, c.get("config").text, c.get("gradio_api/info").text]
    raw, data = call_raw(c, "reader_view", [])
    texts.append(raw)
    served: list[tuple[str, bytes, str]] = []  # (view token on screen, PNG bytes, URL)
    while data[3]:
        token = data[3]
        assert re.fullmatch(r"[0-9a-f]{32}", token) and token not in t  # a view's token, not an image id
        (bmode_url,), (elastogram_url,) = _images(data[1]), _images(data[2])
        for url in (bmode_url, elastogram_url):
            r = c.get(url)
            assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
            assert "content-disposition" not in r.headers
            served.append((token, r.content, url))
        raw, data = call_raw(c, "reader_answer", [token, "real", "3", "4a", None])
        texts.append(raw)
        assert c.get(bmode_url).status_code == 404  # the previous screen's files are gone
    blob = "\n".join(texts)
    # No case id, no word of the truth, no other reader, no file of the study.
    for word in [*case_ids, "malignant", "benign", "r0", "r1", "r3", LEAD, "study.sqlite", str(server.study)]:
        assert not re.search(rf"(?<![0-9a-zA-Z_]){re.escape(word)}(?![0-9a-zA-Z_])", blob.replace('"r2"', "")), word
    dynamic = "\n".join(texts[3:])
    assert not re.search(r"(?i)\b(real|synthetic)\b", dynamic.replace("Real or synthetic", ""))
    # Every image has its own URL (a B-mode too: a reader cannot pair readings by URL).
    assert len({u for _, _, u in served}) == len(served) == 2 * N_TEST_CASES
    # Every image: same size and mode, PNG with no ancillary chunks, uncompressed: its bytes a
    # function of the pixels alone, its length one number for the whole study (a compressed PNG's
    # length follows its content and would tell real from synthetic), shown ≥ 400 px across.
    shapes = set()
    for _, png, _ in served:
        assert set(_png_chunks(png)) <= {"IHDR", "IDAT", "IEND"}
        arr = np.asarray(Image.open(io.BytesIO(png)))
        assert png == fixed_size_png(arr)
        shapes.add((arr.shape, arr.dtype.str))
    assert shapes == {((512, 512, 3), "|u1")} and SIZE * 4 == 512
    assert len({len(png) for _, png, _ in served}) == 1
    # A file a reader was served is not served to anyone else.
    last = _images(call_raw(c, "reader_view", [])[1][1]) if data[3] else []
    anon = httpx.Client(base_url=server.url, timeout=10)
    for other in (anon, login(server.url, "r0"), login(server.url, LEAD)):
        for url in [u for _, _, u in served[-2:]] + last:
            r = other.get(url)
            assert r.status_code in (401, 403, 404), (url, r.status_code)
            assert b"IDAT" not in r.content
    # split: one image of each case, the real one for half the cases.
    kinds = [k for _, k in (t[i] for i in _images_read(server.study, "r2"))]
    assert len(kinds) == N_TEST_CASES and kinds.count("real") in (N_TEST_CASES // 2, N_TEST_CASES // 2 + 1)


def _images_read(study: Path, reader: str) -> list[str]:
    with sqlite3.connect(study / "study.sqlite") as con:
        return [i for (i,) in con.execute("SELECT image FROM answers WHERE reader = ?", (reader,))]


def test_bad_uploads_get_a_message_and_the_app_keeps_serving(server, built, tmp_path):
    from gradio_client import handle_file

    lead = client(server, LEAD)
    junk = tmp_path / "scan.png"
    junk.write_bytes(b"definitely not a PNG")
    out = lead.predict(handle_file(str(junk)), None, "", api_name="/preview")
    assert "cannot be used" in out[-1] and out[1] is None
    broken = tmp_path / "IM000001"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    out = lead.predict(handle_file(str(broken)), None, "", api_name="/preview")
    assert "cannot be used" in out[-1]
    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * (33 * 1024 * 1024))
    with pytest.raises(Exception):
        lead.predict(handle_file(str(big)), None, "", api_name="/preview")  # refused at upload
    bmode = built.manifest.parent / "c030_bmode.png"
    out = lead.predict(handle_file(str(bmode)), None, "20, 20, 40, 40", api_name="/preview")
    assert "Strain ratio" in out[-1] and out[1] is not None
    names = sorted(Path(f["path"] if isinstance(f, dict) else f).name for f in out[4])
    assert names == ["c030_bmode_SYNTHETIC_emode.dcm", "c030_bmode_SYNTHETIC_emode.png"]


def test_without_a_study_the_app_is_a_local_preview(built):
    """No study: no accounts, only the Preview endpoint, loopback only (launched in-process)."""
    from gradio_client import Client, handle_file

    from elastogan.app.server import launch
    from elastogan.errors import UserError
    from elastogan.predict import Predictor

    from app_support import free_port

    predictor = Predictor.from_checkpoint(built.checkpoint, device="cpu")
    with pytest.raises(UserError, match="loopback only"):
        launch(predictor, study=None, host="0.0.0.0", port=free_port(), block=False)
    demo, url = launch(predictor, study=None, port=free_port(), block=False, quiet=True)
    try:
        c = Client(url, verbose=False, download_files=False)
        assert list(c.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/preview"]
        out = c.predict(handle_file(str(built.manifest.parent / "c030_bmode.png")), None, "", api_name="/preview")
        assert out[1] is not None and "Synthetic E-mode" in out[-1]
    finally:
        demo.close()


def test_a_staged_study_over_http_shows_the_elastogram_only_after_the_bmode_answer(built, tmp_path):
    from app_support import copy_study

    study = copy_study(built, tmp_path / "study", readers=1, design="staged")
    server = Server(built.checkpoint, study, tmp_path).start()
    try:
        c = login(server.url, "r0")
        _, first = call_raw(c, "reader_view", [])
        assert "step 1 of 2: B-mode alone" in first[0] and len(_images(first[1])) == 1 and not _images(first[2])
        assert first[4]["visible"] is False and first[5]["visible"] is False  # no real/synthetic, no Tsukuba yet
        assert first[6]["label"] == "BI-RADS category (B-mode alone)"
        _, second = call_raw(c, "reader_answer", [first[3], None, None, "3", None])
        assert second[3] != first[3] and len(_images(second[2])) == 1 and second[4]["visible"] is True
        assert "Image 1 of" in second[0] and "0 answered" in second[0] and "B-mode alone" in second[-2]
        _, third = call_raw(c, "reader_answer", [second[3], "real", "2", "4a", 35])
        assert "1 answered" in third[0] and "step 1 of 2" in third[0]
    finally:
        server.stop()
    with sqlite3.connect(study / "study.sqlite") as con:
        assert con.execute("SELECT b.birads, a.birads, a.confidence FROM answers a JOIN bmode_answers b"
                           " USING (reader, position)").fetchall() == [("3", "4a", 35.0)]
