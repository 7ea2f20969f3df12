"""The ``sruscale evaluate`` command group: scoring is the default command, tools are subcommands.

``sruscale evaluate SR_DIR GT_DIR`` (no subcommand name) runs ``evaluate score``; ``sruscale
evaluate fit-niqe ...``, ``plot``, ``mos-study``, ``mos-report`` and ``task`` are the tools.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from . import app

__all__ = ["DEFAULT_COMMAND", "evaluate_app"]

DEFAULT_COMMAND = "score"


class _DefaultGroup(TyperGroup):
    """A group whose first argument, when it is not a subcommand name, goes to :data:`DEFAULT_COMMAND`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: typer's vendored click Context
        if not args or args[0] not in self.commands:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


evaluate_app = typer.Typer(
    cls=_DefaultGroup,
    rich_markup_mode="rich",
    help="Score SR images (PSNR ... NIQE, LPIPS, PI); tools: fit-niqe, plot, mos-study, mos-report, task.",
)
app.add_typer(evaluate_app, name="evaluate")
