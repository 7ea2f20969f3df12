"""The SR benchmark protocol: the one place where a benchmark PSNR/SSIM is computed.

``evaluate``, training validation, ``train/bundle.py`` and ``benchmarks/`` all call this module.
Per HR image:

1. **modcrop** to a multiple of the scale (top-left kept), values rounded to the image's bit depth;
2. **LR** = MATLAB ``imresize(HR, 1/scale, 'bicubic')`` (antialiased), rounded to the bit depth
   (or a given LR file of exactly ``HR / scale`` pixels);
3. **SR** = the model run on the LR image exactly as ``upscale`` runs it: RGB in, a Y network sees
   the Y plane and Cb/Cr are upscaled with MATLAB bicubic (:class:`~sruscale.models.SRModel`),
   fp32, tiled by :func:`~sruscale.tiling.upscale_tensor`; output clamped to ``[0, 1]`` and rounded
   to the bit depth;
4. **score** (:func:`score_pair`): paper protocol = Y of MATLAB ``rgb2ycbcr`` (integer Y for 8-bit
   images), ``crop_border`` (default = scale) pixels shaved off every side, SSIM over valid
   windows; ``rgb`` = every channel, same crop. Gray images are scored on their one channel.

Dataset values are means of the per-image values. With this protocol, bicubic on Set5 gives
33.65 / 30.39 / 28.42 dB (x2 / x3 / x4), within 0.02 dB of the published tables.

Metrics come from one table, :data:`METRICS` (name -> :class:`Metric`); see its docstring to add one.
The no-reference metrics (NIQE, PIQE, BRISQUE), LPIPS and the derived PI are rows of it too; their
model files travel as per-metric options of the :class:`Protocol`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..color import rgb_to_y
from ..errors import ConfigError, ImageError, out_of_memory_fails_file
from ..image import DEFAULT_MAX_PIXELS, ImageData, image_size, list_images, read_image
from ..metrics import brisque, ifc, lpips, ms_ssim, mssim, niqe, piqe, psnr, ssim, vif, vifp
from ..metrics._common import Reduction
from ..metrics.lpips import Net
from ..models import SRModel
from ..resize import imresize
from .pairing import MAX_MODCROP, Pair

__all__ = [
    "BENCHMARK_DEGRADATION",
    "DEFAULT_METRICS",
    "METRICS",
    "BenchmarkImage",
    "DatasetResult",
    "ImageResult",
    "Metric",
    "Protocol",
    "benchmark_lr",
    "count_images",
    "describe_metrics",
    "evaluate_files",
    "evaluate_images",
    "evaluate_model",
    "evaluate_pairs",
    "modcrop",
    "prepare_image",
    "quantize",
    "run_benchmark_image",
    "run_model",
    "score_image",
    "score_pair",
]

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    """One row of :data:`METRICS`.

    Attributes:
        fn: ``fn(x, y, *, data_range, crop_border, reduction="none", **options) -> (B,)`` for
            full-reference metrics (``y`` = ground truth); ``fn(x, *, data_range, crop_border,
            reduction="none", **options)`` when ``needs_reference`` is false. ``x`` / ``y``:
            ``(B, C, H, W)`` float64 in ``[0, 1]``, already reduced to Y under the paper protocol
            (unless ``rgb``). ``None`` for a derived metric, filled in after scoring from the
            metrics in ``requires`` (PI: :func:`sruscale.evaluation.perception.add_pi`).
        higher_is_better: direction (tables, the ↑/↓ marks, ``lower_is_better`` in JSON/CSV and
            "best" picks use it).
        needs_reference: whether the metric compares with ground truth.
        label: column title.
        digits: decimals printed in tables.
        rgb: the metric converts colour itself, so it gets the RGB images under every protocol.
        options: keyword options ``fn`` accepts from :attr:`Protocol.options` (model files).
        requires: metrics that must be listed with this one (a derived metric's inputs).
        needs: the files it needs, for ``--help`` (empty: none).
    """

    fn: Callable[..., torch.Tensor] | None
    higher_is_better: bool = True
    needs_reference: bool = True
    label: str = ""
    digits: int = 4
    rgb: bool = False
    options: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    needs: str = ""

    @property
    def kind(self) -> Literal["full-reference", "no-reference", "derived"]:
        if self.fn is None:
            return "derived"
        return "full-reference" if self.needs_reference else "no-reference"

    @property
    def arrow(self) -> str:
        """``↑`` when higher is better, ``↓`` when lower is."""
        return "↑" if self.higher_is_better else "↓"


def _lpips(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    reduction: Reduction = "none",
    net: Net = "alex",
    backbone_weights: str | os.PathLike[str] | None = None,
    heads: str | os.PathLike[str] | None = None,
) -> torch.Tensor:
    """:func:`~sruscale.metrics.lpips` with the protocol's crop and range: ``(B, 3, H, W)`` -> ``(B,)`` float64."""
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    a, b = (x / data_range).float(), (y / data_range).float()
    return lpips(a, b, net=net, backbone_weights=backbone_weights, heads=heads, reduction=reduction).double()


#: Every metric ``evaluate`` (``--metrics``), validation and bundling can report. To add one: write
#: the function (in :mod:`sruscale.metrics` or beside it) with the signature of :attr:`Metric.fn`
#: and add a row here; the CLI choices, ``--help``, tables, CSV/JSON columns and the protocol record follow.
METRICS: dict[str, Metric] = {
    "psnr": Metric(psnr, label="PSNR (dB)", digits=2),
    "ssim": Metric(ssim, label="SSIM"),
    "mssim": Metric(mssim, label="MSSIM"),
    "ms-ssim": Metric(ms_ssim, label="MS-SSIM"),
    "vif": Metric(vif, label="VIF"),
    "vifp": Metric(vifp, label="VIFP"),
    "ifc": Metric(ifc, label="IFC"),
    "lpips": Metric(
        _lpips, higher_is_better=False, label="LPIPS", rgb=True, options=("net", "backbone_weights", "heads"),
        needs="ImageNet AlexNet/VGG16 weights (torch hub cache or --lpips-backbone) + lpips heads "
        "(lpips package or --lpips-heads)",
    ),
    "niqe": Metric(
        niqe, higher_is_better=False, needs_reference=False, label="NIQE", digits=3, options=("model",),
        needs="bundled weights/niqe_291.npz, or --niqe-model .mat/.npz",
    ),
    "piqe": Metric(piqe, higher_is_better=False, needs_reference=False, label="PIQE", digits=2, rgb=True),
    "brisque": Metric(
        brisque, higher_is_better=False, needs_reference=False, label="BRISQUE", digits=2, rgb=True,
        options=("model",), needs="--brisque-model + --brisque-range (libsvm SVR)",
    ),
    "pi": Metric(
        None, higher_is_better=False, needs_reference=False, label="PI", digits=3, requires=("niqe",),
        needs="NIQE + Ma et al. scores: --ma-scores CSV or --ma-scorer MODULE:FN (no Ma model ships)",
    ),
}  # fmt: skip
DEFAULT_METRICS: tuple[str, ...] = ("psnr", "ssim")


def describe_metrics() -> str:
    """One entry per metric of :data:`METRICS` for ``--help``: name, direction, kind, needed files."""
    parts = []
    for name, m in METRICS.items():
        needs = f"; needs {m.needs}" if m.needs else ""
        parts.append(f"{name} {m.arrow} ({m.kind}{needs})")
    return "; ".join(parts)


#: how :func:`evaluate_model` makes its inputs (recorded with the results)
BENCHMARK_DEGRADATION = (
    "HR modcropped to the scale; LR = MATLAB imresize(HR, 1/scale, 'bicubic') rounded to the bit depth; "
    "SR = the model as `upscale` runs it (fp32), clamped to [0, 1] and rounded likewise"
)


@dataclass(frozen=True)
class Protocol:
    """How images are scored; recorded with every result.

    Attributes:
        name: ``"paper"`` (Y channel) or ``"rgb"`` (all channels).
        crop_border: pixels shaved off every side before scoring.
        metrics: metric names, keys of :data:`METRICS`.
        scale: the SR factor, when known (model mode; optional when pairing files).
        options: per-metric keyword options, names from :attr:`Metric.options`
            (model files: ``{"niqe": {"model": "m.mat"}}``).
    """

    name: str = "paper"
    crop_border: int = 0
    metrics: tuple[str, ...] = DEFAULT_METRICS
    scale: int | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.name not in ("paper", "rgb"):
            raise ConfigError(f"protocol must be 'paper' or 'rgb', got {self.name!r}")
        if self.crop_border < 0:
            raise ConfigError(f"crop_border must be >= 0, got {self.crop_border}")
        if not self.metrics:
            raise ConfigError("give at least one metric")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
        for m in self.metrics:
            missing = ", ".join(r for r in METRICS[m].requires if r not in self.metrics)
            if missing:
                raise ConfigError(f"{m} is computed from {missing}: list {missing} in the metrics too")
        if len(set(self.metrics)) != len(self.metrics):
            raise ConfigError(f"metrics listed twice: {', '.join(self.metrics)}")
        for m, opts in self.options.items():
            if m not in METRICS:
                raise ConfigError(f"options for unknown metric {m!r}; choose from {', '.join(METRICS)}")
            bad = [k for k in opts if k not in METRICS[m].options]
            if bad:
                allowed = ", ".join(METRICS[m].options) or "none"
                raise ConfigError(f"{m} takes the options {allowed}; got {', '.join(bad)}")

    @classmethod
    def make(
        cls,
        name: str = "paper",
        *,
        scale: int | None = None,
        crop_border: int | None = None,
        metrics: Sequence[str] = DEFAULT_METRICS,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Protocol:
        """Fill the default crop (``scale``); the crop must be explicit when the scale is unknown.

        Raises:
            ConfigError: unknown protocol or metric, or neither ``scale`` nor ``crop_border`` given.
        """
        if crop_border is None:
            if scale is None:
                raise ConfigError(f"the {name} protocol shaves `scale` pixels: give the scale or the crop border")
            crop_border = scale
        return cls(name=name, crop_border=crop_border, metrics=tuple(metrics), scale=scale, options=options or {})

    @property
    def y_channel(self) -> bool:
        return self.name == "paper"

    @property
    def reference_metrics(self) -> tuple[str, ...]:
        """The metrics of this protocol that compare with ground truth (full-reference ones)."""
        return tuple(m for m in self.metrics if METRICS[m].kind == "full-reference")

    def describe(self) -> str:
        """One line for table captions."""
        channel = "Y (BT.601, MATLAB rgb2ycbcr)" if self.y_channel else "RGB"
        return f"{channel}, crop {self.crop_border}" + (f", x{self.scale}" if self.scale else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.name,
            "y_channel": self.y_channel,
            "y_rounding": "integer Y for 8-bit images" if self.y_channel else None,
            "crop_border": self.crop_border,
            "scale": self.scale,
            "metrics": list(self.metrics),
            "lower_is_better": {m: not METRICS[m].higher_is_better for m in self.metrics},
            "ssim": "Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, valid windows",
            "dataset_value": "mean of per-image values",
        }


# ---------------------------------------------------------------------------------------------- results


@dataclass
class ImageResult:
    """Scores of one image: ``values[metric] -> float``."""

    dataset: str
    image: str
    values: dict[str, float]
    sr_path: Path | None = None
    gt_path: Path | None = None


@dataclass
class DatasetResult:
    """Per-image scores of one dataset (folder), plus the images that could not be scored.

    Attributes:
        failures: ``(file, reason)`` for images skipped with ``keep_going``.
        warnings: one line each (naming the file) about images scored in a questionable way.
    """

    name: str
    images: list[ImageResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        """Mean of the per-image values (``inf`` if any PSNR is ``inf``; ``nan`` if empty)."""
        vals = [r.values[metric] for r in self.images]
        return float(np.mean(vals)) if vals else math.nan

    def means(self) -> dict[str, float]:
        """``metric -> mean`` over the metrics of the first image (empty when no image was scored)."""
        return {m: self.mean(m) for m in (self.images[0].values if self.images else {})}


# ---------------------------------------------------------------------------------------------- inputs


def _levels(bit_depth: int) -> float:
    return 255.0 if bit_depth == 8 else 65535.0


def quantize(x: torch.Tensor, bit_depth: int = 8) -> torch.Tensor:
    """Clamp to ``[0, 1]`` and round to the integer levels of ``bit_depth`` (as MATLAB's uint8/uint16), float64."""
    q = _levels(bit_depth)
    return (x.double().clamp(0, 1) * q).round() / q


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop ``(..., H, W)`` to multiples of ``scale`` (top-left kept), as MATLAB ``modcrop``."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def benchmark_lr(hr: torch.Tensor, scale: int, *, bit_depth: int = 8) -> torch.Tensor:
    """The "BI" benchmark input: MATLAB ``imresize(hr, 1/scale)`` (bicubic, antialiased), rounded.

    Args:
        hr: ``(B, C, H, W)`` in ``[0, 1]`` with ``H`` and ``W`` multiples of ``scale`` (see :func:`modcrop`).

    Returns:
        ``(B, C, H/scale, W/scale)`` float64, rounded to the levels of ``bit_depth``.
    """
    return quantize(imresize(hr.double(), 1 / scale), bit_depth)


@dataclass(frozen=True)
class BenchmarkImage:
    """One prepared benchmark input: ``hr`` ``(1, C, H, W)`` and ``lr`` ``(1, C, H/s, W/s)``, float64 rounded."""

    name: str
    hr: torch.Tensor
    lr: torch.Tensor
    bit_depth: int = 8
    path: Path | None = None


def prepare_image(
    hr: ImageData, scale: int, *, lr: ImageData | None = None, name: str = "", path: Path | None = None
) -> BenchmarkImage:
    """Steps 1-2 of the protocol: modcropped, rounded HR and its LR (bicubic, or ``lr`` as given).

    Raises:
        ImageError: the image is smaller than the scale, or ``lr`` is not ``HR / scale`` in size.
    """
    pixels = modcrop(hr.pixels, scale)
    if min(pixels.shape[-2:]) < 1:
        raise ImageError(f"image of {tuple(hr.pixels.shape[-2:])} pixels is smaller than the scale {scale}")
    hr_q = quantize(pixels, hr.bit_depth)
    if lr is None:
        lr_q = benchmark_lr(hr_q, scale, bit_depth=hr.bit_depth)
    else:
        want = (hr_q.shape[-2] // scale, hr_q.shape[-1] // scale)
        if tuple(lr.pixels.shape[-2:]) != want:
            raise ImageError(
                f"expected LR size {want[1]}x{want[0]} for x{scale} (W x H), got "
                f"{lr.pixels.shape[-1]}x{lr.pixels.shape[-2]}"
            )
        lr_q = quantize(lr.pixels, lr.bit_depth)
    return BenchmarkImage(name=name, hr=hr_q, lr=lr_q, bit_depth=hr.bit_depth, path=path)


# ---------------------------------------------------------------------------------------------- running


def _model_input_dtype(model: SRModel) -> torch.dtype:
    params = [p for p in model.parameters() if p.is_floating_point()]
    return torch.float64 if not params or params[0].dtype == torch.float64 else torch.float32


def run_model(
    model: SRModel, lr: torch.Tensor, *, bit_depth: int = 8, tile: int | None = None,
    device: torch.device | str = "cpu", self_ensemble: bool = False,
) -> torch.Tensor:
    """Step 3: ``model`` on ``lr`` ``(1, C, h, w)`` as ``upscale`` runs it (fp32, tiled, optionally
    ``--self-ensemble``), rounded to ``bit_depth``.

    Returns:
        ``(1, C, s*h, s*w)`` float64 on the CPU.
    """
    from ..tiling import upscale_tensor

    x = lr.to(_model_input_dtype(model))
    out = upscale_tensor(
        model, x, tile=tile, device=device, precision="fp32", out_dtype=torch.float64, self_ensemble=self_ensemble
    )
    return quantize(out, bit_depth)


def run_benchmark_image(
    model: SRModel, hr_img: ImageData, *, tile: int | None = None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Modcropped HR, its benchmark LR and the model's output, each rounded to the image's bit depth."""
    img = prepare_image(hr_img, model.scale)
    return img.hr, img.lr, run_model(model, img.lr, bit_depth=img.bit_depth, tile=tile, device=device)


# ---------------------------------------------------------------------------------------------- scoring


def _match_channels(sr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Gray ground truth: score the SR image's channel mean (exact when it is gray saved as RGB)."""
    if sr.shape[1] == gt.shape[1]:
        return sr
    if gt.shape[1] == 1:
        return sr.mean(dim=1, keepdim=True)
    return sr.expand(-1, gt.shape[1], -1, -1)


def score_pair(sr: torch.Tensor, gt: torch.Tensor, protocol: Protocol, *, bit_depth: int = 8) -> dict[str, float]:
    """Step 4: all metrics of ``protocol`` for one ``(1, C, H, W)`` pair in ``[0, 1]`` (``gt`` = reference).

    Values are first rounded to the levels of ``bit_depth``; with the paper protocol the Y of an
    8-bit RGB image is rounded to integers as MATLAB's ``rgb2ycbcr`` does for ``uint8``. Metrics
    with :attr:`Metric.rgb` get the RGB images; derived ones (no ``fn``) are left out.

    Raises:
        ImageError: different sizes, or an image too small for a metric.
        CheckpointError: a learned metric's model file is missing or unreadable.
    """
    if sr.shape[-2:] != gt.shape[-2:]:
        raise ImageError(f"size mismatch: ground truth is {tuple(gt.shape[-2:])}, SR is {tuple(sr.shape[-2:])} (H, W)")
    return _metric_values(quantize(_match_channels(sr, gt), bit_depth), quantize(gt, bit_depth), protocol, bit_depth)


def score_image(sr: torch.Tensor, protocol: Protocol, *, bit_depth: int = 8) -> dict[str, float]:
    """Step 4 without ground truth: the no-reference metrics of ``protocol`` for one ``(1, C, H, W)``
    image in ``[0, 1]``, converted and rounded as :func:`score_pair` does.

    Raises:
        ConfigError: ``protocol`` lists a metric that needs ground truth (named).
        ImageError: an image too small for a metric.
        CheckpointError: a learned metric's model file is missing or unreadable.
    """
    if protocol.reference_metrics:
        raise ConfigError(f"{', '.join(protocol.reference_metrics)} need ground truth, and none was given")
    return _metric_values(quantize(sr, bit_depth), None, protocol, bit_depth)


def _metric_values(
    x_rgb: torch.Tensor, y_rgb: torch.Tensor | None, protocol: Protocol, bit_depth: int
) -> dict[str, float]:
    """The metrics of ``protocol`` on rounded images (``y_rgb``: the reference, ``None`` without one)."""
    x, y = x_rgb, y_rgb
    if protocol.y_channel and x.shape[1] == 3:
        x = rgb_to_y(x, round_8bit=bit_depth == 8)
        y = None if y is None else rgb_to_y(y, round_8bit=bit_depth == 8)
    out = {}
    for name in protocol.metrics:
        metric = METRICS[name]
        if metric.fn is None:  # derived (pi): filled in from the others after scoring
            continue
        a, b = (x_rgb, y_rgb) if metric.rgb else (x, y)
        args = (a,) if not metric.needs_reference else (a, b)
        opts = protocol.options.get(name, {})
        value = metric.fn(*args, data_range=1.0, crop_border=protocol.crop_border, reduction="none", **opts)
        out[name] = float(value[0])
    return out


def evaluate_images(
    model: SRModel,
    images: Sequence[BenchmarkImage],
    protocol: Protocol,
    *,
    dataset: str = "",
    tile: int | None = None,
    device: torch.device | str = "cpu",
) -> DatasetResult:
    """Steps 3-4 on prepared images (training validation calls this on its cached images).

    Re-parameterised models are folded first (:meth:`SRModel.for_inference`), as they ship.
    """
    if protocol.scale is not None and protocol.scale != model.scale:
        raise ConfigError(f"protocol scale {protocol.scale} differs from the model's scale {model.scale}")
    net = model.for_inference()
    result = DatasetResult(name=dataset)
    for img in images:
        sr = run_model(net, img.lr, bit_depth=img.bit_depth, tile=tile, device=device)
        values = score_pair(sr, img.hr, protocol, bit_depth=img.bit_depth)
        result.images.append(ImageResult(dataset, img.name, values, gt_path=img.path))
    return result


def evaluate_model(
    model: SRModel,
    folders: Sequence[str | os.PathLike[str]],
    protocol: Protocol,
    *,
    tile: int | None = None,
    device: torch.device | str = "cpu",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    keep_going: bool = False,
) -> list[DatasetResult]:
    """The benchmark protocol on folders of HR images: one :class:`DatasetResult` per folder.

    Args:
        max_pixels: images with more pixels (from the header) are refused before decoding.
        keep_going: an image that cannot be read or scored (memory exhaustion included) is recorded in
            :attr:`DatasetResult.failures` instead of raising.

    Raises:
        ImageError: a folder without images; an unreadable, too large or too small image, or memory
            exhaustion on one (without ``keep_going``).
        ConfigError: ``protocol.scale`` is set and differs from ``model.scale``.
    """
    if protocol.scale is not None and protocol.scale != model.scale:
        raise ConfigError(f"protocol scale {protocol.scale} differs from the model's scale {model.scale}")
    files = [(Path(folder), list_images(folder)) for folder in folders]
    net = model.for_inference()
    results = []
    for folder, paths in files:
        result = DatasetResult(name=folder.name or str(folder))
        for path in paths:
            try:
                with out_of_memory_fails_file(path):
                    img = prepare_image(read_image(path, max_pixels=max_pixels), net.scale, name=path.stem, path=path)
                    part = evaluate_images(net, [img], protocol, dataset=result.name, tile=tile, device=device)
            except ImageError as exc:
                if not keep_going:
                    raise ImageError(exc.args[0] if str(path) in str(exc) else f"{path}: {exc}") from None
                result.failures.append((str(path), str(exc)))
            else:
                result.images += part.images
            if progress is not None:
                progress(path.stem)
        results.append(result)
    return results


def _pair_scores(
    pair: Pair, protocol: Protocol, *, modcrop_gt: bool, max_pixels: int | None
) -> tuple[dict[str, float], str | None]:
    """Scores of one pair and a warning line (or ``None``); both headers must pass ``max_pixels`` first."""
    for path in (pair.sr, pair.gt):
        image_size(path, max_pixels=max_pixels)
    sr_img, gt_img = read_image(pair.sr, max_pixels=max_pixels), read_image(pair.gt, max_pixels=max_pixels)
    sr, gt = sr_img.pixels, gt_img.pixels
    (h, w), (gh, gw) = sr.shape[-2:], gt.shape[-2:]
    if (h, w) != (gh, gw):
        fits = 0 <= gh - h <= MAX_MODCROP and 0 <= gw - w <= MAX_MODCROP
        if not (modcrop_gt and fits):
            hint = " (--modcrop crops ground truth up to 15 px larger)" if fits else ""
            raise ImageError(
                f"size mismatch for {pair.name!r}: {pair.gt.name} is {gw}x{gh}, {pair.sr.name} is {w}x{h} (W x H){hint}"
            )
        gt = gt[..., :h, :w]
    warning = None
    if sr.shape[1] == 1 and gt.shape[1] == 3:
        warning = (
            f"{pair.sr}: gray SR image scored against colour ground truth {pair.gt.name} "
            "(its gray value stands for every channel)"
        )
    depth = 8 if 8 in (sr_img.bit_depth, gt_img.bit_depth) else 16
    try:
        return score_pair(sr, gt, protocol, bit_depth=depth), warning
    except ImageError as exc:
        raise ImageError(f"{pair.name}: {exc}") from None


def evaluate_pairs(
    pairs: Sequence[Pair],
    protocol: Protocol,
    *,
    dataset: str = "",
    modcrop_gt: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    keep_going: bool = False,
) -> DatasetResult:
    """Score every pair of :func:`~sruscale.evaluation.pairing.pair_files` (step 4 only).

    A gray SR image against colour ground truth is scored (gray stands for every channel) and
    reported in :attr:`DatasetResult.warnings`.

    Args:
        modcrop_gt: ground truth larger than its SR image by at most :data:`MAX_MODCROP` pixels per
            dimension is cropped to the SR size, keeping the top-left corner (what ``modcrop`` does
            before downscaling); without it any size difference is an error.
        progress: called with each image name once it is scored.
        max_pixels: a pair with an image of more pixels (from the header) is refused before either is decoded.
        keep_going: a pair that cannot be read or scored (memory exhaustion included) goes to
            :attr:`DatasetResult.failures` instead of raising.

    Raises:
        ImageError: unreadable or too large images; size mismatches (naming the files and both sizes);
            memory exhaustion on a pair; without ``keep_going``.
    """
    jobs = [
        (p.name, p.sr, p.gt, partial(_pair_scores, p, protocol, modcrop_gt=modcrop_gt, max_pixels=max_pixels))
        for p in pairs
    ]
    return _score_jobs(DatasetResult(name=dataset), jobs, progress=progress, keep_going=keep_going)


def _file_scores(path: Path, protocol: Protocol, *, max_pixels: int | None) -> tuple[dict[str, float], None]:
    """No-reference scores of one file (the header must pass ``max_pixels`` before decoding)."""
    image_size(path, max_pixels=max_pixels)
    img = read_image(path, max_pixels=max_pixels)
    return score_image(img.pixels, protocol, bit_depth=img.bit_depth), None


def evaluate_files(
    files: Mapping[str, Path],
    protocol: Protocol,
    *,
    dataset: str = "",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    keep_going: bool = False,
) -> DatasetResult:
    """Score images without ground truth (no-reference metrics only; :func:`score_image`).

    Args:
        files: image name -> file (a folder's images by :func:`~sruscale.evaluation.pairing.pairing_key`).
        progress, max_pixels, keep_going: as for :func:`evaluate_pairs`.

    Raises:
        ConfigError: ``protocol`` lists a metric that needs ground truth (from :func:`score_image`).
        ImageError: unreadable, too large or too small images; memory exhaustion; without ``keep_going``.
    """
    jobs = [(name, f, None, partial(_file_scores, f, protocol, max_pixels=max_pixels)) for name, f in files.items()]
    return _score_jobs(DatasetResult(name=dataset), jobs, progress=progress, keep_going=keep_going)


_Job = tuple[str, Path, Path | None, Callable[[], tuple[dict[str, float], str | None]]]


def _score_jobs(
    result: DatasetResult, jobs: Sequence[_Job], *, progress: Progress | None, keep_going: bool
) -> DatasetResult:
    """Run ``(name, sr file, ground truth or None, score)`` jobs into ``result``: the one keep-going loop.
    Without ``keep_going`` the first failure is raised, naming its file."""
    for name, sr, gt, score in jobs:
        try:
            with out_of_memory_fails_file(sr):
                values, warning = score()
        except ImageError as exc:
            if not keep_going:
                raise ImageError(str(exc) if sr.name in str(exc) else f"{sr}: {exc}") from None
            result.failures.append((str(sr), str(exc)))  # the file is named by whoever reports it
        else:
            result.images.append(ImageResult(result.name, name, values, sr_path=sr, gt_path=gt))
            if warning is not None:
                result.warnings.append(warning)
        if progress is not None:
            progress(name)
    return result


def count_images(folders: Sequence[str | os.PathLike[str]]) -> int:
    """Number of images :func:`evaluate_model` will score (for a progress bar)."""
    return sum(len(list_images(f)) for f in folders)
