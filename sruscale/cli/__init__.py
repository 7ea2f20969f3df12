"""The ``sruscale`` command line. ``main`` is the only place where errors become messages.

Start-up stays light: each subcommand module is imported only when that command runs (or
shows its ``--help``), and the command modules import the library (and torch) inside their
functions, so ``sruscale --help`` and ``sruscale upscale --help`` never import torch.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from ..errors import SruscaleError
from ._interrupt import EXIT_INTERRUPTED, interrupts_as_keyboard_interrupt

#: command name -> (module in sruscale.cli, one-line help shown by ``sruscale --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "upscale": ("upscale", "Upscale images with a super-resolution model."),
    "degrade": ("degrade", "Make LR/HR pairs: OUT_DIR/HR/NAME.png and OUT_DIR/LR_xS/NAME.png, plus manifest.jsonl."),
    "evaluate": ("evaluate", "Score SR images with or without ground truth, rank output folders, or run a model "
                 "through the SR benchmark protocol."),
    "train": ("train", "Train a model from a TOML recipe; Ctrl-C or SIGTERM stop with a checkpoint (exit 130)."),
    "models": ("models", "List architectures, scales, sizes, speed and bundled weights."),
    "export": ("export", "Export a model (untrained, or with --weights) to ONNX."),
}


class _LazyGroup(typer.core.TyperGroup):
    """Imports a command's module on first use; the command list in ``--help`` comes from :data:`COMMANDS`."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module, short = COMMANDS[cmd_name]
        if self._listing:  # `sruscale --help`: a stub with the one-line help, nothing imported
            return typer.core.TyperCommand(name=cmd_name, help=short, callback=None)
        importlib.import_module(f"{__name__}.{module}")
        for info in app.registered_commands:
            if info.name == cmd_name:
                cmd = typer.main.get_command_from_info(
                    info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode
                )
                self.commands[cmd_name] = cmd
                return cmd
        for group in app.registered_groups:  # a command with subcommands (`evaluate`)
            if group.name == cmd_name:
                cmd = typer.main.get_group_from_info(
                    group,
                    pretty_exceptions_short=app.pretty_exceptions_short,
                    suggest_commands=True,
                    rich_markup_mode=app.rich_markup_mode,
                )
                self.commands[cmd_name] = cmd
                return cmd
        return None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


_TYPE_WORDS = (("bool", None), ("int", "INTEGER"), ("float", "NUMBER"), ("path", "PATH"), ("str", "TEXT"))


def _plain_type(self: Any, ctx: Any) -> str | None:
    """Option/argument type in ``--help`` as a plain word (INTEGER, NUMBER, TEXT, PATH, a|b|c), none for flags."""
    if self.metavar is not None:
        return str(self.metavar)
    if getattr(self, "is_flag", False) or getattr(self, "count", False):
        return None
    label = _original_display_type(self, ctx)
    if label is None:
        return None
    label = re.sub(r"\s*\|\s*None\b", "", label.strip("<>").replace(" range", ""))
    if "|" in label:  # choices
        return label
    low = label.lower()
    for word, plain in _TYPE_WORDS:
        if low.startswith(word) or low.startswith(f"list[{word}"):
            return plain if plain is None or not low.startswith("list[") else f"{plain}..."
    return label.upper()


_original_display_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _plain_type  # type: ignore[method-assign]
typer.core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]  # name says it


app = typer.Typer(
    name="sruscale",
    cls=_LazyGroup,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Batch image super-resolution: upscale, degrade, train, evaluate.",
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"sruscale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Keep `sruscale COMMAND` a command group; handle --version."""


_err = Console(stderr=True)


def main() -> None:
    """Entry point. Typer runs in standalone mode, so ``--help`` exits 0 and usage errors
    (bad option values, missing arguments) print the usage and exit 2; library errors
    become one line on stderr and exit 1 (full traceback with ``SRUSCALE_DEBUG=1``);
    Ctrl-C or SIGTERM exit 130."""
    try:
        with interrupts_as_keyboard_interrupt():
            app()
    except SruscaleError as exc:
        if os.environ.get("SRUSCALE_DEBUG", "") not in ("", "0"):
            raise
        _err.print("[bold red]error:[/]", escape(" ".join(str(exc).split())), highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted[/]")
        sys.exit(EXIT_INTERRUPTED)
