"""Exception hierarchy. Library code raises these; only ``cli.main`` turns them into messages.

:func:`out_of_memory_fails_file` is the one rule that turns memory exhaustion on one file into
that file's :class:`ImageError`, so a batch (``upscale``, ``degrade``, ``evaluate``) goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "BusyError",
    "CheckpointError",
    "ConfigError",
    "ImageError",
    "NonFiniteOutputError",
    "SruscaleError",
    "UnknownModelError",
    "WriteError",
    "is_out_of_memory",
    "out_of_memory_fails_file",
]


class SruscaleError(Exception):
    """Base class of every error sruscale raises on purpose."""


class UnknownModelError(SruscaleError, ValueError):
    """A model name that is not in the registry or the weights manifest."""


class ImageError(SruscaleError, ValueError):
    """An image that cannot be read, decoded, or written."""


class CheckpointError(SruscaleError):
    """A weights file that is missing, corrupt, or does not match what was expected."""


class ConfigError(SruscaleError, ValueError):
    """A recipe or option value that is invalid (unknown key, wrong type, bad range)."""


class BusyError(SruscaleError):
    """A folder that another live sruscale process holds (a training run writing into it)."""


class NonFiniteOutputError(SruscaleError):
    """A model output with NaN/Inf that recomputing in fp32 does not fix (that image fails)."""


class WriteError(SruscaleError, OSError):
    """A file that cannot be written: full disk, quota, read-only or vanished folder, permissions."""

    #: the cause alone ("No space left on device"), for callers that name the file themselves
    reason: str = ""


#: how torch says it ran out of memory without a class of its own (CPU allocator), or with one (CUDA, MPS)
_OOM_TEXT = ("DefaultCPUAllocator: can't allocate memory", "out of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is memory exhaustion: ``MemoryError``, ``torch.OutOfMemoryError`` (CUDA, MPS), or the
    ``RuntimeError`` of torch's CPU allocator (``"DefaultCPUAllocator: can't allocate memory"``)."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc) for t in _OOM_TEXT)


@contextmanager
def out_of_memory_fails_file(path: str | os.PathLike[str], hint: str = "") -> Iterator[None]:
    """Inside, memory exhaustion (:func:`is_out_of_memory`) becomes ``ImageError("{path}: out of memory ...")``.

    The batch loops catch that error like any bad file: the file fails, the batch goes on.

    Args:
        path: the file being processed (starts the message).
        hint: appended in parentheses, e.g. ``"try a smaller --tile"``.

    Raises:
        ImageError: the body ran out of memory; anything else the body raises propagates unchanged.
    """
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise ImageError(f"{os.fspath(path)}: out of memory{f' ({hint})' if hint else ''}") from None
