"""``sruscale evaluate`` as library calls: :func:`plan_evaluation` checks the request, :func:`run_evaluation` runs it.

Four modes (:data:`Mode`): ``model``, the benchmark protocol on folders of HR images (one dataset each);
``pairs``, existing SR images paired by name with their ground truth; ``folder``, one folder of images
scored without ground truth (no-reference metrics); ``compare``, several output folders of the same
inputs matched by name and ranked side by side (no-reference metrics, or any with ``gt``). PI (from
NIQE and user-supplied Ma et al. scores) and the perception-distortion plot come from
:mod:`sruscale.evaluation.perception`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError, ImageError
from ..image import DEFAULT_MAX_PIXELS
from ..models import SRModel
from ..weights import load_model, model_scale
from .pairing import DEFAULT_STRIP, Pair, match_folders, pair_files
from .perception import MaScorer, add_pi, pd_axes, write_pd_plot
from .protocol import (
    BENCHMARK_DEGRADATION,
    DEFAULT_METRICS,
    METRICS,
    DatasetResult,
    Protocol,
    count_images,
    evaluate_files,
    evaluate_model,
    evaluate_pairs,
)
from .report import (
    EvaluationResult,
    check_results_path,
    extremes,
    grid_rows_model,
    grid_rows_pairs,
    rank_datasets,
    write_grid,
)

__all__ = [
    "DEFAULT_NO_REFERENCE_METRICS",
    "EvaluationPlan",
    "EvaluationRun",
    "Mode",
    "default_metrics",
    "plan_evaluation",
    "run_evaluation",
]

#: ``model``: a model through the benchmark protocol; ``pairs``: SR_DIR against GT_DIR; ``folder``: one
#: folder without ground truth; ``compare``: several output folders ranked (with or without ground truth)
Mode = Literal["model", "pairs", "folder", "compare"]
#: the metrics when none are given and there is no ground truth
DEFAULT_NO_REFERENCE_METRICS: tuple[str, ...] = ("niqe", "piqe")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EvaluationPlan:
    """A checked ``evaluate`` request (from :func:`plan_evaluation`).

    ``ma_scores`` / ``ma_scorer``: the Ma et al. source of PI (exactly one when ``pi`` is a metric).
    ``gt``: ground truth of the ``compare`` folders; ``lr``: the LR inputs shown in the ``pairs`` grid.
    """

    protocol: Protocol
    folders: tuple[Path, ...]
    mode: Mode
    model: SRModel | None = None
    label: str = ""
    weights: Path | None = None
    gt: Path | None = None
    lr: Path | None = None
    strip: tuple[str, ...] = DEFAULT_STRIP
    modcrop: bool = False
    out: Path | None = None
    grid: Path | None = None
    plot: Path | None = None
    tile: int | None = None
    device: str = "cpu"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    ma_scores: Mapping[str, float] | None = None
    ma_scorer: MaScorer | None = None

    def __post_init__(self) -> None:
        if (self.model is not None) != (self.mode == "model"):
            raise ConfigError(f"mode {self.mode!r} with{'' if self.model is not None else 'out'} a model")

    @property
    def row(self) -> str:
        """What a table row is: a ``dataset`` of ground truth, or an SR ``folder``."""
        return "folder" if self.mode in ("folder", "compare") else "dataset"

    @property
    def title(self) -> str:
        if self.model is not None:
            return f"{self.label} x{self.model.scale}"
        if self.mode == "pairs":
            return f"{self.folders[0]} vs {self.folders[1]}"
        if self.mode == "folder":
            return f"{self.folders[0]} (no ground truth)"
        against = f"against {self.gt}" if self.gt is not None else "no ground truth"
        return f"ranked by {self.protocol.metrics[0]}, {against}"

    def count(self) -> int:
        """Images to score (model mode) or ``0`` when only known after pairing."""
        return count_images(self.folders) if self.model is not None else 0


@dataclass
class EvaluationRun:
    """What :func:`run_evaluation` produced: the result record and the files it wrote."""

    result: EvaluationResult
    written: list[Path] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [w for d in self.result.datasets for w in d.warnings]

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [f for d in self.result.datasets for f in d.failures]

    def raise_failures(self) -> None:
        """Raise one error naming every image that could not be scored (nothing when all were).

        Raises:
            ImageError: some images failed.
        """
        fails = self.failures
        if fails:
            total = sum(len(d.images) for d in self.result.datasets) + len(fails)
            detail = "; ".join(f"{f}: {why}" for f, why in fails[:5]) + ("; ..." if len(fails) > 5 else "")
            raise ImageError(f"{len(fails)} of {total} images could not be scored: {detail}")


def _mode(paths: Sequence[Path], *, model_mode: bool, compare: bool) -> Mode:
    """The mode of a request from its folders and flags.

    Raises:
        ConfigError: ``compare`` with a model or fewer than two folders; without either, not one or two folders.
    """
    if model_mode:
        if compare:
            raise ConfigError("--compare ranks folders of existing SR images; it runs no --model/--weights")
        return "model"
    if compare:
        if len(paths) < 2:
            raise ConfigError(f"--compare ranks two or more folders side by side, got {len(paths)}")
        return "compare"
    if len(paths) in (1, 2):
        return "folder" if len(paths) == 1 else "pairs"
    raise ConfigError(
        f"without --model give SR_DIR GT_DIR, or one folder to score without ground truth (got {len(paths)} "
        "folders); to rank output folders side by side add --compare, to run the benchmark protocol on "
        "ground-truth folders add --model NAME --scale S"
    )


def _has_reference(mode: Mode, gt: object) -> bool:
    """Whether a mode scores against ground truth (full-reference metrics allowed): the one rule."""
    return mode in ("model", "pairs") or gt is not None


def default_metrics(
    folders: Sequence[str | os.PathLike[str]],
    *,
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    compare: bool = False,
    gt: str | os.PathLike[str] | None = None,
) -> tuple[str, ...]:
    """The metrics of a request that names none: :data:`~sruscale.evaluation.DEFAULT_METRICS` with ground
    truth, :data:`DEFAULT_NO_REFERENCE_METRICS` without (one folder; ``compare`` without ``gt``).

    Raises:
        ConfigError: folders and flags that make no mode (see :func:`plan_evaluation`).
    """
    mode = _mode([Path(f) for f in folders], model_mode=model is not None or weights is not None, compare=compare)
    return DEFAULT_METRICS if _has_reference(mode, gt) else DEFAULT_NO_REFERENCE_METRICS


def _check_mode_options(
    mode: Mode,
    *,
    gt: object,
    lr: object,
    grid: object,
    denoise: object,
    strip: object,
    modcrop: bool,
    ma_scores: object,
) -> None:
    """Options that belong to other modes.

    Raises:
        ConfigError: the first such option, with the mode it belongs to.
    """
    reference = _has_reference(mode, gt)
    rules = [
        (mode == "model" and bool(strip or modcrop),
         "--strip and --modcrop apply to files paired by name (without --model)"),
        (gt is not None and mode != "compare",
         "--gt is the ground truth of --compare folders (pairing mode takes GT_DIR as its second folder)"),
        (modcrop and not reference, "--modcrop crops ground truth, and there is none here"),
        (grid is not None and mode not in ("model", "pairs"),
         "--grid draws one SR folder against its ground truth: give SR_DIR GT_DIR, or --model"),
        (lr is not None and (mode != "pairs" or grid is None),
         "--lr is for the --grid of SR_DIR GT_DIR: the LR images the SR images were made from"),
        (denoise is not None and mode != "model", "--denoise is passed to --model (realworld): give --model"),
        (ma_scores is not None and mode == "compare",
         "--ma-scores are keyed by image name, which every --compare folder shares: use --ma-scorer"),
    ]  # fmt: skip
    for bad, why in rules:
        if bad:
            raise ConfigError(why)


def _check_no_reference(proto: Protocol, mode: Mode, plot: object) -> None:
    """Without ground truth: only metrics that need none, and no perception-distortion plot.

    Raises:
        ConfigError: a full-reference metric (named, with why) or ``plot``.
    """
    where = "one folder" if mode == "folder" else "--compare without --gt"
    give = "SR_DIR GT_DIR" if mode == "folder" else "--gt DIR"
    if proto.reference_metrics:
        free = ", ".join(m for m, info in METRICS.items() if info.kind != "full-reference")
        raise ConfigError(
            f"{', '.join(proto.reference_metrics)} compare with ground truth, which {where} does not have: "
            f"choose from the no-reference metrics {free} (e.g. --metrics niqe,piqe), or give {give}"
        )
    if plot is not None:
        raise ConfigError(f"--plot puts distortion (psnr, lpips) against perception, needing ground truth: give {give}")


def plan_evaluation(
    folders: Sequence[str | os.PathLike[str]],
    *,
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    scale: int | None = None,
    metrics: Sequence[str] | None = None,
    protocol: str = "paper",
    crop_border: int | None = None,
    compare: bool = False,
    gt: str | os.PathLike[str] | None = None,
    lr: str | os.PathLike[str] | None = None,
    denoise: float | None = None,
    strip: Sequence[str] | None = None,
    modcrop: bool = False,
    out: str | os.PathLike[str] | None = None,
    grid: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    tile: int | None = None,
    device: str = "cpu",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    ma_scores: Mapping[str, float] | None = None,
    ma_scorer: MaScorer | None = None,
) -> EvaluationPlan:
    """Check an ``evaluate`` request and load its model; nothing is scored yet.

    The mode (:data:`Mode`) follows from the arguments: ``model``/``weights`` -> ``model``; ``compare``
    -> ``compare`` (two or more folders, ``gt`` optional); otherwise one folder -> ``folder``, two ->
    ``pairs`` (SR then ground truth). Without ground truth only no-reference metrics are allowed, the
    default metrics are :data:`DEFAULT_NO_REFERENCE_METRICS` and, without a scale, no border is cropped.

    Args:
        metrics: default: :func:`default_metrics`.
        compare: rank ``folders`` (outputs of the same inputs, matched by name) side by side.
        gt: ground truth of the ``compare`` folders (full-reference metrics then allowed).
        lr: pairs mode with ``grid``: the LR inputs, whose bicubic upscale is the grid's first panel.
        denoise: passed to the model (``realworld``), as ``upscale --denoise``.
        plot: perception-distortion PNG (x = pi or niqe, y = psnr or lpips; one point per dataset).
        options: per-metric keyword options (:attr:`Protocol.options`: model files).
        ma_scores: PI: Ma et al. score per image name (:func:`sruscale.evaluation.perception.load_ma_scores`).
        ma_scorer: PI: a Ma et al. scorer run on each SR file (not model mode).

    Raises:
        ConfigError: wrong folder count for the mode, an option of another mode, a metric that needs
            ground truth where there is none, unknown metric or protocol, no scale for the paper protocol
            with ground truth, an ``out`` suffix other than ``.csv``/``.json``, PI without exactly one Ma
            source (or a Ma source without PI), a plot without its axes, ``denoise`` for a model without one.
        UnknownModelError, CheckpointError: the model cannot be resolved or loaded.
    """
    paths = tuple(Path(f) for f in folders)
    mode = _mode(paths, model_mode=model is not None or weights is not None, compare=compare)
    _check_mode_options(
        mode, gt=gt, lr=lr, grid=grid, denoise=denoise, strip=strip, modcrop=modcrop, ma_scores=ma_scores
    )
    reference = _has_reference(mode, gt)
    metrics = metrics or default_metrics(paths, model=model, weights=weights, compare=compare, gt=gt)
    out_path = check_results_path(out) if out is not None else None
    if mode == "model":
        scale = model_scale(model, scale=scale, weights=weights)
    if not reference and scale is None and crop_border is None:
        crop_border = 0  # real photos: no scale, no border to shave
    proto = Protocol.make(protocol, scale=scale, crop_border=crop_border, metrics=metrics, options=options)
    if not reference:
        _check_no_reference(proto, mode, plot)
    if "pi" in proto.metrics and (ma_scores is None) == (ma_scorer is None):
        raise ConfigError(
            "pi needs Ma et al. scores, which sruscale cannot compute (no trained model ships): "
            "give exactly one of --ma-scores FILE.csv or --ma-scorer MODULE:FUNCTION"
        )
    if "pi" not in proto.metrics and (ma_scores is not None or ma_scorer is not None):
        raise ConfigError("--ma-scores/--ma-scorer are for the pi metric: add pi (and niqe) to --metrics")
    if plot is not None:
        pd_axes(proto.metrics)
    net = None
    if mode == "model":
        net = load_model(model, scale=scale, weights=str(weights) if weights else None, device=device, denoise=denoise)
    label = model or (Path(weights).name if weights else "")
    label += f" denoise {denoise:g}" if denoise is not None else ""
    return EvaluationPlan(
        protocol=proto, folders=paths, mode=mode, model=net, label=label, weights=Path(weights) if weights else None,
        gt=Path(gt) if gt is not None else None, lr=Path(lr) if lr is not None else None,
        strip=tuple(strip) if strip else DEFAULT_STRIP, modcrop=modcrop, out=out_path,
        grid=Path(grid) if grid is not None else None, plot=Path(plot) if plot is not None else None, tile=tile,
        device=device, max_pixels=max_pixels, ma_scores=ma_scores, ma_scorer=ma_scorer,
    )  # fmt: skip


def _row_names(folders: Sequence[Path]) -> list[str]:
    """Row names of compared folders: their names, or their paths when two names are the same."""
    names = [f.name or str(f) for f in folders]
    return names if len(set(names)) == len(names) else [str(f) for f in folders]


def _score_model(plan: EvaluationPlan, on_total: Callable[[int], None], on_image: Progress | None) -> EvaluationResult:
    assert plan.model is not None  # mode "model" (plan_evaluation)
    on_total(plan.count())
    datasets = evaluate_model(
        plan.model, plan.folders, plan.protocol, tile=plan.tile, device=plan.device, max_pixels=plan.max_pixels,
        progress=on_image, keep_going=True,
    )  # fmt: skip
    sources = {"datasets": ", ".join(map(str, plan.folders)), "degradation": BENCHMARK_DEGRADATION}
    if plan.weights is not None:
        sources["weights"] = str(plan.weights)
    return EvaluationResult(plan.protocol, datasets, model=plan.label, sources=sources)


def _score_pairs(plan: EvaluationPlan, on_total: Callable[[int], None], on_image: Progress | None) -> EvaluationResult:
    sr_dir, gt_dir = plan.folders
    pairs = pair_files(sr_dir, gt_dir, strip=plan.strip)
    on_total(len(pairs))
    d = evaluate_pairs(
        pairs, plan.protocol, dataset=gt_dir.name, modcrop_gt=plan.modcrop, max_pixels=plan.max_pixels,
        progress=on_image, keep_going=True,
    )  # fmt: skip
    return EvaluationResult(plan.protocol, [d], sources={"sr_dir": str(sr_dir), "gt_dir": str(gt_dir)})


def _score_folders(
    plan: EvaluationPlan, on_total: Callable[[int], None], on_image: Progress | None
) -> EvaluationResult:
    """``folder`` and ``compare`` modes: every folder's images matched by name (and with ``plan.gt``)."""
    matched = match_folders([*plan.folders, *([plan.gt] if plan.gt is not None else [])], strip=plan.strip)
    on_total(len(matched[0]) * len(plan.folders))
    datasets = []
    for name, files in zip(_row_names(plan.folders), matched, strict=False):
        if plan.gt is None:
            d = evaluate_files(
                files, plan.protocol, dataset=name, max_pixels=plan.max_pixels, progress=on_image, keep_going=True
            )
        else:
            pairs = [Pair(name=k, sr=f, gt=matched[-1][k]) for k, f in files.items()]
            d = evaluate_pairs(
                pairs, plan.protocol, dataset=name, modcrop_gt=plan.modcrop, max_pixels=plan.max_pixels,
                progress=on_image, keep_going=True,
            )  # fmt: skip
        datasets.append(d)
    sources = {"sr_dirs" if plan.mode == "compare" else "sr_dir": ", ".join(map(str, plan.folders))}
    if plan.gt is not None:
        sources["gt_dir"] = str(plan.gt)
    return EvaluationResult(plan.protocol, datasets, sources=sources)


