"""``sruscale evaluate`` as library calls: :func:`plan_evaluation` checks the request, :func:`run_evaluation` runs it.

Two modes: with a model, the benchmark protocol on folders of HR images (one dataset each);
without, existing SR images paired by name with their ground truth. PI (from NIQE and
user-supplied Ma et al. scores) and the perception-distortion plot come from :mod:`sruscale.evaluation.perception`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ImageError
from ..image import DEFAULT_MAX_PIXELS
from ..models import SRModel
from ..weights import load_model, model_scale
from .pairing import DEFAULT_STRIP, pair_files
from .perception import MaScorer, add_pi, pd_axes, write_pd_plot
from .protocol import (
    BENCHMARK_DEGRADATION,
    DEFAULT_METRICS,
    DatasetResult,
    Protocol,
    count_images,
    evaluate_model,
    evaluate_pairs,
)
from .report import EvaluationResult, check_results_path, extremes, grid_rows_model, grid_rows_pairs, write_grid

__all__ = ["EvaluationPlan", "EvaluationRun", "plan_evaluation", "run_evaluation"]


@dataclass(frozen=True)
class EvaluationPlan:
    """A checked ``evaluate`` request (from :func:`plan_evaluation`).

    ``ma_scores`` / ``ma_scorer``: the Ma et al. source of PI (exactly one when ``pi`` is a metric).
    """

    protocol: Protocol
    folders: tuple[Path, ...]
    model: SRModel | None = None
    label: str = ""
    weights: Path | None = None
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

    @property
    def title(self) -> str:
        if self.model is not None:
            return f"{self.label} x{self.model.scale}"
        return f"{self.folders[0]} vs {self.folders[1]}"

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


def plan_evaluation(
    folders: Sequence[str | os.PathLike[str]],
    *,
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    scale: int | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    protocol: str = "paper",
    crop_border: int | None = None,
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

    Args:
        plot: perception-distortion PNG (x = pi or niqe, y = psnr or lpips; one point per dataset).
        options: per-metric keyword options (:attr:`Protocol.options`: model files).
        ma_scores: PI: Ma et al. score per image name (:func:`sruscale.evaluation.perception.load_ma_scores`).
        ma_scorer: PI: a Ma et al. scorer run on each SR file (pairing mode).

    Raises:
        ConfigError: wrong folder count for the mode, pairing options with a model, unknown metric or
            protocol, no scale for the paper protocol, an ``out`` suffix other than ``.csv``/``.json``,
            PI without exactly one Ma source (or a Ma source without PI), a plot without its axes.
        UnknownModelError, CheckpointError: the model cannot be resolved or loaded.
    """
    paths = tuple(Path(f) for f in folders)
    model_mode = model is not None or weights is not None
    if not model_mode and len(paths) != 2:
        raise ConfigError(
            f"without --model give exactly two folders, SR_DIR then GT_DIR (got {len(paths)}); "
            "to run the benchmark protocol on ground-truth folders, add --model NAME --scale S"
        )
    if model_mode and (strip or modcrop):
        raise ConfigError("--strip and --modcrop apply to pairing mode (without --model)")
    out_path = check_results_path(out) if out is not None else None
    net = None
    if model_mode:
        scale = model_scale(model, scale=scale, weights=weights)
    proto = Protocol.make(protocol, scale=scale, crop_border=crop_border, metrics=metrics, options=options)
    if "pi" in proto.metrics and (ma_scores is None) == (ma_scorer is None):
        raise ConfigError(
            "pi needs Ma et al. scores, which sruscale cannot compute (no trained model ships): "
            "give exactly one of --ma-scores FILE.csv or --ma-scorer MODULE:FUNCTION"
        )
    if "pi" not in proto.metrics and (ma_scores is not None or ma_scorer is not None):
        raise ConfigError("--ma-scores/--ma-scorer are for the pi metric: add pi (and niqe) to --metrics")
    if plot is not None:
        pd_axes(proto.metrics)
    if model_mode:
        net = load_model(model, scale=scale, weights=str(weights) if weights else None, device=device)
    label = model or (Path(weights).name if weights else "")
    return EvaluationPlan(
        protocol=proto, folders=paths, model=net, label=label, weights=Path(weights) if weights else None,
        strip=tuple(strip) if strip else DEFAULT_STRIP, modcrop=modcrop, out=out_path,
        grid=Path(grid) if grid is not None else None, plot=Path(plot) if plot is not None else None, tile=tile,
        device=device, max_pixels=max_pixels, ma_scores=ma_scores, ma_scorer=ma_scorer,
    )  # fmt: skip


def run_evaluation(
    plan: EvaluationPlan,
    *,
    on_total: Callable[[int], None] | None = None,
    on_image: Callable[[str], None] | None = None,
) -> EvaluationRun:
    """Score, fill in PI (when asked), then write ``plan.out``, ``plan.plot`` and ``plan.grid``. Images
    that fail are collected, not raised (see :meth:`EvaluationRun.raise_failures`).

    Args:
        on_total: called once with the number of images to score (for a progress bar).
        on_image: called with each image name once it is done.

    Raises:
        ImageError: a folder without images; files that do not pair up.
        ConfigError: PI: an image without a Ma score.
    """
    proto = plan.protocol
    datasets: list[DatasetResult]
    if plan.model is not None:
        if on_total is not None:
            on_total(plan.count())
        datasets = evaluate_model(
            plan.model, plan.folders, proto, tile=plan.tile, device=plan.device, max_pixels=plan.max_pixels,
            progress=on_image, keep_going=True,
        )  # fmt: skip
        sources = {"datasets": ", ".join(map(str, plan.folders)), "degradation": BENCHMARK_DEGRADATION}
        if plan.weights is not None:
            sources["weights"] = str(plan.weights)
        result = EvaluationResult(proto, datasets, model=plan.label, sources=sources)
    else:
        sr_dir, gt_dir = plan.folders
        pairs = pair_files(sr_dir, gt_dir, strip=plan.strip)
        if on_total is not None:
            on_total(len(pairs))
        datasets = [
            evaluate_pairs(
                pairs, proto, dataset=gt_dir.name, modcrop_gt=plan.modcrop, max_pixels=plan.max_pixels,
                progress=on_image, keep_going=True,
            )  # fmt: skip
        ]
        result = EvaluationResult(proto, datasets, sources={"sr_dir": str(sr_dir), "gt_dir": str(gt_dir)})
    if "pi" in proto.metrics:
        add_pi(datasets, ma_scores=plan.ma_scores, scorer=plan.ma_scorer, max_pixels=plan.max_pixels)
    run = EvaluationRun(result)
    if plan.out is not None:
        run.written.append(result.write(plan.out))
    if plan.plot is not None:
        x, y = pd_axes(proto.metrics)
        label = plan.label or plan.folders[0].name
        points = [(label if len(datasets) == 1 else f"{label} / {d.name}", d.mean(x), d.mean(y)) for d in datasets]
        run.written.append(write_pd_plot(points, plan.plot, x_metric=x, y_metric=y))
    if plan.grid is not None:
        key = "psnr" if "psnr" in proto.metrics else proto.metrics[0]
        picks = extremes(datasets, key)
        if plan.model is not None:
            rows = grid_rows_model(
                plan.model, picks, proto, model_name=plan.label, tile=plan.tile, device=plan.device,
                max_pixels=plan.max_pixels,
            )  # fmt: skip
        else:
            rows = grid_rows_pairs(picks, proto, modcrop_gt=plan.modcrop, max_pixels=plan.max_pixels)
        run.written.append(write_grid(rows, plan.grid))
    return run
