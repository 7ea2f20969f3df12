"""Scoring SR outputs against ground truth the way SR papers do (the library side of ``sruscale evaluate``).

Two ways in:

* :func:`pair_files` + :func:`evaluate_pairs`: existing SR images against their ground truth,
  paired by file name (after stripping suffixes such as ``_x4`` / ``_SR``), never by sort order.
* :func:`evaluate_model`: the full benchmark protocol on folders of HR images: modcrop to the scale,
  LR = MATLAB bicubic downscaling rounded to the image's bit depth, upscale with the model, round
  the output likewise, score.

The scoring conventions (:class:`Protocol`): ``paper`` = BT.601 studio-range Y as MATLAB's
``rgb2ycbcr`` gives it (integer Y for 8-bit images), ``scale`` pixels shaved off every side,
SSIM over valid windows only; ``rgb`` = every channel, same crop. Gray images are scored on their
one channel. Dataset rows are means of the per-image values. With this protocol, bicubic on Set5
gives 33.66 / 30.39 / 28.42 dB (x2 / x3 / x4), as published.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .color import rgb_to_y
from .errors import ConfigError, ImageError
from .image import DEFAULT_MAX_PIXELS, SUPPORTED_SUFFIXES, ImageData, read_image
from .metrics import METRICS
from .metrics.catalog import CATALOG, PERCEPTUAL_METRICS, RGB_INPUT
from .models import SRModel
from .resize import imresize

__all__ = [
    "BENCHMARK_DEGRADATION",
    "DEFAULT_METRICS",
    "DEFAULT_STRIP",
    "MAX_MODCROP",
    "DatasetResult",
    "EvaluationResult",
    "GridRow",
    "ImageResult",
    "Pair",
    "Protocol",
    "benchmark_lr",
    "count_images",
    "evaluate_model",
    "evaluate_pairs",
    "extremes",
    "grid_rows_model",
    "grid_rows_pairs",
    "list_images",
    "modcrop",
    "pair_files",
    "pairing_key",
    "run_benchmark_image",
    "score_pair",
    "write_grid",
]

DEFAULT_METRICS: tuple[str, ...] = ("psnr", "ssim")
#: suffixes stripped from file stems before pairing; ``_x<N>`` stands for any scale (``_x2``, ``_x4`` ...)
DEFAULT_STRIP: tuple[str, ...] = ("_x<N>", "_SR", "_sr", "_HR", "_hr", "_GT", "_gt")
#: with ``modcrop``, ground truth may exceed the SR image by at most this many pixels per dimension
MAX_MODCROP = 15
#: how :func:`evaluate_model` makes its inputs (recorded with the results)
BENCHMARK_DEGRADATION = (
    "HR modcropped to the scale; LR = MATLAB imresize(HR, 1/scale, 'bicubic') rounded to the bit depth; "
    "SR clamped to [0, 1] and rounded likewise"
)

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class Protocol:
    """How images are scored; recorded with every result.

    Attributes:
        name: ``"paper"`` (Y channel) or ``"rgb"`` (all channels).
        crop_border: pixels shaved off every side before scoring.
        metrics: metric names, keys of :data:`sruscale.metrics.METRICS`.
        scale: the SR factor, when known (model mode; optional when pairing files).
        options: per-metric keyword options (model files: ``{"niqe": {"model": "m.mat"}}``).
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
        unknown = [m for m in self.metrics if m not in CATALOG]
        if unknown:
            raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(CATALOG)}")
        if "pi" in self.metrics and "niqe" not in self.metrics:
            raise ConfigError("pi is computed from niqe: list niqe in the metrics too")
        if len(set(self.metrics)) != len(self.metrics):
            raise ConfigError(f"metrics listed twice: {', '.join(self.metrics)}")

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
            "lower_is_better": {m: CATALOG[m].lower_is_better for m in self.metrics},
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
    """Per-image scores of one dataset (folder)."""

    name: str
    images: list[ImageResult] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        """Mean of the per-image values (``inf`` if any PSNR is ``inf``; ``nan`` if empty)."""
        vals = [r.values[metric] for r in self.images]
        return float(np.mean(vals)) if vals else math.nan


