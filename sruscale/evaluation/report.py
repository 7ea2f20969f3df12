"""Reporting evaluation results: the run record (JSON / CSV), tables, the comparison grid."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from rich.markup import escape
from rich.table import Table

from .._fs import atomic_write
from ..errors import ConfigError
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
        the protocol columns repeat on every row so each row stands alone."""
        buf = io.StringIO()
        proto = self.protocol
        head = ["dataset", "image", *proto.metrics, "model", "scale", "protocol", "y_channel", "crop_border"]
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(head)
        tail = [self.model or "", proto.scale or "", proto.name, proto.y_channel, proto.crop_border]
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


def dataset_table(results: Sequence[DatasetResult], protocol: Protocol, title: str) -> Table:
    """One row per dataset: image count and the mean of each metric (``title`` is rich markup)."""
    t = Table(title=title, caption=protocol.describe(), title_justify="left", caption_justify="left")
    t.add_column("dataset")
    t.add_column("images", justify="right")
    for m in protocol.metrics:
        t.add_column(METRICS[m].label or m.upper(), justify="right")
    for d in results:
        t.add_row(escape(d.name), str(len(d.images)), *(_fmt(m, d.mean(m)) for m in protocol.metrics))
    return t


def image_table(d: DatasetResult, protocol: Protocol) -> Table:
    """One row per image of ``d``."""
    t = Table(title=f"{escape(d.name) or 'images'}: per image", title_justify="left")
    t.add_column("image")
    for m in protocol.metrics:
        t.add_column(m.upper(), justify="right")
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
        sr_img = read_image(pick.sr_path, max_pixels=max_pixels)
        gt_img = read_image(pick.gt_path, max_pixels=max_pixels)
        sr = sr_img.pixels
        gt = gt_img.pixels[..., : sr.shape[-2], : sr.shape[-1]] if modcrop_gt else gt_img.pixels
        depth = 8 if 8 in (sr_img.bit_depth, gt_img.bit_depth) else 16
        sr, hr = quantize(_match_channels(sr, gt), depth), quantize(gt, depth)
        panels = []
        s = protocol.scale
        if s and min(hr.shape[-2:]) >= 2 * s:
            lr = benchmark_lr(modcrop(hr, s), s, bit_depth=depth)
            bic = quantize(imresize(lr, size=(hr.shape[-2], hr.shape[-1])), depth)
            panels.append((_label("bicubic (from GT)", bic, hr, protocol, depth), bic))
        panels += [(_label(f"SR {pick.sr_path.name}", sr, hr, protocol, depth), sr), ("HR (ground truth)", hr)]
        rows.append(GridRow(title=f"{tag}: {pick.image}", panels=panels))
    return rows
