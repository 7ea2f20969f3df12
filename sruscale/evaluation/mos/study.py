"""A blind mean-opinion-score study served from 127.0.0.1 with the standard library.

Trials: every (method, image) shown alone for an absolute rating 1-5 (ITU-R BT.500 style ACR,
the ground truth included as a hidden reference), plus optional A/B trials (two methods of one
image side by side, pick the better). Each rater gets their own random order (seeded by the study
seed and the rater id, so it is the same after a reload); images are served under opaque tokens,
never method names. Every answer is written to SQLite at once (rater id, trial, UTC timestamp),
so closing the browser loses nothing: the page resumes at the first unanswered trial.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from ...errors import ConfigError, ImageError, SruscaleError
from ...image import list_images
from ..pairing import DEFAULT_STRIP, pairing_key

__all__ = ["GT_METHOD", "Study", "StudyServer", "Trial", "create_study", "open_study"]

GT_METHOD = "GT"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, image TEXT NOT NULL, method_a TEXT NOT NULL, method_b TEXT,
    path_a TEXT NOT NULL, path_b TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    rater TEXT NOT NULL, trial INTEGER NOT NULL REFERENCES trials(id), score INTEGER, choice TEXT,
    position INTEGER NOT NULL, answered_at TEXT NOT NULL, PRIMARY KEY (rater, trial)
);
"""


@dataclass(frozen=True)
class Trial:
    """One screen: ``kind`` "rate" (``method_a`` alone) or "ab" (``method_a`` left, ``method_b`` right)."""

    id: int
    kind: str
    image: str
    method_a: str
    path_a: str
    method_b: str | None = None
    path_b: str | None = None


def _match(method_dirs: list[Path], gt_dir: Path) -> tuple[list[str], dict[str, dict[str, Path]]]:
    """Images present under every method and the ground truth, by pairing name; errors name the strays."""
    gt = {pairing_key(p.stem, DEFAULT_STRIP): p for p in list_images(gt_dir)}
    files: dict[str, dict[str, Path]] = {GT_METHOD: gt}
    problems = []
    for d in method_dirs:
        name = d.name
        if name in files:
            raise ConfigError(f"two methods named {name!r}: give folders with distinct names")
        own = {pairing_key(p.stem, DEFAULT_STRIP): p for p in list_images(d)}
        if set(own) != set(gt):
            extra, missing = sorted(set(own) - set(gt)), sorted(set(gt) - set(own))
            parts = ([f"no ground truth for {', '.join(extra)}"] if extra else []) + (
                [f"missing {', '.join(missing)}"] if missing else []
            )
            problems.append(f"{d}: {'; '.join(parts)}")
        files[name] = own
    if problems:
        raise ImageError("unmatched files (names compared after stripping _x4, _SR, ...): " + " | ".join(problems))
    return sorted(gt), files


def create_study(
    db: str | os.PathLike[str],
    method_dirs: list[Path],
    gt_dir: Path,
    *,
    ab_pairs: bool = False,
    include_gt: bool = True,
    seed: int = 0,
) -> Study:
    """Create (or reopen, when the same folders were used) the study database ``db``.

    Raises:
        ImageError: missing folders, no images, files that do not pair.
        ConfigError: ``db`` holds a study of other folders/options.
    """
    if not method_dirs:
        raise ConfigError("give at least one METHOD_DIR")
    names, files = _match([Path(d) for d in method_dirs], Path(gt_dir))
    methods = ([GT_METHOD] if include_gt else []) + [Path(d).name for d in method_dirs]
    config = {
        "methods": methods,
        "folders": {m: str(Path(d).resolve()) for m, d in zip(methods[-len(method_dirs) :], method_dirs, strict=True)},
        "gt": str(Path(gt_dir).resolve()),
        "ab_pairs": ab_pairs,
        "seed": seed,
    }
    trials: list[tuple[str, str, str, str | None, str, str | None]] = []
    for image in names:
        for m in methods:
            trials.append(("rate", image, m, None, str(files[m][image]), None))
    if ab_pairs:
        rng = random.Random(seed)
        rated = [Path(d).name for d in method_dirs]
        for image in names:
            for i, a in enumerate(rated):
                for b in rated[i + 1 :]:
                    left, right = (a, b) if rng.random() < 0.5 else (b, a)
                    trials.append(("ab", image, left, right, str(files[left][image]), str(files[right][image])))
    path = Path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        with con:
            con.executescript(_SCHEMA)
            row = con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
            if row is None:
                con.execute("INSERT INTO meta VALUES ('config', ?)", (json.dumps(config),))
                con.execute("INSERT INTO meta VALUES ('secret', ?)", (os.urandom(16).hex(),))
                con.executemany(
                    "INSERT INTO trials (kind, image, method_a, method_b, path_a, path_b) VALUES (?, ?, ?, ?, ?, ?)",
                    trials,
                )
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not a sruscale MOS study ({exc})") from None
    finally:
        con.close()
    if row is not None and json.loads(row[0]) != config:
        raise ConfigError(f"{path} holds a study of other folders or options; use another --db to start a new one")
    return open_study(path)


