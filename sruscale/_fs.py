"""Atomic file writes: every output appears complete or not at all."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "write_text_atomic"]


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``path``; rename it over ``path`` on success.

    The temporary file is deleted on any failure (including ``KeyboardInterrupt``), so an
    interrupted run never leaves a partial output. Missing folders are created. The file is
    created with the usual permissions (umask applies, unlike ``tempfile.mkstemp``).

    Example:
        >>> with atomic_write("out/model.safetensors") as tmp:
        ...     save_file(state, str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    mode = tmp.stat().st_mode  # some writers (safetensors) recreate the file as 0600
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
