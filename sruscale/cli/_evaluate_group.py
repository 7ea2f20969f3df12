"""The ``sruscale evaluate`` command group: scoring is the default command, tools are subcommands.

``sruscale evaluate SR_DIR GT_DIR`` (no subcommand name) runs the scoring command, registered as
:data:`DEFAULT_COMMAND` with :class:`DefaultCommand`, whose usage lines and hints say
``sruscale evaluate``: the internal name never shows. ``sruscale evaluate fit-niqe ...``, ``plot``,
``mos-study``, ``mos-report`` and ``task`` are the tools.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from . import app

__all__ = ["DEFAULT_COMMAND", "DefaultCommand", "evaluate_app"]

DEFAULT_COMMAND = "score"


class _DefaultGroup(TyperGroup):
    """A group whose first argument, when it is not a subcommand name, goes to :data:`DEFAULT_COMMAND`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: typer's vendored click Context
        if not args or args[0] not in self.commands:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


class _DefaultContext(typer.Context):
    """The context of the default command: its path is the group's (``sruscale evaluate``)."""

    @property
    def command_path(self) -> str:
        return self.parent.command_path if self.parent is not None else super().command_path


class DefaultCommand(TyperCommand):
    """The group's default command: usage lines, errors and ``--help`` name it as the group itself."""

    context_class = _DefaultContext


evaluate_app = typer.Typer(
    cls=_DefaultGroup,
    rich_markup_mode="rich",
    help="Score SR images (PSNR ... NIQE, LPIPS, PI); tools: fit-niqe, plot, mos-study, mos-report, task.",
)
app.add_typer(evaluate_app, name="evaluate")
