"""Options of ``sruscale evaluate`` for the perceptual metrics, and the tools ``fit-niqe``, ``plot``,
``mos-study``, ``mos-report`` and ``task``.

A thin layer over :mod:`sruscale.metrics` (NIQE, PIQE, BRISQUE, LPIPS) and :mod:`sruscale.evaluation.perception`
(PI, NIQE fitting, the perception-distortion plot); scoring itself runs through
:func:`sruscale.evaluation.plan_evaluation` / :func:`~sruscale.evaluation.run_evaluation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ConfigError
from ..evaluation.perception import (
    MaScorer,
    fit_niqe_folders,
    load_ma_scores,
    load_scorer,
    plot_points_from_results,
    write_pd_plot,
)
from ._evaluate_group import evaluate_app
from ._options import QuietOpt

__all__ = [
    "BrisqueModelOpt",
    "BrisqueRangeOpt",
    "LpipsBackboneOpt",
    "LpipsHeadsOpt",
    "LpipsNetOpt",
    "MaScorerOpt",
    "MaScoresOpt",
    "NiqeModelOpt",
    "PerceptualSetup",
    "PlotOpt",
    "perceptual_setup",
]

_FILE = {"exists": True, "dir_okay": False, "show_default": False}
NiqeModelOpt = Annotated[
    Path | None,
    typer.Option("--niqe-model", help="NIQE pristine model: MATLAB modelparameters.mat or .npz "
                 "(default: bundled weights/niqe_291.npz, fitted on the 291 training images).", **_FILE),
]  # fmt: skip
BrisqueModelOpt = Annotated[
    Path | None,
    typer.Option("--brisque-model", help="BRISQUE libsvm SVR model file (e.g. allmodel of the authors' release; "
                 "none ships with sruscale).", **_FILE),
]  # fmt: skip
BrisqueRangeOpt = Annotated[
    Path | None, typer.Option("--brisque-range", help="svm-scale range file of the BRISQUE model (allrange).", **_FILE)
]
LpipsNetOpt = Annotated[str, typer.Option("--lpips-net", help="LPIPS backbone: alex or vgg.")]
LpipsBackboneOpt = Annotated[
    Path | None,
    typer.Option("--lpips-backbone", help="torchvision ImageNet weights (alexnet-owt-7be5be79.pth / "
                 "vgg16-397923af.pth); default: the torch hub cache.", **_FILE),
]  # fmt: skip
LpipsHeadsOpt = Annotated[
    Path | None,
    typer.Option("--lpips-heads", help="LPIPS v0.1 linear heads (alex.pth / vgg.pth); default: from the "
                 "installed lpips package.", **_FILE),
]  # fmt: skip
MaScoresOpt = Annotated[
    Path | None,
    typer.Option("--ma-scores", help="PI: CSV image,ma with the Ma et al. (2017) score of every SR image. sruscale "
                 "cannot compute Ma's score (no trained model ships) and never makes up a PI without it.", **_FILE),
]  # fmt: skip
MaScorerOpt = Annotated[
    str | None,
    typer.Option("--ma-scorer", help="PI: a Ma et al. scorer as MODULE:FUNCTION or FILE.py:FUNCTION, called with "
                 "each SR image as a (1, C, H, W) tensor in [0, 1], returning a score in [0, 10] (pairing mode).",
                 show_default=False),
]  # fmt: skip
PlotOpt = Annotated[
    Path | None,
    typer.Option("--plot", help="Write the perception-distortion plot (PNG): x = PI (or NIQE), y = PSNR (or "
                 "LPIPS), one point per dataset of this run; combine methods with `evaluate plot`.",
                 dir_okay=False, show_default=False),
]  # fmt: skip


@dataclass(frozen=True)
class PerceptualSetup:
    """Per-metric options for :class:`~sruscale.evaluation.Protocol` and the PI source."""

    options: dict[str, dict[str, Any]]
    ma_scores: dict[str, float] | None = None
    ma_scorer: MaScorer | None = None


def perceptual_setup(
    metrics: list[str],
    *,
    niqe_model: Path | None = None,
    brisque_model: Path | None = None,
    brisque_range: Path | None = None,
    lpips_net: str = "alex",
    lpips_backbone: Path | None = None,
    lpips_heads: Path | None = None,
    ma_scores: Path | None = None,
    ma_scorer: str | None = None,
) -> PerceptualSetup:
    """Check the perceptual options against the chosen metrics and load the Ma et al. source of PI.

    Whether PI has exactly one Ma source is checked by :func:`~sruscale.evaluation.plan_evaluation`.

    Raises:
        ConfigError: an option for a metric that is not requested, BRISQUE without its two files,
            an unknown LPIPS net, an unreadable Ma scores file or scorer.
    """
    opts: dict[str, dict[str, Any]] = {}
    if niqe_model is not None:
        opts["niqe"] = {"model": str(niqe_model)}
    if (brisque_model is None) != (brisque_range is None):
        raise ConfigError("BRISQUE needs both --brisque-model and --brisque-range")
    if brisque_model is not None and brisque_range is not None:
        opts["brisque"] = {"model": (str(brisque_model), str(brisque_range))}
    elif "brisque" in metrics:
        raise ConfigError("brisque needs a trained model: give --brisque-model and --brisque-range (none ships)")
    if lpips_net not in ("alex", "vgg"):
        raise ConfigError(f"--lpips-net must be alex or vgg, got {lpips_net!r}")
    opts["lpips"] = {
        "net": lpips_net,
        "backbone_weights": str(lpips_backbone) if lpips_backbone else None,
        "heads": str(lpips_heads) if lpips_heads else None,
    }
    unused = [
        m for m in ("niqe", "brisque") if m in opts and m not in metrics and not (m == "niqe" and "pi" in metrics)
    ]
    if unused:
        raise ConfigError(f"options given for {', '.join(unused)}, which is not in --metrics")
    return PerceptualSetup(
        opts,
        ma_scores=load_ma_scores(ma_scores) if ma_scores else None,
        ma_scorer=load_scorer(ma_scorer) if ma_scorer else None,
    )


@evaluate_app.command("fit-niqe")
def fit_niqe(
    folders: Annotated[
        list[Path],
        typer.Argument(
            metavar="HR_DIR...",
            help="Folders of pristine (sharp, clean) images.",
            exists=True,
            file_okay=False,
            show_default=False,
        ),
    ],  # fmt: skip
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Model file to write (.npz).", dir_okay=False, show_default=False)
    ],
    gray: Annotated[
        bool, typer.Option("--gray", help="Fit on MATLAB rgb2gray instead of the Y of rgb2ycbcr (score likewise).")
    ] = False,
    sharpness: Annotated[
        float, typer.Option("--sharpness", min=0.0, max=1.0, help="Keep patches sharper than this x the sharpest.")
    ] = 0.75,
    quiet: QuietOpt = False,
) -> None:
    """Fit a NIQE pristine model (mu_prisparam, cov_prisparam) on folders of pristine images.

    Example: sruscale evaluate fit-niqe data/T91 data/BSD200 -o niqe_291.npz
    """
    if out.suffix.lower() != ".npz":
        raise typer.BadParameter(f"the model file must end in .npz, got {out.name!r}", param_hint="--out")
    console = Console(quiet=quiet)
    console.print(f"fitting NIQE on {', '.join(escape(str(f)) for f in folders)} ...", highlight=False)
    model = fit_niqe_folders(folders, y_channel=not gray, sharpness_threshold=sharpness)
    model.save(out)
    c = model.card
    console.print(f"wrote {escape(str(out))}: {c['images']} images, {c['patches']} patches", highlight=False)


@evaluate_app.command("plot")
def plot_cmd(
    results: Annotated[
        list[Path],
        typer.Argument(
            metavar="RESULTS.json...",
            help="Results of `evaluate --out r.json`, one per method.",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ],  # fmt: skip
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.", dir_okay=False, show_default=False)],
    x: Annotated[str, typer.Option("--x", help="Perception axis: niqe or pi (lower is better).")] = "niqe",
    y: Annotated[str, typer.Option("--y", help="Distortion axis: psnr or lpips.")] = "psnr",
    quiet: QuietOpt = False,
) -> None:
    """Perception-distortion plot (PIRM 2018): each method's dataset means as one point.

    Example: sruscale evaluate plot bicubic.json fsrcnn.json -o pd.png
    """
    if x not in ("niqe", "pi") or y not in ("psnr", "lpips"):
        raise typer.BadParameter("--x must be niqe or pi and --y psnr or lpips")
    points = plot_points_from_results(results, x_metric=x, y_metric=y)
    Console(quiet=quiet).print(f"wrote {escape(str(write_pd_plot(points, out, x_metric=x, y_metric=y)))}")


@evaluate_app.command("mos-study")
def mos_study(
    method_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="METHOD_DIR...",
            help="One folder of SR images per method (folder name = method).",
            exists=True,
            file_okay=False,
            show_default=False,
        ),
    ],  # fmt: skip
    gt: Annotated[
        Path,
        typer.Option(
            "--gt",
            help="Ground-truth folder (shown as a hidden reference).",
            exists=True,
            file_okay=False,
            show_default=False,
        ),
    ],  # fmt: skip
    db: Annotated[
        Path, typer.Option("--db", help="SQLite file holding the study and every answer.", dir_okay=False)
    ] = Path("mos_study.sqlite"),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 8765,
    ab: Annotated[bool, typer.Option("--ab", help="Also ask A/B preferences between every two methods.")] = False,
    no_gt: Annotated[bool, typer.Option("--no-gt", help="Do not rate the ground truth as a hidden reference.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the trial orders (per rater).")] = 0,
) -> None:
    """Serve a blind MOS study on 127.0.0.1: random order, no method names, ratings 1-5 (keys 1-5),
    optional A/B pairs (keys A/B); answers are stored at once, so raters can close the page and resume.

    Example: sruscale evaluate mos-study out/bicubic out/fsrcnn --gt data/Set5 --ab
    """
    from ..evaluation.mos import StudyServer, create_study

    study = create_study(db, method_dirs, gt, ab_pairs=ab, include_gt=not no_gt, seed=seed)
    server = StudyServer(study, port=port)
    console = Console()
    console.print(f"{len(study.trials)} trials per rater; answers go to {escape(str(db))}", highlight=False)
    console.print(f"open {server.url} (Ctrl-C stops the server; `sruscale evaluate mos-report {db}` summarises)")
    try:
        server.serve_forever()
    finally:
        server.stop()
        study.close()


@evaluate_app.command("mos-report")
def mos_report(
    db: Annotated[
        Path, typer.Argument(help="The study's SQLite file.", exists=True, dir_okay=False, show_default=False)
    ],
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Bar chart PNG (default: next to DB).", dir_okay=False)
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Per-method MOS with 95% confidence intervals, A/B win rates, rater consistency, bar chart."""
    from rich.table import Table

    from ..evaluation.mos import open_study, study_report, write_bar_chart

    study = open_study(db)
    try:
        rep = study_report(study)
    finally:
        study.close()
    console = Console(quiet=quiet)
    t = Table(title=f"MOS: {len(rep.raters)} rater(s), {rep.answers} answers", title_justify="left")
    for col in ("method", "ratings", "MOS ↑", "95% CI", "A/B wins"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for m in rep.methods:
        t.add_row(escape(m.method), str(m.n), f"{m.mos:.3f}", f"± {m.ci95:.3f}",
                  f"{m.ab_wins}/{m.ab_total}" if m.ab_total else "-")  # fmt: skip
    console.print(t)
    cons = (
        f"{rep.consistency:.3f} (mean Pearson r over {rep.pairs} rater pair(s))"
        if rep.pairs
        else "n/a (needs 2+ raters)"
    )
    console.print(f"rater consistency: {cons}", highlight=False)
    out = write_bar_chart(rep, chart or db.with_suffix(".png"))
    console.print(f"wrote {escape(str(out))}", highlight=False)


@evaluate_app.command("task")
def task_cmd(
    sr_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="SR_DIR...",
            help="One folder of SR images per method (paired with --gt by name).",
            exists=True,
            file_okay=False,
            show_default=False,
        ),
    ],  # fmt: skip
    task: Annotated[
        str,
        typer.Option(
            "--task",
            help="ocr (Tesseract; character accuracy), faces (OpenCV Haar cascade; detection IoU "
            "agreement), or FILE.py:FUNCTION / MODULE:FUNCTION: a classifier image -> label (top-1 "
            "agreement) or a factory returning a sruscale.evaluation.tasks.Task.",
            show_default=False,
        ),
    ],  # fmt: skip
    gt: Annotated[
        Path, typer.Option("--gt", help="Ground-truth folder.", exists=True, file_okay=False, show_default=False)
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write per-image outputs and agreement (.json).", dir_okay=False)
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a downstream task on each method's SR images and on HR; report agreement per method.

    Example: sruscale evaluate task --task ocr out/bicubic out/fsrcnn --gt data/text
    """
    import json

    from rich.table import Table

    from .._fs import write_text_atomic
    from ..evaluation.tasks import evaluate_task, resolve_task

    t = resolve_task(task)
    results = evaluate_task(t, sr_dirs, gt)
    console = Console(quiet=quiet)
    table = Table(title=f"task {escape(t.name)}: {escape(t.description)}", title_justify="left")
    for col in ("method", "images", "agreement ↑"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        table.add_row(escape(r.method), str(len(r.images)), f"{r.mean:.4f}")
    console.print(table)
    if out is not None:
        data = {"task": t.name, "description": t.description, "gt": str(gt),
                "methods": [{"method": r.method, "mean": r.mean, "images": r.images} for r in results]}  # fmt: skip
        write_text_atomic(out, json.dumps(data, indent=2, default=str))
        console.print(f"wrote {escape(str(out))}", highlight=False)