class Study:
    """The study database: trials, per-rater order, answers. Thread-safe (one lock, one connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        self.config: dict[str, Any] = json.loads(meta["config"])
        self._secret = meta["secret"]
        rows = self._con.execute("SELECT id, kind, image, method_a, path_a, method_b, path_b FROM trials ORDER BY id")
        self.trials = [Trial(*r) for r in rows.fetchall()]
        self._by_id = {t.id: t for t in self.trials}
        self._tokens: dict[str, str] = {}
        for t in self.trials:
            for p in (t.path_a, t.path_b):
                if p:
                    self._tokens[self.token(p)] = p

    def token(self, path: str) -> str:
        """An opaque name for an image file (no method or file name leaks to the page)."""
        return hashlib.sha256(f"{self._secret}:{path}".encode()).hexdigest()[:20]

    def image_path(self, token: str) -> str | None:
        return self._tokens.get(token)

    def order(self, rater: str) -> list[int]:
        """This rater's trial order: a permutation seeded by the study seed and the rater id."""
        ids = [t.id for t in self.trials]
        digest = hashlib.sha256(f"{self.config['seed']}:{rater}".encode()).digest()
        random.Random(int.from_bytes(digest[:8], "big")).shuffle(ids)
        return ids

    def answered(self, rater: str) -> set[int]:
        with self._lock:
            rows = self._con.execute("SELECT trial FROM answers WHERE rater = ?", (rater,)).fetchall()
        return {r[0] for r in rows}

    def raters(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._con.execute("SELECT DISTINCT rater FROM answers ORDER BY rater").fetchall()]

    def next_trial(self, rater: str) -> tuple[Trial | None, int, int]:
        """``(trial or None when finished, answered count, total)``."""
        done = self.answered(rater)
        for tid in self.order(rater):
            if tid not in done:
                return self._by_id[tid], len(done), len(self.trials)
        return None, len(done), len(self.trials)

    def answer(self, rater: str, trial_id: int, *, score: int | None = None, choice: str | None = None) -> None:
        """Store one answer at once (committed before returning).

        Raises:
            ConfigError: unknown trial, a score outside 1..5 or a choice not A/B for the trial's kind,
                or a trial this rater already answered.
        """
        trial = self._by_id.get(trial_id)
        if trial is None:
            raise ConfigError(f"unknown trial {trial_id}")
        if trial.kind == "rate" and (score is None or not 1 <= score <= 5 or choice is not None):
            raise ConfigError(f"trial {trial_id} needs a score 1..5, got {score!r}")
        if trial.kind == "ab" and (choice not in ("A", "B") or score is not None):
            raise ConfigError(f"trial {trial_id} needs a choice A or B, got {choice!r}")
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._lock:
            position = self._con.execute("SELECT COUNT(*) FROM answers WHERE rater = ?", (rater,)).fetchone()[0]
            try:
                with self._con:
                    self._con.execute(
                        "INSERT INTO answers (rater, trial, score, choice, position, answered_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (rater, trial_id, score, choice, position, stamp),
                    )
            except sqlite3.IntegrityError:
                raise ConfigError(f"rater {rater!r} already answered trial {trial_id}") from None

    def close(self) -> None:
        self._con.close()


def open_study(db: str | os.PathLike[str]) -> Study:
    """Open an existing study database.

    Raises:
        ConfigError: not a file, or not a sruscale study.
    """
    path = Path(db)
    if not path.is_file():
        raise ConfigError(f"study database not found: {path}")
    try:
        return Study(path)
    except (sqlite3.DatabaseError, KeyError) as exc:
        raise ConfigError(f"{path}: not a sruscale MOS study ({type(exc).__name__}: {exc})") from None


def _page() -> bytes:
    return Path(__file__).with_name("page.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    study: Study
    server_version = "sruscale-mos"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        return

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: object, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _state(self, rater: str) -> dict[str, Any]:
        trial, done, total = self.study.next_trial(rater)
        others = [r for r in self.study.raters() if r != rater]
        state: dict[str, Any] = {"rater": rater, "done": done, "total": total, "other_raters": len(others)}
        if trial is None:
            state["finished"] = True
            return state
        state["trial"] = {
            "id": trial.id,
            "kind": trial.kind,
            "images": [f"/img/{self.study.token(p)}" for p in (trial.path_a, trial.path_b) if p],
        }
        return state

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if url.path == "/":
            self._send(200, _page(), "text/html; charset=utf-8")
        elif url.path == "/api/state":
            rater = (q.get("rater") or [""])[0].strip()
            if not rater:
                self._json({"error": "missing rater id"}, 400)
            else:
                self._json(self._state(rater))
        elif url.path.startswith("/img/"):
            path = self.study.image_path(url.path.removeprefix("/img/"))
            if path is None or not Path(path).is_file():
                self._send(404, b"not found", "text/plain")
                return
            ctype = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp"}.get(
                Path(path).suffix.lower(), "application/octet-stream"
            )
            self._send(200, Path(path).read_bytes(), ctype)
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        if urlparse(self.path).path != "/api/answer":
            self._send(404, b"not found", "text/plain")
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            rater = str(body["rater"]).strip()
            score = body.get("score")
            self.study.answer(rater, int(body["trial"]), score=None if score is None else int(score),
                              choice=body.get("choice"))  # fmt: skip
        except (ValueError, KeyError, TypeError, SruscaleError) as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
            return
        self._json(self._state(rater))


class StudyServer:
    """The HTTP server of a :class:`Study` on ``127.0.0.1:port`` (``port=0``: any free port)."""

    def __init__(self, study: Study, *, port: int = 8765) -> None:
        handler = type("Handler", (_Handler,), {"study": study})
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): the port is in use; "
                              "choose another with --port") from None  # fmt: skip
        self.study = study

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (tests)."""
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
