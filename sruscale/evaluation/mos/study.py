"""A blind mean-opinion-score study served from 127.0.0.1 with the standard library.

Trials: every (method, image) shown alone for an absolute rating 1-5 (ITU-R BT.500 style ACR,
the ground truth included as a hidden reference), plus optional A/B trials (two methods of one
image side by side, pick the better). Each rater gets their own random order (seeded by the study
seed and the rater id, so it is the same after a reload); images are served under opaque tokens,
never method names. Every answer is written to SQLite at once (rater id, trial, UTC timestamp),
so closing the browser loses nothing: the page resumes at the first unanswered trial.

The server answers only requests addressed to it by name (``Host`` 127.0.0.1, localhost or [::1]
with its port: no DNS rebinding) and stores answers only from its own page: each POST needs the
study's token (embedded in the page it serves, sent back in the ``X-Sruscale-Token`` header, which
no other site can read or send without a refused CORS preflight), a same-origin or absent
``Origin``, ``Content-Type: application/json`` and a small, well-formed body. Every refusal is a
JSON ``{"error": ...}`` with a 4xx status; an answer is stored if and only if the reply is 200.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlparse

from ...errors import ConfigError, ImageError, SruscaleError
from ...image import list_images
from ..pairing import DEFAULT_STRIP, pairing_key

__all__ = ["GT_METHOD", "TOKEN_HEADER", "Progress", "Study", "StudyServer", "Trial", "create_study", "open_study"]

log = logging.getLogger(__name__)

GT_METHOD = "GT"
#: the request header that carries the study token (page.html sends it with every answer)
TOKEN_HEADER = "X-Sruscale-Token"
#: the largest answer body accepted, in bytes (an answer is about 60)
MAX_BODY = 64 * 1024
#: the deepest JSON nesting accepted in an answer (an answer is one flat object)
MAX_DEPTH = 4
#: the longest rater id, in characters
MAX_RATER = 64
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
                con.execute("INSERT INTO meta VALUES ('token', ?)", (secrets.token_hex(16),))
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


class Progress(NamedTuple):
    """Where a rater stands: the next trial (None when finished), answered and total counts."""

    trial: Trial | None
    done: int
    total: int
    #: raters other than this one with at least one answer
    other_raters: int


class Study:
    """The study database: trials, per-rater order, answers. Thread-safe (one lock, one connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        self.config: dict[str, Any] = json.loads(meta["config"])
        self._secret = meta["secret"]
        if "token" not in meta:  # a study made before answers needed a token: give it one
            try:
                with self._con:
                    self._con.execute("INSERT OR IGNORE INTO meta VALUES ('token', ?)", (secrets.token_hex(16),))
                meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
            except sqlite3.DatabaseError:  # read-only: a token for this process (the report needs none)
                meta["token"] = secrets.token_hex(16)
        #: the study's secret for answers: served in the page, required in each POST (:data:`TOKEN_HEADER`)
        self.api_token: str = meta["token"]
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
            return self._answered(rater)

    def _answered(self, rater: str) -> set[int]:
        rows = self._con.execute("SELECT trial FROM answers WHERE rater = ?", (rater,)).fetchall()
        return {r[0] for r in rows}

    def raters(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._con.execute("SELECT DISTINCT rater FROM answers ORDER BY rater").fetchall()]

    def next_trial(self, rater: str) -> tuple[Trial | None, int, int]:
        """``(trial or None when finished, answered count, total)``."""
        p = self.progress(rater)
        return p.trial, p.done, p.total

    def progress(self, rater: str) -> Progress:
        """Where ``rater`` stands (:class:`Progress`)."""
        with self._lock:
            return self._progress(rater)

    def _progress(self, rater: str) -> Progress:
        done = self._answered(rater)
        others = self._con.execute("SELECT COUNT(DISTINCT rater) FROM answers WHERE rater != ?", (rater,)).fetchone()[0]
        trial = next((self._by_id[t] for t in self.order(rater) if t not in done), None)
        return Progress(trial, len(done), len(self.trials), others)

    def answer(self, rater: str, trial_id: int, *, score: int | None = None, choice: str | None = None) -> Progress:
        """Store one answer at once; return the rater's progress after it, read in the same transaction
        (so nothing is stored unless everything the reply needs was read).

        Raises:
            ConfigError: unknown trial, a score outside 1..5 or a choice not A/B for the trial's kind,
                or a trial this rater already answered.
            sqlite3.Error: the database cannot be written (nothing is stored).
        """
        trial = self._by_id.get(trial_id)
        if trial is None:
            raise ConfigError(f"unknown trial {trial_id}")
        if trial.kind == "rate" and (score is None or not 1 <= score <= 5 or choice is not None):
            raise ConfigError(f"trial {trial_id} needs a score 1..5, got {score!r}")
        if trial.kind == "ab" and (choice not in ("A", "B") or score is not None):
            raise ConfigError(f"trial {trial_id} needs a choice A or B, got {choice!r}")
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._lock, self._con:  # one transaction: rolled back on any error
            if trial_id in self._answered(rater):
                raise ConfigError(f"rater {rater!r} already answered trial {trial_id}")
            position = self._con.execute("SELECT COUNT(*) FROM answers WHERE rater = ?", (rater,)).fetchone()[0]
            self._con.execute(
                "INSERT INTO answers (rater, trial, score, choice, position, answered_at) VALUES (?, ?, ?, ?, ?, ?)",
                (rater, trial_id, score, choice, position, stamp),
            )
            return self._progress(rater)

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


_PAGE_TOKEN = b"__SRUSCALE_TOKEN__"
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp"}
_ANSWER_KEYS = {"rater", "trial", "score", "choice"}


def _page(token: str) -> bytes:
    """page.html with the study token in its ``<meta name="sruscale-token">`` (hex: nothing to escape)."""
    return Path(__file__).with_name("page.html").read_bytes().replace(_PAGE_TOKEN, token.encode())


class _RefusedError(Exception):
    """A request answered with ``status`` and ``{"error": message}``; nothing was stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _rater(value: object) -> str:
    """A rater id: a string, stripped, 1..MAX_RATER printable characters."""
    if not isinstance(value, str):
        raise _RefusedError(400, f"rater: expected a string, got {type(value).__name__}")
    rater = value.strip()
    if not rater:
        raise _RefusedError(400, "rater: expected a rater id, got a blank one")
    if len(rater) > MAX_RATER or not rater.isprintable():
        raise _RefusedError(400, f"rater: expected at most {MAX_RATER} printable characters")
    return rater


def _json_depth(text: str, limit: int) -> int:
    """Nesting depth of JSON ``text`` (brackets outside strings), counted up to ``limit + 1``."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _short_int(text: str) -> int:
    if len(text.lstrip("-")) > 12:
        raise ValueError(f"integer {text[:20]}... is out of range")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate keys")
    return out


def _parse_answer(body: bytes) -> tuple[str, int, int | None, str | None]:
    """``(rater, trial, score, choice)`` from an answer body, or :class:`_RefusedError` (400) saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _RefusedError(400, "the body is not UTF-8") from None
    if _json_depth(text, MAX_DEPTH) > MAX_DEPTH:
        raise _RefusedError(400, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_short_int,
                          object_pairs_hook=_unique_keys)  # fmt: skip
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise _RefusedError(400, f"invalid JSON: {' '.join(str(exc).split())[:120]}") from None
    if not isinstance(data, dict):
        raise _RefusedError(400, f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _ANSWER_KEYS)
    if unknown:
        shown = ", ".join(repr(k[:20]) for k in unknown[:5])
        raise _RefusedError(400, f"unknown key(s) {shown}; expected rater, trial, score or choice")
    trial, score, choice = data.get("trial"), data.get("score"), data.get("choice")
    if isinstance(trial, bool) or not isinstance(trial, int) or not 0 < trial < 2**31:
        raise _RefusedError(400, f"trial: expected a trial number, got {trial!r:.40}")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5):
        raise _RefusedError(400, f"score: expected an integer 1..5, got {score!r:.40}")
    if choice is not None and choice not in ("A", "B"):
        raise _RefusedError(400, f"choice: expected 'A' or 'B', got {choice!r:.40}")
    return _rater(data.get("rater")), trial, score, choice


def _content_length(values: list[str]) -> int:
    """The one ``Content-Length`` of a POST: 1..MAX_BODY bytes (400 / 413 otherwise)."""
    if len(values) != 1:
        raise _RefusedError(400, "expected one Content-Length header" + (f", got {len(values)}" if values else ""))
    text = values[0].strip()
    if not re.fullmatch(r"[0-9]{1,30}", text):
        raise _RefusedError(400, f"Content-Length: expected a byte count, got {text[:20]!r}")
    n = int(text)
    if n == 0:
        raise _RefusedError(400, "empty body: expected a JSON answer")
    if n > MAX_BODY:
        raise _RefusedError(413, f"body of {n} bytes is too large (at most {MAX_BODY})")
    return n


class _Handler(BaseHTTPRequestHandler):
    study: Study
    server_version = "sruscale-mos"
    #: a request line without a version still gets a status line and headers (not HTTP/0.9's bare body)
    default_request_version = "HTTP/1.0"
    #: seconds a client may take to send a request (a stalled one does not hold its thread forever)
    timeout = 10
    #: body bytes the client announced that are still unread (read and dropped before closing)
    _unread = 0

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        return

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")  # no clickjacking from a frame
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: object, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, header too long, unknown method) as JSON."""
        self.close_connection = True
        try:
            self._json({"error": message or HTTPStatus(code).phrase}, code)
        except OSError:
            pass

    def _state(self, p: Progress, rater: str) -> dict[str, Any]:
        state: dict[str, Any] = {"rater": rater, "done": p.done, "total": p.total, "other_raters": p.other_raters}
        if p.trial is None:
            state["finished"] = True
            return state
        state["trial"] = {
            "id": p.trial.id,
            "kind": p.trial.kind,
            "images": [f"/img/{self.study.token(path)}" for path in (p.trial.path_a, p.trial.path_b) if path],
        }
        return state

    def _host(self) -> str:
        """The ``Host`` header when it names this server (127.0.0.1, localhost or [::1] and its port), else 403."""
        hosts = self.headers.get_all("Host") or []
        address = self.server.server_address
        port = address[1] if isinstance(address, tuple) else 0
        allowed = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")}
        if port == 80:
            allowed |= {"127.0.0.1", "localhost", "[::1]"}
        host = hosts[0].strip().lower() if len(hosts) == 1 else ""
        if host not in allowed:
            raise _RefusedError(403, f"Host {(hosts[0] if hosts else '')[:60]!r} is not this server: open "
                                f"http://127.0.0.1:{port}/")  # fmt: skip
        return host

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._respond(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._respond(self._post)

    def _respond(self, handler: Callable[[], tuple[int, bytes, str]]) -> None:
        """Run ``handler``; every refusal or failure becomes a JSON error, never a dropped connection."""
        try:
            status, body, ctype = handler()
        except _RefusedError as exc:
            status, body, ctype = exc.status, json.dumps({"error": str(exc)}).encode(), "application/json"
        except Exception as exc:  # noqa: BLE001 - the reply says so; the server goes on
            log.warning("MOS server: %s %s failed: %s: %s", self.command, self.path[:80], type(exc).__name__, exc)
            status, body, ctype = 500, json.dumps({"error": "internal error: nothing was stored"}).encode(), \
                "application/json"
        self.close_connection = True
        self._send(status, body, ctype)
        self._drain()

    def _drain(self) -> None:
        """Read (and drop) what the client still sends of a refused body, so closing does not reset
        the connection before it reads the reply; at most 1 MiB, briefly."""
        left = min(self._unread, 1 << 20)
        if left <= 0:
            return
        try:
            self.wfile.flush()
            self.connection.settimeout(0.5)
            while left > 0:
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _get(self) -> tuple[int, bytes, str]:
        self._host()
        url = urlparse(self.path)
        if url.path == "/":
            return 200, _page(self.study.api_token), "text/html; charset=utf-8"
        if url.path == "/api/state":
            try:
                q = parse_qs(url.query, max_num_fields=8)
            except ValueError:
                raise _RefusedError(400, "too many query parameters") from None
            rater = _rater((q.get("rater") or [""])[0])
            return 200, json.dumps(self._state(self.study.progress(rater), rater)).encode(), "application/json"
        if url.path.startswith("/img/"):
            path = self.study.image_path(url.path.removeprefix("/img/"))
            if path is None or not Path(path).is_file():
                raise _RefusedError(404, "not found")
            return 200, Path(path).read_bytes(), _IMAGE_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")
        raise _RefusedError(404, "not found")

    def _post(self) -> tuple[int, bytes, str]:
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) == 1 and re.fullmatch(r"[0-9]{1,15}", lengths[0].strip()):
            self._unread = int(lengths[0])  # what the client sends anyway: read and dropped if refused
        if urlparse(self.path).path != "/api/answer":
            raise _RefusedError(404, "not found")
        host = self._host()
        origins = self.headers.get_all("Origin") or []
        if len(origins) > 1 or (origins and origins[0].strip().lower() != f"http://{host}"):
            raise _RefusedError(403, f"cross-origin request from {origins[0][:60]!r} refused")
        token = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.study.api_token.encode()):
            raise _RefusedError(403, f"missing or wrong {TOKEN_HEADER}: reload the study page")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _RefusedError(415, f"expected Content-Type application/json, got {ctype[:40] or 'none'!r}")
        if self.headers.get("Transfer-Encoding") is not None:
            raise _RefusedError(400, "Transfer-Encoding is not accepted: send a Content-Length")
        length = _content_length(lengths)
        try:
            body = self.rfile.read(length)
        except OSError:  # the timeout: the client stalled
            raise _RefusedError(400, f"the body did not arrive within {self.timeout} s") from None
        self._unread = 0
        if len(body) != length:
            raise _RefusedError(400, f"incomplete body: {len(body)} of {length} bytes")
        rater, trial, score, choice = _parse_answer(body)
        try:
            progress = self.study.answer(rater, trial, score=score, choice=choice)
        except SruscaleError as exc:
            raise _RefusedError(400, str(exc)) from None
        except sqlite3.Error as exc:
            log.warning("MOS server: cannot store an answer in %s: %s", self.study.path, exc)
            raise _RefusedError(500, f"the answer could not be stored ({exc}); nothing was stored") from None
        return 200, json.dumps(self._state(progress, rater)).encode(), "application/json"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (client gone mid-reply): one debug line, no traceback on the console."""
        exc = sys.exc_info()[1]
        log.debug("MOS server: connection from %s failed: %s", client_address, exc)


class StudyServer:
    """The HTTP server of a :class:`Study` on ``127.0.0.1:port`` (``port=0``: any free port)."""

    def __init__(self, study: Study, *, port: int = 8765) -> None:
        handler = type("Handler", (_Handler,), {"study": study})
        try:
            self.httpd = _Server(("127.0.0.1", port), handler)
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
