"""Reporting evaluation results: the run record (JSON / CSV), tables, the comparison grid."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from rich.markup import escape
from rich.table import Table

from .._fs import atomic_write
from ..errors import ConfigError, ImageError
from ..image import DEFAULT_MAX_PIXELS, read_image
from ..models import SRModel
from ..resize import imresize
from .protocol import (
    METRICS,
    DatasetResult,
    ImageResult,
    Protocol,
    _match_channels,
    benchmark_lr,
    modcrop,
    quantize,
    run_benchmark_image,
    score_pair,
)

__all__ = [
    "RESULT_SUFFIXES",
    "EvaluationResult",
    "GridRow",
    "check_results_path",
    "dataset_table",
    "extremes",
    "grid_rows_model",
    "grid_rows_pairs",
    "image_table",
    "rank_datasets",
    "write_grid",
]

#: the file types :meth:`EvaluationResult.write` can produce
RESULT_SUFFIXES = (".json", ".csv")


def check_results_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if its suffix is one of :data:`RESULT_SUFFIXES` (checked before any scoring).

    Raises:
        ConfigError: another suffix.
    """
    path = Path(path)
    if path.suffix.lower() not in RESULT_SUFFIXES:
        raise ConfigError(f"results file must end in .csv or .json, got {path.name!r}")
    return path


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
                    "failed": [{"file": f, "reason": why} for f, why in d.failures],
                }
                for d in self.datasets
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per image, then one ``mean`` row per dataset (image column ``mean (N images)``);
        the protocol columns repeat on every row so each row stands alone. When some metric is
        lower-is-better, a last column ``lower_is_better`` names those metrics (``;``-separated)."""
        buf = io.StringIO()
        proto = self.protocol
        head = ["dataset", "image", *proto.metrics, "model", "scale", "protocol", "y_channel", "crop_border"]
        tail = [self.model or "", proto.scale or "", proto.name, proto.y_channel, proto.crop_border]
        lower = ";".join(m for m in proto.metrics if not METRICS[m].higher_is_better)
        if lower:  # the direction travels with every row
            head.append("lower_is_better")
            tail.append(lower)
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(head)
        for d in self.datasets:
            for r in d.images:
                vals = [repr(r.values[m]) for m in proto.metrics]
                writer.writerow([d.name, r.image, *vals, *tail])
        for d in self.datasets:
            means = [repr(d.mean(m)) for m in proto.metrics]
            writer.writerow([d.name, f"mean ({len(d.images)} images)", *means, *tail])
        return buf.getvalue()

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write ``.json`` or ``.csv`` (chosen by suffix).

        Raises:
            ConfigError: another suffix.
        """
        path = check_results_path(path)
        text = self.to_json() if path.suffix.lower() == ".json" else self.to_csv()
        with atomic_write(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path


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
    with atomic_write(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def _fmt(metric: str, value: float) -> str:
    return f"{value:.{METRICS[metric].digits}f}"


def _column(metric: str) -> str:
    """Column title with the better direction: ``PSNR (dB) ↑``, ``NIQE ↓``."""
    m = METRICS[metric]
    return f"{m.label or metric.upper()} {m.arrow}"


def dataset_table(
    results: Sequence[DatasetResult], protocol: Protocol, title: str, *, row: str = "dataset", best: bool = False
) -> Table:
    """One row per dataset: image count and the mean of each metric (``title`` is rich markup).

    Args:
        row: title of the first column (``"folder"`` when the rows are compared output folders).
        best: bold the best mean of each column (rows that compete: ``evaluate --compare``).
    """
    t = Table(title=title, caption=protocol.describe(), title_justify="left", caption_justify="left")
    t.add_column(row)
    t.add_column("images", justify="right")
    for m in protocol.metrics:
        t.add_column(_column(m), justify="right")
    tops = {m: _best_mean(results, m) for m in protocol.metrics} if best and len(results) > 1 else {}
    for d in results:
        cells = [_fmt(m, d.mean(m)) for m in protocol.metrics]
        cells = [
            f"[bold]{c}[/]" if m in tops and c == _fmt(m, tops[m]) else c
            for m, c in zip(protocol.metrics, cells, strict=True)
        ]
        t.add_row(escape(d.name), str(len(d.images)), *cells)
    return t


def _best_mean(results: Sequence[DatasetResult], metric: str) -> float:
    means = [v for v in (d.mean(metric) for d in results) if not math.isnan(v)]
    if not means:
        return math.nan
    return max(means) if METRICS[metric].higher_is_better else min(means)


def rank_datasets(results: Sequence[DatasetResult], metric: str) -> list[DatasetResult]:
    """``results`` best first by the mean of ``metric`` (its direction from :data:`METRICS`); no value last."""
    sign = -1.0 if METRICS[metric].higher_is_better else 1.0

    def key(d: DatasetResult) -> tuple[int, float]:
        v = d.mean(metric)
        return (1, 0.0) if math.isnan(v) else (0, sign * v)

    return sorted(results, key=key)


def image_table(d: DatasetResult, protocol: Protocol) -> Table:
    """One row per image of ``d``."""
    t = Table(title=f"{escape(d.name) or 'images'}: per image", title_justify="left")
    t.add_column("image")
    for m in protocol.metrics:
        t.add_column(_column(m), justify="right")
    for r in d.images:
        t.add_row(escape(r.image), *(_fmt(m, r.values[m]) for m in protocol.metrics))
    return t


def _label(name: str, sr: torch.Tensor, hr: torch.Tensor, protocol: Protocol, bit_depth: int) -> str:
    grid_protocol = Protocol(name=protocol.name, crop_border=protocol.crop_border, metrics=("psnr", "ssim"))
    v = score_pair(sr, hr, grid_protocol, bit_depth=bit_depth)
    return f"{name}\n{v['psnr']:.2f} dB / SSIM {v['ssim']:.4f}"


def extremes(results: Sequence[DatasetResult], metric: str) -> list[ImageResult]:
    """The worst and the best image by ``metric`` over all datasets (one if there is only one image)."""
    images = [r for d in results for r in d.images if not math.isnan(r.values[metric])]
    if not images:
        return []
    sign = 1 if METRICS[metric].higher_is_better else -1
    ordered = sorted(images, key=lambda r: sign * r.values[metric])
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
        img = read_image(pick.gt_path, max_pixels=max_pixels)
        hr, lr, sr = run_benchmark_image(model, img, tile=tile, device=device)
        bic = quantize(imresize(lr, size=(hr.shape[-2], hr.shape[-1])), img.bit_depth)
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


def _bicubic_panel(
    hr: torch.Tensor, protocol: Protocol, depth: int, lr_file: Path | None, max_pixels: int | None
) -> tuple[str, torch.Tensor] | None:
    """Bicubic of the real LR file when there is one; otherwise of the ground truth downscaled (labelled
    so: it is not the input the SR image came from), when the scale is known."""
    if lr_file is not None:
        lr = read_image(lr_file, max_pixels=max_pixels).pixels
        (lh, lw), (h, w) = lr.shape[-2:], hr.shape[-2:]
        if lh >= h or lw >= w:
            raise ImageError(f"{lr_file}: expected an LR image smaller than its ground truth ({w}x{h}), got {lw}x{lh}")
        bic = quantize(imresize(quantize(_match_channels(lr, hr), depth), size=(h, w)), depth)
        return _label(f"bicubic of LR {lr_file.name}", bic, hr, protocol, depth), bic
    s = protocol.scale
    if not s or min(hr.shape[-2:]) < 2 * s:
        return None
    bic = quantize(imresize(benchmark_lr(modcrop(hr, s), s, bit_depth=depth), size=tuple(hr.shape[-2:])), depth)
    return _label("bicubic of GT downscaled", bic, hr, protocol, depth), bic


def grid_rows_pairs(
    picks: Sequence[ImageResult],
    protocol: Protocol,
    *,
    modcrop_gt: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    lr: Mapping[str, Path] | None = None,
) -> list[GridRow]:
    """Grid rows for paired files: bicubic | SR | HR.

    Args:
        lr: image name -> the LR file the SR image was made from (``evaluate --grid --lr``): its bicubic
            upscale is the first panel. Without it the first panel is the ground truth downscaled by the
            scale and upscaled again, labelled "bicubic of GT downscaled" (none when the scale is unknown);
            for an SR image of a degraded input that is not what the model started from.

    Raises:
        ImageError: an LR file not smaller than its ground truth; unreadable images.
    """
    rows = []
    for pick, tag in zip(picks, ("worst", "best"), strict=False):
        if pick.sr_path is None or pick.gt_path is None:
            raise ConfigError(f"{pick.image}: no file paths recorded")
        sr_img = read_image(pick.sr_path, max_pixels=max_pixels)
        gt_img = read_image(pick.gt_path, max_pixels=max_pixels)
        sr = sr_img.pixels
        gt = gt_img.pixels[..., : sr.shape[-2], : sr.shape[-1]] if modcrop_gt else gt_img.pixels
        depth = 8 if 8 in (sr_img.bit_depth, gt_img.bit_depth) else 16
        sr, hr = quantize(_match_channels(sr, gt), depth), quantize(gt, depth)
        bicubic = _bicubic_panel(hr, protocol, depth, lr[pick.image] if lr is not None else None, max_pixels)
        panels = [bicubic] if bicubic is not None else []
        panels += [(_label(f"SR {pick.sr_path.name}", sr, hr, protocol, depth), sr), ("HR (ground truth)", hr)]
        rows.append(GridRow(title=f"{tag}: {pick.image}", panels=panels))
    return rows
