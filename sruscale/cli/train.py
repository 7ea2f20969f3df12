"""`sruscale train`: load a TOML recipe, apply overrides, call :func:`sruscale.training.fit`."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column

from . import app
from ._options import DeviceOpt

if TYPE_CHECKING:
    from ..training import TrainConfig
    from ..training.loop import FitResult

_console = Console(stderr=True)
#: recipe overrides (keywords of sruscale.training.OVERRIDES) -> the option that sets them
_OPTIONS = {"iterations": "--iters", "batch_size": "--batch-size", "lr": "--lr", "workers": "--workers"}


class _Display:
    """Rich progress bar fed by fit()'s events: loss components, it/s, ETA; val/checkpoint lines."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=10),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            # the stats column takes what is left of the line and is cut with an ellipsis (80 columns fit)
            TextColumn("{task.fields[stats]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            console=_console,
            transient=False,
            expand=True,
            refresh_per_second=4,  # updated every iteration, redrawn at most 4 times a second
        )
        self.task: Any = None
        self.teacher: Any = None

    def __call__(self, kind: str, rec: dict[str, Any]) -> None:
        p = self.progress
        if kind == "start":
            p.start()
            self.task = p.add_task("train", total=rec["end"], completed=rec["iter"], speed="", stats="")
            p.console.print(
                f"training {rec['images']} images ({rec['color']}) on {rec['device']}"
                + (f" x{rec['world']} processes" if rec["world"] > 1 else "")
                + f", iterations {rec['iter']} -> {rec['end']} of {rec['iterations']}"
            )
        elif kind == "teacher":  # the distillation targets, before the first iteration
            if self.teacher is None:
                p.start()
                self.teacher = p.add_task("teacher", total=rec["total"], speed="", stats="distillation targets")
            p.update(self.teacher, completed=rec["done"])
        elif kind == "step":
            p.update(self.task, completed=rec["iter"])
        elif kind == "train":
            skip = {"iter", "lr", "it_s", "time", "grad_norm"}
            stats = " ".join(f"{k.replace('_loss', '')}={v:.3g}" for k, v in rec.items() if k not in skip)
            p.update(self.task, completed=rec["iter"], speed=f"{rec['it_s']:.2f}it/s",
                     stats=f"lr={rec['lr']:.1e} {stats}")
        elif kind == "val":
            scores = " ".join(f"{k}={v:.4f}" for k, v in rec.items() if k not in ("iter", "best", "time"))
            p.console.print(f"[cyan]val[/] iter {rec['iter']}: {scores} (best {rec['best']:.4f})")
        elif kind == "note":
            p.console.print(f"[dim]{rec['text']}[/]", soft_wrap=True)
        elif kind == "checkpoint":
            p.console.print(f"[dim]checkpoint {rec['path']}[/]")
        elif kind == "skip":
            p.console.print(f"[yellow]iteration {rec['iter']}: non-finite loss {rec['loss']}, step skipped[/]")
        elif kind == "end":
            p.stop()


