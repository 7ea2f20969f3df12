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

# Subcommands register themselves on import; each module adds exactly one command.
from . import degrade, evaluate, export, models, train, upscale  # noqa: E402,F401

_err = Console(stderr=True)


def main() -> None:
    """Entry point: run the app; library errors become one line on stderr and exit code 1."""
    try:
        app(standalone_mode=False)
    except SruscaleError as exc:
        if os.environ.get("SRUSCALE_DEBUG"):
            raise
        _err.print("[bold red]error:[/]", escape(str(exc)), highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err.print("[yellow]aborted[/]")
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here with standalone_mode=False
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
