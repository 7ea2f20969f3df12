"""Worker processes that do not outlive their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

from ._fs import pid_alive

__all__ = ["available_cpus", "die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, *, poll_seconds: float = 1.0) -> None:
    """Make this (worker) process exit when process ``parent`` dies, even by ``kill -9``.

    On Linux the kernel sends SIGKILL when the parent exits (``prctl(PR_SET_PDEATHSIG)``); a
    forkserver in between exits with its own parent, which then kills the worker the same way.
    Elsewhere (or if ``prctl`` is unavailable) a daemon thread polls ``parent`` every
    ``poll_seconds``. If ``parent`` is already gone, exit at once.
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if not pid_alive(parent) or (armed and os.getppid() == 1):  # died before prctl took effect
        os._exit(1)
    if not armed:

        def watch() -> None:
            while pid_alive(parent):
                time.sleep(poll_seconds)
            os._exit(1)

        threading.Thread(target=watch, name="sruscale-parent-watch", daemon=True).start()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)