@app.command("train")
def train(
    recipe: Annotated[
        Path | None,
        typer.Argument(help="TOML recipe, e.g. train/fsrcnn_x2.toml (or --from MODEL --hr DIR instead)",
                       exists=True, dir_okay=False, show_default=False),
    ] = None,
    from_model: Annotated[
        str | None,
        typer.Option("--from", help="Fine-tune this model (a name from 'sruscale models', or a weights file) "
                     "on --hr, with no recipe", show_default=False),
    ] = None,
    hr: Annotated[
        Path | None,
        typer.Option("--hr", help="With --from: a folder of your own HR images; a few are held out for "
                     "validation (the log names them)", exists=True, file_okay=False, show_default=False),
    ] = None,
    degrade: Annotated[
        str | None,
        typer.Option("--degrade", help="With --from: how LR inputs are made from --hr: bicubic, realistic, or a "
                     "pipeline .toml (default: realistic for the realworld family, else bicubic)", show_default=False),
    ] = None,
    holdout: Annotated[
        int | None,
        typer.Option("--holdout", min=1, help="With --from: images held out for validation (default a tenth, 1-5)",
                     show_default=False),
    ] = None,
    iters: Annotated[int | None, typer.Option("--iters", help="Total iterations (overrides the recipe; "
                                              "--from: 500)", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Samples per iteration and process")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Base learning rate")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/<recipe name>, or "
                                             "runs/finetune-<model> with --from)", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out")] = False,
    data_root: Annotated[
        Path | None,
        typer.Option("--data-root", help="The data folder itself (holding T91, Set5, ...): the recipe's data paths "
                     "resolve against it instead of the recipe's data_root", show_default=False),
    ] = None,
    device: DeviceOpt = "auto",
    workers: Annotated[int | None, typer.Option("--workers", help="DataLoader workers")] = None,
    backbone_weights: Annotated[
        Path | None,
        typer.Option("--backbone-weights", help="torchvision VGG19/ResNet weights for perceptual/style terms",
                     exists=True, dir_okay=False),
    ] = None,
    stop_at: Annotated[
        int | None,
        typer.Option("--stop-at", min=1, help="Stop (with a checkpoint) after N iterations; schedule unchanged"),
    ] = None,
) -> None:
    """Train a model from a TOML recipe, or fine-tune one on your own images (--from MODEL --hr DIR).
    Ctrl-C or SIGTERM stop after the current step with a checkpoint; --resume continues."""
    values = {"iterations": iters, "batch_size": batch_size, "lr": lr, "workers": workers}
    config = _config(recipe, from_model, hr, degrade, holdout, values)
    name = recipe.stem if recipe is not None else f"finetune-{Path(str(from_model)).stem}"
    out_dir = out if out is not None else Path("runs") / name
    display = _Display()
    command = shlex.join(["sruscale", *sys.argv[1:]])
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # fit() turns it into a clean stop
    from ..training import fit

    try:
        result = fit(
            config, out_dir=out_dir, resume=resume, device=device, data_root=data_root, recipe_path=recipe,
            command=command, stop_at=stop_at, backbone_weights=backbone_weights, on_event=display,
        )
    finally:
        display.progress.stop()
    _report(result, config.iterations, config.val.metric, out_dir, stop_at=stop_at)


def _config(
    recipe: Path | None, from_model: str | None, hr: Path | None, degrade: str | None, holdout: int | None,
    values: dict[str, Any],
) -> TrainConfig:
    """The recipe file with the options applied, or the fine-tuning recipe of --from/--hr."""
    from ..training import OVERRIDES, OverrideError, load_recipe
    from ..training.finetune import DEGRADE_CHOICES, finetune_recipe

    if recipe is None and (from_model is None or hr is None):
        raise typer.BadParameter("give a TOML recipe, or --from MODEL --hr DIR to fine-tune on your own images",
                                 param_hint="'RECIPE'")
    if recipe is not None and (from_model is not None or hr is not None):
        raise typer.BadParameter("a recipe names its model and data: drop --from/--hr, or the recipe",
                                 param_hint="'--from'")
    if recipe is None:
        if degrade is not None and degrade not in DEGRADE_CHOICES and not degrade.endswith(".toml"):
            raise typer.BadParameter(f"expected one of {', '.join(DEGRADE_CHOICES)} or a pipeline .toml file, "
                                     f"got {degrade!r}", param_hint="'--degrade'")
        assert from_model is not None and hr is not None
        base = finetune_recipe(from_model, hr, degradation=degrade, holdout=holdout,
                               iterations=values["iterations"] or 500)
        values = {**values, "iterations": None}
    elif degrade is not None or holdout is not None:
        raise typer.BadParameter("--degrade and --holdout go with --from; a recipe sets [data] and [val]",
                                 param_hint="'--degrade'")
    try:  # the options are recipe values: validated once, with the recipe, by the recipe's validator
        if recipe is not None:
            return load_recipe(recipe, overrides={OVERRIDES[k]: v for k, v in values.items()})
        from ..training import with_overrides

        return with_overrides(base, **values)
    except OverrideError as exc:
        option = next(_OPTIONS[k] for k, path in OVERRIDES.items() if path == exc.key)
        raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None


def _report(result: FitResult, iterations: int, metric: str, out_dir: Path, *, stop_at: int | None) -> None:
    """The end of a run on rank 0: where it stopped, its best score, skipped steps; exit 130 after a signal."""
    from ..distributed import dist_info

    if not dist_info().is_main:
        return
    state = "finished" if result.complete else "stopped"
    _console.print(f"{state} at iteration {result.iteration}/{iterations}; run folder {out_dir}")
    weights = result.best_weights or result.last_weights
    if weights is not None:
        _console.print(f"upscale with it: sruscale upscale IN -o OUT --weights {weights}", soft_wrap=True)
    if result.best is not None:
        _console.print(f"best {metric} {result.best['score']:.4f} at iteration {result.best['iter']}")
    if result.skipped:
        _console.print(f"[yellow]{result.skipped} steps skipped (non-finite loss or gradient)[/]")
    if not result.complete and (stop_at is None or result.iteration < stop_at):  # Ctrl-C / SIGTERM
        from ._interrupt import EXIT_INTERRUPTED

        raise typer.Exit(EXIT_INTERRUPTED)
