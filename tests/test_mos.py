"""MOS study: database and HTTP API, the report, and an end-to-end run in headless Chromium."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.errors import ConfigError, ImageError
from sruscale.evaluation.mos import GT_METHOD, StudyServer, create_study, open_study, study_report
from sruscale.evaluation.mos.report import t95
from sruscale.evaluation.mos.study import TOKEN_HEADER


def _images(folder: Path, names: list[str], seed: int, suffix: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for n in names:
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(folder / f"{n}{suffix}.png")
    return folder


@pytest.fixture()
def dirs(tmp_path: Path) -> tuple[list[Path], Path]:
    names = ["baby", "bird"]
    gt = _images(tmp_path / "gt", names, 0)
    return [_images(tmp_path / "bicubic", names, 1, "_x4"), _images(tmp_path / "fsrcnn", names, 2, "_x4")], gt


def _post(url: str, payload: dict, token: str) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", TOKEN_HEADER: token}
    req = urllib.request.Request(url + "api/answer", json.dumps(payload).encode(), headers)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_plan_api_and_resume(dirs: tuple[list[Path], Path], tmp_path: Path) -> None:
    methods, gt = dirs
    study = create_study(tmp_path / "s.sqlite", methods, gt, ab_pairs=True)
    assert len(study.trials) == 2 * 3 + 2  # (GT, bicubic, fsrcnn) x 2 images + 1 pair x 2 images
    assert study.order("alice") == study.order("alice") != study.order("bob")
    server = StudyServer(study, port=0)
    server.start()
    try:
        page = urllib.request.urlopen(server.url).read().decode()
        assert "rater id" in page and "bicubic" not in page
        state = json.loads(urllib.request.urlopen(server.url + "api/state?rater=alice").read())
        assert state["done"] == 0 and state["total"] == 8
        for url in state["trial"]["images"]:
            assert "bicubic" not in url and "fsrcnn" not in url and "baby" not in url
            assert urllib.request.urlopen(server.url + url.lstrip("/")).read()[:4] == b"\x89PNG"
        trial = state["trial"]
        bad = {"score": 9} if trial["kind"] == "rate" else {"choice": "C"}
        token = study.api_token
        assert _post(server.url, {"rater": "alice", "trial": trial["id"], **bad}, token)[0] == 400
        good = {"score": 4} if trial["kind"] == "rate" else {"choice": "A"}
        status, after = _post(server.url, {"rater": "alice", "trial": trial["id"], **good}, token)
        assert status == 200 and after["done"] == 1 and after["trial"]["id"] != trial["id"]
        assert _post(server.url, {"rater": "alice", "trial": trial["id"], **good}, token)[0] == 400  # answered already
        with pytest.raises(ConfigError, match="port is in use"):
            StudyServer(study, port=server.httpd.server_address[1])
    finally:
        server.stop()
        study.close()
    # reopening (same folders) keeps the answers; other folders are refused
    again = create_study(tmp_path / "s.sqlite", methods, gt, ab_pairs=True)
    assert again.next_trial("alice")[1] == 1
    again.close()
    with pytest.raises(ConfigError, match="other folders or options"):
        create_study(tmp_path / "s.sqlite", methods[:1], gt)


def test_unmatched_files(dirs: tuple[list[Path], Path], tmp_path: Path) -> None:
    methods, gt = dirs
    (methods[1] / "bird_x4.png").unlink()
    _images(methods[0], ["zebra"], 5)
    with pytest.raises(ImageError, match=r"bicubic: no ground truth for zebra.*fsrcnn: missing bird"):
        create_study(tmp_path / "s.sqlite", methods, gt)


def test_report_ci_and_consistency(dirs: tuple[list[Path], Path], tmp_path: Path) -> None:
    methods, gt = dirs
    study = create_study(tmp_path / "s.sqlite", methods, gt)
    base = {GT_METHOD: 4, "bicubic": 2, "fsrcnn": 3}
    for rater, delta in (("r1", 0), ("r2", 0), ("r3", -1)):
        for t in study.trials:
            study.answer(rater, t.id, score=max(1, base[t.method_a] + delta + (t.image == "bird")))
    rep = study_report(study)
    by = {m.method: m for m in rep.methods}
    assert [m.method for m in rep.methods] == [GT_METHOD, "fsrcnn", "bicubic"]
    vals = [2, 3, 2, 3, 1, 2]  # bicubic: 3 raters x 2 images
    assert by["bicubic"].mos == pytest.approx(np.mean(vals))
    assert by["bicubic"].ci95 == pytest.approx(t95(5) * np.std(vals, ddof=1) / np.sqrt(6))
    assert rep.consistency == pytest.approx(1.0) and rep.pairs == 3  # a constant offset keeps Pearson r = 1
    study.close()
    res = CliRunner().invoke(app, ["evaluate", "mos-report", str(tmp_path / "s.sqlite")], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "rater consistency: 1.000" in res.output and (tmp_path / "s.png").is_file()
    with pytest.raises(ConfigError, match="not found"):
        open_study(tmp_path / "none.sqlite")


def _chromium() -> tuple[str, str]:
    pytest.importorskip("selenium", reason="selenium not installed (.ci/run installs it)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no chromium/chromedriver (.ci/run: apt-get install -y chromium chromium-driver)")
    return browser, driver


def _open(browser: str, driver: str, profile: Path):  # noqa: ANN202
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):  # fmt: skip
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts)


def _wait(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_browser_end_to_end(dirs: tuple[list[Path], Path], tmp_path: Path) -> None:
    browser, driver_path = _chromium()
    from selenium.webdriver.common.by import By

    methods, gt = dirs
    db = tmp_path / "study.sqlite"
    study = create_study(db, methods, gt, ab_pairs=True)
    server = StudyServer(study, port=0)
    server.start()
    total = len(study.trials)

    def progress(drv) -> str:  # noqa: ANN001
        return drv.find_element(By.ID, "progress").text

    def answer_one(drv) -> None:  # noqa: ANN001
        before = progress(drv)
        kind = drv.find_element(By.ID, "study").get_attribute("data-kind")
        drv.find_element(By.TAG_NAME, "body").send_keys("4" if kind == "rate" else "b")
        _wait(lambda: progress(drv) != before)

    try:
        drv = _open(browser, driver_path, tmp_path / "profile1")
        try:
            drv.get(server.url)
            drv.find_element(By.ID, "rater").send_keys("alice\n")  # Enter starts
            _wait(lambda: progress(drv).startswith(f"0 / {total}"))
            for _ in range(3):
                answer_one(drv)
            assert progress(drv).startswith(f"3 / {total}")
        finally:
            drv.quit()  # browser closed mid-study
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT COUNT(*) FROM answers WHERE rater = 'alice'").fetchone()[0] == 3
        drv = _open(browser, driver_path, tmp_path / "profile2")  # a fresh browser: resume by rater id
        try:
            drv.get(server.url + "?rater=alice")
            _wait(lambda: progress(drv).startswith(f"3 / {total}"))
            assert "resuming at 4" in drv.find_element(By.ID, "msg").text
            for _ in range(total - 3):
                answer_one(drv)
            assert "finished" in progress(drv)
        finally:
            drv.quit()
    finally:
        server.stop()
        study.close()
    with sqlite3.connect(db) as con:
        query = "SELECT rater, score, choice, answered_at, position FROM answers ORDER BY position"
        rows = con.execute(query).fetchall()
    assert len(rows) == total and {r[0] for r in rows} == {"alice"}
    assert [r[4] for r in rows] == list(range(total)) and all(r[3] for r in rows)
    assert {r[1] for r in rows if r[1] is not None} == {4} and {r[2] for r in rows if r[2] is not None} == {"B"}
    res = CliRunner().invoke(app, ["evaluate", "mos-report", str(db), "--chart", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output
    assert "4.000" in res.output and Image.open(tmp_path / "c.png").format == "PNG"


def test_cli_port_in_use(dirs: tuple[list[Path], Path], tmp_path: Path) -> None:
    methods, gt = dirs
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = CliRunner().invoke(
            app, ["evaluate", "mos-study", *map(str, methods), "--gt", str(gt), "--db", str(tmp_path / "d.sqlite"),
                  "--port", str(port)],
        )  # fmt: skip
    assert res.exit_code == 1 and "port is in use" in str(res.exception)


# --------------------------------------------------------------------------- hostile requests


@pytest.fixture()
def served(dirs: tuple[list[Path], Path], tmp_path: Path):  # noqa: ANN201
    methods, gt = dirs
    study = create_study(tmp_path / "h.sqlite", methods, gt)
    server = StudyServer(study, port=0)
    server.start()
    try:
        yield study, server.httpd.server_address[1]
    finally:
        server.stop()
        study.close()


def _raw(port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> tuple[int, dict]:
    """One request with exactly these headers (no Host or Content-Length added); the reply as (status, JSON)."""
    import http.client

    con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        con.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            con.putheader(k, v)
        con.endheaders(body or None)
        r = con.getresponse()
        data = r.read()
        assert r.getheader("Content-Type") == "application/json" or r.status == 200, (r.status, data[:200])
        return r.status, json.loads(data) if r.getheader("Content-Type") == "application/json" else {}
    finally:
        con.close()


def _answer_headers(port: int, token: str, *, length: int | None, ctype: str = "application/json",
                    host: str | None = None, origin: str | None = None) -> list[tuple[str, str]]:
    h = [("Host", host or f"127.0.0.1:{port}"), ("Content-Type", ctype), (TOKEN_HEADER, token)]
    if origin is not None:
        h.append(("Origin", origin))
    if length is not None:
        h.append(("Content-Length", str(length)))
    return h


def _stored(study) -> int:  # noqa: ANN001
    return study._con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def _good(study) -> bytes:  # noqa: ANN001
    return json.dumps({"rater": "alice", "trial": study.trials[0].id, "score": 4}).encode()


def test_page_carries_the_study_token_and_reopening_keeps_it(served, dirs, tmp_path: Path) -> None:  # noqa: ANN001
    study, port = served
    status, _ = _raw(port, "GET", "/", [("Host", f"127.0.0.1:{port}")])
    assert status == 200
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/").read().decode()
    assert len(study.api_token) == 32 and f'content="{study.api_token}"' in page and "__SRUSCALE" not in page
    again = open_study(tmp_path / "h.sqlite")
    assert again.api_token == study.api_token  # the token belongs to the study
    again.close()
    other = create_study(tmp_path / "other.sqlite", *dirs)
    assert other.api_token != study.api_token
    other.close()


def test_a_study_made_before_tokens_gets_one(dirs, tmp_path: Path) -> None:  # noqa: ANN001
    create_study(tmp_path / "old.sqlite", *dirs).close()
    with sqlite3.connect(tmp_path / "old.sqlite") as con:
        con.execute("DELETE FROM meta WHERE key = 'token'")
    first = open_study(tmp_path / "old.sqlite")
    again = open_study(tmp_path / "old.sqlite")
    assert len(first.api_token) == 32 and again.api_token == first.api_token  # stored, not per process
    first.close()
    again.close()


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("cross-site text/plain form post", 403),
        ("no token", 403),
        ("wrong token", 403),
        ("other origin", 403),
        ("null origin", 403),
        ("rebound host", 403),
        ("text/plain with the token", 415),
        ("no content type", 415),
        ("no content length", 400),
        ("content length -1", 400),
        ("content length 0", 400),
        ("content length not a number", 400),
        ("two content lengths", 400),
        ("chunked body", 400),
        ("huge content length", 413),
        ("body over the cap", 413),
    ],
)
def test_hostile_headers_are_refused_with_json_and_nothing_stored(served, case: str, status: int) -> None:  # noqa: ANN001
    study, port = served
    good, token = _good(study), study.api_token
    body = good
    if case == "cross-site text/plain form post":
        headers = [("Host", f"127.0.0.1:{port}"), ("Content-Type", "text/plain"), ("Origin", "http://evil.example"),
                   ("Content-Length", str(len(good)))]  # fmt: skip
    elif case == "no token":
        headers = [h for h in _answer_headers(port, token, length=len(good)) if h[0] != TOKEN_HEADER]
    elif case == "wrong token":
        headers = _answer_headers(port, "0" * 32, length=len(good))
    elif case == "other origin":
        headers = _answer_headers(port, token, length=len(good), origin="http://evil.example")
    elif case == "null origin":
        headers = _answer_headers(port, token, length=len(good), origin="null")
    elif case == "rebound host":  # DNS rebinding: evil.example resolved to 127.0.0.1
        headers = _answer_headers(port, token, length=len(good), host=f"evil.example:{port}",
                                  origin=f"http://evil.example:{port}")  # fmt: skip
    elif case == "text/plain with the token":
        headers = _answer_headers(port, token, length=len(good), ctype="text/plain")
    elif case == "no content type":
        headers = [h for h in _answer_headers(port, token, length=len(good)) if h[0] != "Content-Type"]
    elif case == "no content length":
        headers, body = _answer_headers(port, token, length=None), b""
    elif case == "content length -1":
        headers = _answer_headers(port, token, length=None) + [("Content-Length", "-1")]
    elif case == "content length 0":
        headers, body = _answer_headers(port, token, length=0), b""
    elif case == "content length not a number":
        headers = _answer_headers(port, token, length=None) + [("Content-Length", "1e3")]
    elif case == "two content lengths":
        headers = _answer_headers(port, token, length=len(good)) + [("Content-Length", str(len(good)))]
    elif case == "chunked body":
        headers = _answer_headers(port, token, length=len(good)) + [("Transfer-Encoding", "chunked")]
    elif case == "huge content length":
        headers, body = _answer_headers(port, token, length=10**15), b""
    else:  # body over the cap, sent in full
        body = json.dumps({"rater": "alice", "trial": study.trials[0].id, "score": 4, "pad": "x" * 70_000}).encode()
        headers = _answer_headers(port, token, length=len(body))
    got, reply = _raw(port, "POST", "/api/answer", headers, body)
    assert (got, set(reply)) == (status, {"error"})
    assert _stored(study) == 0
    assert _raw(port, "POST", "/api/answer", _answer_headers(port, token, length=len(good)), good)[0] == 200


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"rater": "alice", "trial": 1, "score": 1e999}', "out of range"),
        (b'{"rater": "alice", "trial": 1e999, "score": 4}', "out of range"),
        (b'{"rater": "alice", "trial": 1, "score": NaN}', "invalid JSON"),
        (b'{"rater": "alice", "trial": 1, "score": -Infinity}', "invalid JSON"),
        (b'{"rater": "alice", "trial": 1, "score": 4.0}', "score: expected an integer"),
        (b'{"rater": "alice", "trial": 1, "score": 9}', "score: expected an integer 1..5"),
        (b'{"rater": "alice", "trial": 1, "score": true}', "score: expected an integer"),
        (b'{"rater": "alice", "trial": 99999999999999999999999, "score": 4}', "out of range"),
        (b'{"rater": "alice", "trial": -3, "score": 4}', "trial: expected a trial number"),
        (b'{"rater": "alice", "trial": 424242, "score": 4}', "unknown trial"),
        (b'{"rater": "   ", "trial": 1, "score": 4}', "blank"),
        (b'{"rater": "", "trial": 1, "score": 4}', "blank"),
        (b'{"rater": "al\\nice", "trial": 1, "score": 4}', "printable"),
        (('{"rater": "%s", "trial": 1, "score": 4}' % ("r" * 65)).encode(), "at most 64"),
        (b'{"rater": 7, "trial": 1, "score": 4}', "rater: expected a string"),
        (b'{"rater": "alice", "trial": 1, "score": 4, "admin": true}', "unknown key"),
        (b'{"rater": "alice", "trial": 1, "score": 4, "score": 5}', "duplicate keys"),
        (b'[1, 2]', "expected a JSON object"),
        (b'{"rater": "alice", "trial": 1, "score": 4', "invalid JSON"),
        (b'{"rater": "al\xffice", "trial": 1, "score": 4}', "not UTF-8"),
        (b"[" * 30_000 + b"]" * 30_000, "nested deeper"),
        (b'{"rater": {"a": {"b": {"c": {"d": 1}}}}, "trial": 1}', "nested deeper"),
    ],
    ids=lambda v: v[:50].decode("ascii", "replace") if isinstance(v, bytes) else None,
)
def test_hostile_bodies_are_400_with_json(served, body: bytes, needle: str) -> None:  # noqa: ANN001
    study, port = served
    body = body.replace(b'"trial": 1,', f'"trial": {study.trials[0].id},'.encode())
    status, reply = _raw(port, "POST", "/api/answer", _answer_headers(port, study.api_token, length=len(body)), body)
    assert status == 400 and needle in reply["error"], reply
    assert _stored(study) == 0


def test_rater_name_is_stored_stripped_and_only_on_200(served) -> None:  # noqa: ANN001
    study, port = served
    body = json.dumps({"rater": "  bob ", "trial": study.trials[0].id, "score": 3}).encode()
    headers = _answer_headers(port, study.api_token, length=len(body), host=f"localhost:{port}",
                              origin=f"http://localhost:{port}")  # fmt: skip
    status, reply = _raw(port, "POST", "/api/answer", headers, body)
    assert status == 200 and reply["rater"] == "bob" and reply["done"] == 1
    assert study._con.execute("SELECT rater FROM answers").fetchall() == [("bob",)]


def test_failed_write_answers_500_and_stores_nothing(served) -> None:  # noqa: ANN001
    study, port = served
    with study._con:  # the disk "fails" after the row went in: the transaction must be rolled back
        study._con.execute("CREATE TRIGGER fail AFTER INSERT ON answers BEGIN SELECT RAISE(ABORT, 'disk I/O'); END")
    good = _good(study)
    status, reply = _raw(port, "POST", "/api/answer", _answer_headers(port, study.api_token, length=len(good)), good)
    assert status == 500 and "nothing was stored" in reply["error"]
    assert _stored(study) == 0
    with study._con:
        study._con.execute("DROP TRIGGER fail")
    assert _raw(port, "POST", "/api/answer", _answer_headers(port, study.api_token, length=len(good)), good)[0] == 200
    assert _stored(study) == 1


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:1", "localhost", "", "127.0.0.1:{port}, evil.example"])
def test_gets_need_this_servers_host(served, host: str) -> None:  # noqa: ANN001
    study, port = served
    for path in ("/", "/api/state?rater=alice"):
        status, reply = _raw(port, "GET", path, [("Host", host.format(port=port))] if host else [])
        assert status == 403 and "is not this server" in reply["error"]
    for ok in (f"127.0.0.1:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert _raw(port, "GET", "/api/state?rater=alice", [("Host", ok)])[0] == 200


def _until_closed(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_malformed_requests_get_json_errors_and_the_server_lives_on(served, capfd: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    study, port = served
    host = [("Host", f"127.0.0.1:{port}")]
    blank = (400, {"error": "rater: expected a rater id, got a blank one"})
    assert _raw(port, "GET", "/api/state?rater=%20%20", host) == blank
    assert _raw(port, "GET", "/api/state?" + "&".join(f"a{i}=1" for i in range(20)), host)[0] == 400
    assert _raw(port, "GET", "/nope", host)[0] == 404
    assert _raw(port, "PUT", "/api/answer", host)[0] == 501
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # not HTTP at all
        s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        reply = _until_closed(s)
    assert reply.startswith(b"HTTP/1.0 400") and b'{"error":' in reply
    good = _good(study)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # a body shorter than announced
        head = "".join(f"{k}: {v}\r\n" for k, v in _answer_headers(port, study.api_token, length=len(good) + 10))
        s.sendall(f"POST /api/answer HTTP/1.1\r\n{head}\r\n".encode() + good)
        s.shutdown(socket.SHUT_WR)
        reply = _until_closed(s)
    assert reply.startswith(b"HTTP/1.0 400") and b"incomplete body" in reply
    assert _stored(study) == 0
    assert _raw(port, "POST", "/api/answer", _answer_headers(port, study.api_token, length=len(good)), good)[0] == 200
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