def _num(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


@dataclass
class EvaluationResult:
    """Everything a run produced, plus how: protocol, model and sources."""

    protocol: Protocol
    datasets: list[DatasetResult]
    model: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": {**self.protocol.as_dict(), "model": self.model, **self.sources},
            "datasets": [
                {
                    "name": d.name,
                    "images": len(d.images),
                    "mean": {m: _num(d.mean(m)) for m in self.protocol.metrics},
                    "per_image": [{"image": r.image, **{m: _num(r.values[m]) for m in r.values}} for r in d.images],
                }
                for d in self.datasets
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per image; the protocol columns repeat on every row so each row stands alone."""
        buf = io.StringIO()
        proto = self.protocol
        head = ["dataset", "image", *proto.metrics, "model", "scale", "protocol", "y_channel", "crop_border"]
        lower = ";".join(m for m in proto.metrics if CATALOG[m].lower_is_better)
        if lower:  # the direction travels with every row: metrics where lower is better
            head.append("lower_is_better")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(head)
        for d in self.datasets:
            for r in d.images:
                vals = [repr(r.values[m]) for m in proto.metrics]
                writer.writerow(
                    [d.name, r.image, *vals, self.model or "", proto.scale or "", proto.name, proto.y_channel,
                     proto.crop_border, *([lower] if lower else [])]
                )  # fmt: skip
        return buf.getvalue()

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write ``.json`` or ``.csv`` (chosen by suffix).

        Raises:
            ConfigError: another suffix.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".csv"):
            raise ConfigError(f"results file must end in .csv or .json, got {path.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() if suffix == ".json" else self.to_csv(), encoding="utf-8")
        return path


# ---------------------------------------------------------------------------------------------- pairing


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in ``folder`` (not recursive, hidden files skipped), sorted by name.

    Raises:
        ImageError: ``folder`` is not a directory or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUPPORTED_SUFFIXES
    )
    if not files:
        raise ImageError(f"{folder}: no image files (looked for {', '.join(sorted(SUPPORTED_SUFFIXES))})")
    return files


def _strip_patterns(strip: Sequence[str]) -> list[re.Pattern[str]]:
    out = []
    for s in strip:
        if not s:
            raise ConfigError("an empty --strip suffix would match everything")
        out.append(re.compile(re.escape(s).replace(re.escape("<N>"), r"\d+") + "$"))
    return out


def pairing_key(stem: str, strip: Sequence[str] = DEFAULT_STRIP) -> str:
    """The name a file is paired by: ``stem`` with the ``strip`` suffixes removed, repeatedly.

    ``"baby_x4_SR"`` -> ``"baby"``; ``"<N>"`` in a suffix matches any number. A stem that would
    become empty is kept as it is.
    """
    patterns = _strip_patterns(strip)
    key, changed = stem, True
    while changed:
        changed = False
        for pat in patterns:
            new = pat.sub("", key)
            if new != key and new:
                key, changed = new, True
    return key


@dataclass(frozen=True)
class Pair:
    """An SR file and its ground truth, paired by :func:`pairing_key`."""

    name: str
    sr: Path
    gt: Path


def _keyed(files: list[Path], strip: Sequence[str], role: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        key = pairing_key(f.stem, strip)
        if key in out:
            raise ImageError(f"two {role} files pair as {key!r}: {out[key].name} and {f.name}")
        out[key] = f
    return out


def pair_files(
    sr_dir: str | os.PathLike[str], gt_dir: str | os.PathLike[str], *, strip: Sequence[str] = DEFAULT_STRIP
) -> list[Pair]:
    """Pair the images of ``sr_dir`` with those of ``gt_dir`` by name, never by position.

    Both stems lose the ``strip`` suffixes (see :func:`pairing_key`); the extension is ignored
    (``baby_x4.png`` pairs with ``baby.bmp``). Every file must find exactly one partner.

    Returns:
        Pairs sorted by name.

    Raises:
        ImageError: a folder is missing or empty; two files of one folder give the same name;
            files without a partner (all of them are named, per folder).
    """
    sr = _keyed(list_images(sr_dir), strip, "SR")
    gt = _keyed(list_images(gt_dir), strip, "ground-truth")
    only_sr, only_gt = sorted(set(sr) - set(gt)), sorted(set(gt) - set(sr))
    if only_sr or only_gt:
        parts = []
        if only_sr:
            parts.append(f"no ground truth in {gt_dir} for: {', '.join(sr[k].name for k in only_sr)}")
        if only_gt:
            parts.append(f"no SR image in {sr_dir} for: {', '.join(gt[k].name for k in only_gt)}")
        hint = f" (names are compared after stripping {', '.join(strip)}; see --strip)"
        raise ImageError("; ".join(parts) + hint)
    return [Pair(name=k, sr=sr[k], gt=gt[k]) for k in sorted(sr)]


# ---------------------------------------------------------------------------------------------- scoring


def _levels(bit_depth: int) -> float:
    return 255.0 if bit_depth == 8 else 65535.0


def _quantize(x: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """Round ``[0, 1]`` values to the integer levels of ``bit_depth`` (as MATLAB's uint8/uint16), float64."""
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
    return _quantize(imresize(hr.double(), 1 / scale), bit_depth)


def _match_channels(sr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Gray ground truth: score the SR image's channel mean (exact when it is gray saved as RGB)."""
    if sr.shape[1] == gt.shape[1]:
        return sr
    if gt.shape[1] == 1:
        return sr.mean(dim=1, keepdim=True)
    return sr.expand(-1, gt.shape[1], -1, -1)


def score_pair(sr: torch.Tensor, gt: torch.Tensor, protocol: Protocol, *, bit_depth: int = 8) -> dict[str, float]:
    """All metrics of ``protocol`` for one ``(1, C, H, W)`` pair in ``[0, 1]`` (``gt`` = reference).

    Values are first rounded to the levels of ``bit_depth``; with the paper protocol the Y of an
    8-bit RGB image is rounded to integers as MATLAB's ``rgb2ycbcr`` does for ``uint8``.

    Raises:
        ImageError: different sizes, or an image too small for a metric.
    """
    if sr.shape[-2:] != gt.shape[-2:]:
        raise ImageError(f"size mismatch: ground truth is {tuple(gt.shape[-2:])}, SR is {tuple(sr.shape[-2:])} (H, W)")
    x, y = _quantize(_match_channels(sr, gt), bit_depth), _quantize(gt, bit_depth)
    x_rgb, y_rgb = x, y
    if protocol.y_channel and x.shape[1] == 3:
        x, y = rgb_to_y(x, round_8bit=bit_depth == 8), rgb_to_y(y, round_8bit=bit_depth == 8)
    out = {}
    for name in protocol.metrics:
        fn = METRICS.get(name) or PERCEPTUAL_METRICS.get(name)
        if fn is None:  # derived (pi): filled in from the others afterwards
            continue
        a, b = (x_rgb, y_rgb) if name in RGB_INPUT else (x, y)
        opts = protocol.options.get(name, {})
        value = fn(a, b, data_range=1.0, crop_border=protocol.crop_border, reduction="none", **opts)
        out[name] = float(value[0])
    return out


def _read(path: Path, max_pixels: int | None) -> ImageData:
    return read_image(path, max_pixels=max_pixels)


def _contextual(name: str, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    try:
        return fn()
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None


def evaluate_pairs(
    pairs: Sequence[Pair],
    protocol: Protocol,
    *,
    dataset: str = "",
    modcrop_gt: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
) -> DatasetResult:
    """Score every pair of :func:`pair_files`.

    Args:
        modcrop_gt: ground truth larger than its SR image by at most :data:`MAX_MODCROP` pixels per
            dimension is cropped to the SR size, keeping the top-left corner (what ``modcrop`` does
            before downscaling); without it any size difference is an error.
        progress: called with each image name once it is scored.

    Raises:
        ImageError: unreadable images; size mismatches (naming the files and both sizes).
    """
    result = DatasetResult(name=dataset)
    for pair in pairs:
        sr_img, gt_img = _read(pair.sr, max_pixels), _read(pair.gt, max_pixels)
        sr, gt = sr_img.pixels, gt_img.pixels
        (h, w), (gh, gw) = sr.shape[-2:], gt.shape[-2:]
        if (h, w) != (gh, gw):
            fits = 0 <= gh - h <= MAX_MODCROP and 0 <= gw - w <= MAX_MODCROP
            if not (modcrop_gt and fits):
                hint = " (--modcrop crops ground truth up to 15 px larger)" if fits else ""
                raise ImageError(
                    f"size mismatch for {pair.name!r}: {pair.gt.name} is {gw}x{gh}, {pair.sr.name} is {w}x{h} "
                    f"(W x H){hint}"
                )
            gt = gt[..., :h, :w]
        depth = 8 if 8 in (sr_img.bit_depth, gt_img.bit_depth) else 16
        values = _contextual(pair.name, lambda sr=sr, gt=gt, depth=depth: score_pair(sr, gt, protocol, bit_depth=depth))
        result.images.append(ImageResult(dataset, pair.name, values, sr_path=pair.sr, gt_path=pair.gt))
        if progress is not None:
            progress(pair.name)
    return result


def _model_input_dtype(model: SRModel) -> torch.dtype:
    params = [p for p in model.parameters() if p.is_floating_point()]
    return torch.float64 if not params or params[0].dtype == torch.float64 else torch.float32


def _upscale(model: SRModel, lr: torch.Tensor, *, tile: int | None, device: str) -> torch.Tensor:
    from .tiling import upscale_tensor

    x = lr.to(_model_input_dtype(model))
    return upscale_tensor(model, x, tile=tile, device=device, out_dtype=torch.float64)


def run_benchmark_image(
    model: SRModel, hr_img: ImageData, *, tile: int | None = None, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Modcropped HR, its benchmark LR and the model's output, each quantised to the image's bit depth."""
    s = model.scale
    hr = _quantize(modcrop(hr_img.pixels, s), hr_img.bit_depth)
    if min(hr.shape[-2:]) < s:
        raise ImageError(f"image of {tuple(hr_img.pixels.shape[-2:])} pixels is smaller than the scale {s}")
    lr = benchmark_lr(hr, s, bit_depth=hr_img.bit_depth)
    sr = _quantize(_upscale(model, lr, tile=tile, device=device), hr_img.bit_depth)
    return hr, lr, sr


def evaluate_model(
    model: SRModel,
    folders: Sequence[str | os.PathLike[str]],
    protocol: Protocol,
    *,
    tile: int | None = None,
    device: str = "cpu",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
) -> list[DatasetResult]:
    """The benchmark protocol on folders of HR images: one :class:`DatasetResult` per folder.

    Per image: modcrop to ``model.scale``; LR = MATLAB bicubic ``1/scale`` rounded to the bit
    depth; SR = ``model`` (tiled, clamped) rounded likewise; :func:`score_pair` against the HR.

    Raises:
        ImageError: a folder without images, an unreadable or too small image.
        ConfigError: ``protocol.scale`` is set and differs from ``model.scale``.
    """
    if protocol.scale is not None and protocol.scale != model.scale:
        raise ConfigError(f"protocol scale {protocol.scale} differs from the model's scale {model.scale}")
    files = [(Path(folder), list_images(folder)) for folder in folders]
    results = []
    for folder, paths in files:
        result = DatasetResult(name=folder.name or str(folder))
        for path in paths:
            hr_img = _read(path, max_pixels)

            def score(hr_img: ImageData = hr_img) -> dict[str, float]:
                hr, _, sr = run_benchmark_image(model, hr_img, tile=tile, device=device)
                return score_pair(sr, hr, protocol, bit_depth=hr_img.bit_depth)

            values = _contextual(str(path), score)
            result.images.append(ImageResult(result.name, path.stem, values, gt_path=path))
            if progress is not None:
                progress(path.stem)
        results.append(result)
    return results


def count_images(folders: Sequence[str | os.PathLike[str]]) -> int:
    """Number of images :func:`evaluate_model` will score (for a progress bar)."""
    return sum(len(list_images(f)) for f in folders)


# ---------------------------------------------------------------------------------------------- grid

_CROP = 160
_PANEL = 192
_LABEL_H = 34


def _to_pil(x: torch.Tensor) -> Image.Image:
    arr = (x[0].double().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, "L" if arr.shape[2] == 1 else "RGB").convert(
        "RGB"
    )


def _worst_window(sr: torch.Tensor, hr: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window where SR differs most from HR."""
    err = (sr.double() - hr.double()).pow(2).mean(dim=1, keepdim=True)
    step = max(1, size // 4)
    local = F.avg_pool2d(err, size, stride=step)
    idx = int(local.flatten().argmax())
    return (idx // local.shape[-1]) * step, (idx % local.shape[-1]) * step


@dataclass(frozen=True)
class GridRow:
    """One row of the comparison picture: panels ``(label, (1, C, H, W) image)`` at HR size."""

    title: str
    panels: list[tuple[str, torch.Tensor]]


def write_grid(rows: Sequence[GridRow], path: str | os.PathLike[str]) -> Path:
    """Write a comparison picture: one row per image, a crop of each panel with its label.

    The crop (160 px, or the image size if smaller) is where the second panel (SR) differs most from the
    last (HR); crops are enlarged with nearest neighbour to 192 px so pixels stay visible.
    """
    if not rows:
        raise ConfigError("nothing to draw: no images")
    font = ImageFont.load_default()
    ncol = max(len(r.panels) for r in rows)
    row_h = _LABEL_H + _PANEL + 8
    canvas = Image.new("RGB", (ncol * (_PANEL + 8) + 8, len(rows) * (row_h + 18) + 8), "white")
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(rows):
        top = 8 + i * (row_h + 18)
        draw.text((8, top), row.title, fill="black", font=font)
        sr, hr = row.panels[min(1, len(row.panels) - 1)][1], row.panels[-1][1]
        h, w = hr.shape[-2:]
        size = min(_CROP, h, w)
        y0, x0 = _worst_window(_match_channels(sr, hr), hr, size)
        for j, (label, img) in enumerate(row.panels):
            crop = _to_pil(img[..., y0 : y0 + size, x0 : x0 + size]).resize((_PANEL, _PANEL), Image.Resampling.NEAREST)
            left = 8 + j * (_PANEL + 8)
            canvas.paste(crop, (left, top + 16))
            for k, line in enumerate(label.split("\n")[:2]):
                draw.text((left, top + 20 + _PANEL + 12 * k), line, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _label(name: str, sr: torch.Tensor, hr: torch.Tensor, protocol: Protocol, bit_depth: int) -> str:
    grid_protocol = Protocol(name=protocol.name, crop_border=protocol.crop_border, metrics=("psnr", "ssim"))
    v = score_pair(sr, hr, grid_protocol, bit_depth=bit_depth)
    return f"{name}\n{v['psnr']:.2f} dB / SSIM {v['ssim']:.4f}"


def extremes(results: Sequence[DatasetResult], metric: str) -> list[ImageResult]:
    """The worst and the best image by ``metric`` over all datasets (one if there is only one image)."""
    images = [r for d in results for r in d.images if not math.isnan(r.values[metric])]
    if not images:
        return []
    ordered = sorted(images, key=lambda r: r.values[metric])
    return [ordered[0]] if len(ordered) == 1 else [ordered[0], ordered[-1]]


def grid_rows_model(
    model: SRModel,
    picks: Sequence[ImageResult],
    protocol: Protocol,
    *,
    model_name: str,
    tile: int | None = None,
    device: str = "cpu",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> list[GridRow]:
    """Grid rows (bicubic | SR | HR) for images scored by :func:`evaluate_model` (recomputed)."""
    rows = []
    for pick, tag in zip(picks, ("worst", "best"), strict=False):
        if pick.gt_path is None:
            raise ConfigError(f"{pick.image}: no ground-truth path recorded")
        img = _read(pick.gt_path, max_pixels)
        hr, lr, sr = run_benchmark_image(model, img, tile=tile, device=device)
        bic = _quantize(imresize(lr, size=tuple(hr.shape[-2:])), img.bit_depth)
        rows.append(
            GridRow(
                title=f"{tag}: {pick.dataset}/{pick.image}",
                panels=[
                    (_label("bicubic", bic, hr, protocol, img.bit_depth), bic),
                    (_label(model_name, sr, hr, protocol, img.bit_depth), sr),
                    ("HR (ground truth)", hr),
                ],
            )
        )
    return rows


def grid_rows_pairs(
    picks: Sequence[ImageResult],
    protocol: Protocol,
    *,
    modcrop_gt: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> list[GridRow]:
    """Grid rows for paired files: (bicubic from the ground truth, when the scale is known) | SR | HR."""
    rows = []
    for pick, tag in zip(picks, ("worst", "best"), strict=False):
        if pick.sr_path is None or pick.gt_path is None:
            raise ConfigError(f"{pick.image}: no file paths recorded")
        sr_img, gt_img = _read(pick.sr_path, max_pixels), _read(pick.gt_path, max_pixels)
        sr = sr_img.pixels
        gt = gt_img.pixels[..., : sr.shape[-2], : sr.shape[-1]] if modcrop_gt else gt_img.pixels
        depth = 8 if 8 in (sr_img.bit_depth, gt_img.bit_depth) else 16
        sr, hr = _quantize(_match_channels(sr, gt), depth), _quantize(gt, depth)
        panels = []
        s = protocol.scale
        if s and min(hr.shape[-2:]) >= 2 * s:
            lr = benchmark_lr(modcrop(hr, s), s, bit_depth=depth)
            bic = _quantize(imresize(lr, size=tuple(hr.shape[-2:])), depth)
            panels.append((_label("bicubic (from GT)", bic, hr, protocol, depth), bic))
        panels += [(_label(f"SR {pick.sr_path.name}", sr, hr, protocol, depth), sr), ("HR (ground truth)", hr)]
        rows.append(GridRow(title=f"{tag}: {pick.image}", panels=panels))
    return rows
