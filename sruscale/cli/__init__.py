"""The ``sruscale`` command line. ``main`` is the only place where errors become messages."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import SruscaleError

app = typer.Typer(
    name="sruscale",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    help="Batch image super-resolution: upscale, degrade, train, evaluate.",
)


@app.callback()
def _root() -> None:
    """Keep `sruscale COMMAND` a command group even while only one command is registered."""


# Subcommands register themselves on import; each module adds exactly one command.
from . import degrade, evaluate, evaluate_perceptual, export, models, train, upscale  # noqa: E402,F401

_err = Console(stderr=True)


def main() -> None:
    """Entry point. Typer runs in standalone mode, so ``--help`` exits 0 and usage errors
    (bad option values, missing arguments) print the usage and exit 2; library errors
    become one line on stderr and exit 1 (full traceback with ``SRUSCALE_DEBUG=1``)."""
    try:
        app()
    except SruscaleError as exc:
        if os.environ.get("SRUSCALE_DEBUG", "") not in ("", "0"):
            raise
        _err.print("[bold red]error:[/]", escape(" ".join(str(exc).split())), highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted[/]")
        sys.exit(130)
