"""One interrupt rule for every command: Ctrl-C and SIGTERM both raise ``KeyboardInterrupt``.

Commands catch it around their work loop, finish no half file (every write is atomic),
print their summary and exit with :data:`EXIT_INTERRUPTED` (130, the shell's code for SIGINT).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["EXIT_INTERRUPTED", "interrupts_as_keyboard_interrupt", "interrupts_deferred", "stop_on_interrupt"]

#: exit code after Ctrl-C or SIGTERM (128 + SIGINT)
EXIT_INTERRUPTED = 130


@contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Inside the block Ctrl-C and SIGTERM wait; the first one raises ``KeyboardInterrupt`` when the block ends.

    For the imports a command starts with: ``import torch`` cut short cannot be redone in the same
    process (it fails half-initialised), so a command interrupted there could print no summary.
    Main thread only; the previous handlers are restored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: caught.append(signum)) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        raise KeyboardInterrupt


#: the signals that stop a command
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_interrupt(summary: Callable[[], str], console: Console | None = None) -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block: print ``interrupted: {summary()}`` and exit 130.

    Example:
        >>> with stop_on_interrupt(lambda: f"{done} of {total} images scored; nothing written"):
        ...     run()
    """
    with interrupts_as_keyboard_interrupt():
        try:
            yield
        except KeyboardInterrupt:
            (console or Console(stderr=True)).print(f"[yellow]interrupted:[/] {escape(summary())}", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
