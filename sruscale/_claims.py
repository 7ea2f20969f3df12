"""Claim files: two processes writing into one folder never work on the same output at once.

``claim(path)`` holds an advisory lock on ``.<name>.claim`` next to ``path`` while the output is
made. The lock (``flock``) goes away with its process, so the claim of a run killed with
``kill -9`` is free again at once; its file (and the temporary files it left) are removed by
the next process that takes the claim. Without ``fcntl`` (Windows) every claim is granted.

``lock_folder(folder)`` is the same lock for a whole folder (a training run folder): its file
inside the folder names the holder (pid, host, start time), and a second process is refused
with a :class:`~sruscale.errors.BusyError` that says who holds it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ._fs import remove_stale_temps
from .errors import BusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["claim", "claim_path", "lock_folder"]


def claim_path(path: str | os.PathLike[str]) -> Path:
    """The claim file of output ``path``: ``.<name>.claim`` in the same folder."""
    p = Path(path)
    return p.with_name(f".{p.name}.claim")


def _acquire(target: Path) -> tuple[int | None, bool]:
    """``(fd, stale)``: a locked descriptor of the claim file (None: another process holds it);
    ``stale``: the file was there before, left by a process that died holding it."""
    assert fcntl is not None
    for _ in range(5):  # the holder may unlink the file between our open and our lock: retry
        try:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            stale = False
        except FileExistsError:
            try:
                fd = os.open(target, os.O_RDWR)
            except FileNotFoundError:
                continue
            stale = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None, False
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(target))
        except FileNotFoundError:
            same = False
        if same:
            return fd, stale
        os.close(fd)  # we locked a file its holder had already removed
    return None, False


@contextmanager
def claim(path: str | os.PathLike[str]) -> Iterator[bool]:
    """Claim output ``path`` for this process; yield False when another live process holds it.

    While the claim is held no other sruscale process works on ``path``; on exit the claim file
    is removed. Taking over the claim of a dead process also removes the temporary files it left
    for ``path``. A folder where no claim file can be created (read-only) grants the claim: the
    write itself then fails or is skipped as usual.

    Example:
        >>> with claim(job.output) as mine:
        ...     result = process_job(job, ...) if mine else skipped(job)
    """
    target = claim_path(path)
    if fcntl is None:
        yield True
        return
    try:
        fd, stale = _acquire(target)
    except OSError:
        yield True
        return
    if fd is None:
        yield False
        return
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for people: who is writing this output
        if stale:
            remove_stale_temps(target.parent, name=Path(path).name)
        yield True
    finally:
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)


@contextmanager
def lock_folder(folder: str | os.PathLike[str], *, name: str, what: str, hint: str = "") -> Iterator[None]:
    """Hold the advisory lock of ``folder`` (file ``folder/name``) while the body writes into it.

    The lock file holds its holder as JSON (``{"pid": 123, "host": "box", "started":
    "2025-01-31T12:00:00Z"}``) for the message another process gets; it is removed on exit. The
    lock goes away with its process, so the lock of a killed process is taken over silently. A
    missing ``folder`` is created (with its parents) and removed again on exit if the body left
    nothing in it. Where no lock file can be made (read-only folder, no ``fcntl``) the lock is
    granted: the writes themselves then fail as usual.

    Args:
        folder: the folder to lock.
        name: the lock file's name inside it.
        what: the folder as the message names it (``--out runs/x``).
        hint: appended to the message (what the user can do).

    Raises:
        BusyError: another live process holds the lock; the message names it
            (``--out runs/x is in use by another sruscale process (pid 123 on box, started ...)``).

    Example:
        >>> with lock_folder(out, name=".sruscale-lock", what=f"--out {out}"):
        ...     train_into(out)
    """
    root = Path(folder)
    if fcntl is None:
        yield
        return
    created = _make_folders(root)
    target = root / name
    try:
        fd, _stale = _acquire(target)
    except OSError:
        fd, _stale = -1, False  # no lock file can be made here: granted
    if fd is None:
        holder = _holder(target)
        _remove_folders(created)
        raise BusyError(f"{what} is in use by another sruscale process ({holder})" + (f"; {hint}" if hint else ""))
    try:
        if fd >= 0:
            started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(record) + "\n").encode())
        yield
    finally:
        if fd >= 0:
            try:
                target.unlink()
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        _remove_folders(created)


def _holder(target: Path) -> str:
    """Who holds lock file ``target``, in words (its holder may still be writing it: wait briefly)."""
    for _ in range(20):
        try:
            record = json.loads(target.read_text(encoding="utf-8"))
            return f"pid {int(record['pid'])} on {record['host']}, started {record['started']}"
        except FileNotFoundError:
            return "it has just finished"
        except (OSError, ValueError, KeyError, TypeError):  # empty or half-written: its holder is writing it
            time.sleep(0.05)
    return f"holder unknown: {target} does not say"


def _make_folders(root: Path) -> list[Path]:
    """Create ``root`` and its missing parents; return the folders made, deepest first."""
    missing = []
    p = root
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return []  # the lock is granted without a file; the writes report the problem
    return missing


def _remove_folders(folders: list[Path]) -> None:
    """Remove the folders :func:`_make_folders` made, deepest first, where they are still empty."""
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return
