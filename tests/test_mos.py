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


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url + "api/answer", json.dumps(payload).encode(), {"Content-Type": "application/json"})
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
        assert _post(server.url, {"rater": "alice", "trial": trial["id"], **bad})[0] == 400
        good = {"score": 4} if trial["kind"] == "rate" else {"choice": "A"}
        status, after = _post(server.url, {"rater": "alice", "trial": trial["id"], **good})
        assert status == 200 and after["done"] == 1 and after["trial"]["id"] != trial["id"]
        assert _post(server.url, {"rater": "alice", "trial": trial["id"], **good})[0] == 400  # answered already
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