def _plot_label(plan: EvaluationPlan, d: DatasetResult, n: int) -> str:
    if plan.mode == "compare":
        return d.name
    label = plan.label or plan.folders[0].name
    return label if n == 1 else f"{label} / {d.name}"


def _write_grid(plan: EvaluationPlan, datasets: Sequence[DatasetResult], lr: Mapping[str, Path] | None) -> Path:
    assert plan.grid is not None  # called only with a grid
    proto = plan.protocol
    picks = extremes(datasets, "psnr" if "psnr" in proto.metrics else proto.metrics[0])
    if plan.model is not None:
        rows = grid_rows_model(
            plan.model, picks, proto, model_name=plan.label, tile=plan.tile, device=plan.device,
            max_pixels=plan.max_pixels,
        )  # fmt: skip
    else:
        rows = grid_rows_pairs(picks, proto, modcrop_gt=plan.modcrop, max_pixels=plan.max_pixels, lr=lr)
    return write_grid(rows, plan.grid)


def run_evaluation(
    plan: EvaluationPlan,
    *,
    on_total: Callable[[int], None] | None = None,
    on_image: Progress | None = None,
) -> EvaluationRun:
    """Score, fill in PI (when asked), rank compared folders (best first by the first metric), then
    write ``plan.out``, ``plan.plot`` and ``plan.grid``. Images that fail are collected, not raised
    (see :meth:`EvaluationRun.raise_failures`).

    Args:
        on_total: called once with the number of images to score (for a progress bar).
        on_image: called with each image name once it is done.

    Raises:
        ImageError: a folder without images; files that do not pair up (or, with ``plan.lr``, LR files
            that do not match the ground truth: checked before scoring).
        ConfigError: PI: an image without a Ma score.
    """
    proto = plan.protocol
    lr = match_folders([plan.folders[1], plan.lr], strip=plan.strip)[1] if plan.lr is not None else None
    score = {"model": _score_model, "pairs": _score_pairs}.get(plan.mode, _score_folders)
    result = score(plan, on_total or (lambda n: None), on_image)
    datasets = result.datasets
    if "pi" in proto.metrics:
        add_pi(datasets, ma_scores=plan.ma_scores, scorer=plan.ma_scorer, max_pixels=plan.max_pixels)
    if plan.mode == "compare":
        datasets[:] = rank_datasets(datasets, proto.metrics[0])
    run = EvaluationRun(result)
    if plan.out is not None:
        run.written.append(result.write(plan.out))
    if plan.plot is not None:
        x, y = pd_axes(proto.metrics)
        points = [(_plot_label(plan, d, len(datasets)), d.mean(x), d.mean(y)) for d in datasets]
        run.written.append(write_pd_plot(points, plan.plot, x_metric=x, y_metric=y))
    if plan.grid is not None:
        run.written.append(_write_grid(plan, datasets, lr))
    return run
