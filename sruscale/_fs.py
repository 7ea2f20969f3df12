"""Atomic file writes: every output appears complete or not at all.

Temporary files are named ``.<name>.<pid>.<8 hex>.tmp`` next to their target, so a later run
can recognise the ones a killed process left behind (:func:`remove_stale_temps`) without
touching those of a process that is still writing.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WriteError

__all__ = ["atomic_write", "pid_alive", "remove_stale_temps", "write_error", "write_text_atomic"]

#: ``.<name>.<pid>.<token>.tmp`` (and ``.<name>.<token>.tmp`` from sruscale before 0.x had the pid)
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[0-9a-f]{8}\.tmp$")


def write_error(exc: BaseException, path: str | os.PathLike[str]) -> WriteError | None:
    """A one-line :class:`WriteError` for a failed write of ``path``, or None when ``exc`` is not one.

    Maps ``OSError`` (full disk, quota, read-only or vanished folder, permissions), safetensors'
    ``SafetensorError`` and torch's ``PytorchStreamWriter failed writing`` (both hide the errno).
    """
    if isinstance(exc, WriteError):
        return exc
    if isinstance(exc, OSError):
        reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    elif type(exc).__name__ == "SafetensorError" or (isinstance(exc, RuntimeError) and "failed writing" in str(exc)):
        reason = " ".join(str(exc).split())
        if "StorageFull" in reason or "No space left" in reason:
            reason = os.strerror(errno.ENOSPC)
    else:
        return None
    folder = Path(path).parent
    try:
        low = shutil.disk_usage(folder if folder.exists() else ".").free < 1 << 20
    except OSError:
        low = False
    hint = "" if not low or "space" in reason.lower() else " (the disk is full)"
    err = WriteError(f"cannot write {path}: {reason}{hint}")
    err.reason = reason + hint
    return err


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``path``; rename it over ``path`` on success.

    The temporary file is deleted on any failure (including ``KeyboardInterrupt``), so an
    interrupted run never leaves a partial output (a ``kill -9`` can: see :func:`remove_stale_temps`).
    Missing folders are created. The file is created with the usual permissions (umask applies,
    unlike ``tempfile.mkstemp``).

    Raises:
        WriteError: the file cannot be written (full disk, read-only folder, ...); whatever the
            body raises otherwise propagates unchanged.

    Example:
        >>> with atomic_write("out/model.safetensors") as tmp:
        ...     save_file(state, str(tmp))
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = tmp.stat().st_mode  # some writers (safetensors) recreate the file as 0600
    except OSError as exc:
        raise write_error(exc, path) from None  # type: ignore[misc]
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except Exception as exc:
        mapped = write_error(exc, path)
        if mapped is None or mapped is exc:
            raise
        raise mapped from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str], *, name: str | None = None, recursive: bool = False) -> int:
    """Delete the temporary files of :func:`atomic_write` that a killed process left in ``folder``.

    A temporary file is stale when the process that created it (the pid in its name) is gone;
    those of running processes (this one included) are kept.

    Args:
        folder: where to look (a missing folder holds none).
        name: only the temporary files of this target file name.
        recursive: also look in subfolders.

    Returns:
        How many files were deleted.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    removed = 0
    walker = os.walk(root) if recursive else [(str(root), [], os.listdir(root))]
    for here, _dirs, files in walker:
        for fname in files:
            m = _TEMP.match(fname)
            if m is None or (name is not None and m["name"] != name):
                continue
            if m["pid"] is not None and pid_alive(int(m["pid"])):
                continue
            try:
                os.unlink(os.path.join(here, fname))
                removed += 1
            except FileNotFoundError:
                pass
    return removed
