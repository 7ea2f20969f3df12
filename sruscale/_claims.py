"""Claim files: two processes writing into one folder never work on the same output at once.

``claim(path)`` holds an advisory lock on ``.<name>.claim`` next to ``path`` while the output is
made. The lock (``flock``) goes away with its process, so the claim of a run killed with
``kill -9`` is free again at once; its file (and the temporary files it left) are removed by
the next process that takes the claim. Without ``fcntl`` (Windows) every claim is granted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._fs import remove_stale_temps

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["claim", "claim_path"]


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
