"""Shared command-line options: ``Annotated`` aliases every subcommand can reuse.

Closed choices are ``str`` enums; open values are checked in callbacks that raise
``typer.BadParameter`` (a usage error, exit code 2). Help texts avoid square brackets,
which rich markup would swallow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .._defaults import DEFAULT_MAX_PIXELS, AlphaMode, Precision, parse_device
from ..errors import ConfigError, UnknownModelError

__all__ = [
    "AlphaMode",
    "DenoiseOpt",
    "DeviceOpt",
    "ImageFormat",
    "MaxPixelsOpt",
    "ModelOpt",
    "OutputDirOpt",
    "OverlapOpt",
    "Precision",
    "PrecisionOpt",
    "QuietOpt",
    "ScaleOpt",
    "SelfEnsembleOpt",
    "TileOpt",
    "WeightsOpt",
    "check_device",
    "usage_errors",
]


class ImageFormat(StrEnum):
    same = "same"
    png = "png"
    jpg = "jpg"
    webp = "webp"
    tiff = "tiff"


def check_device(value: str) -> str:
    """Option callback: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (:func:`sruscale.device.parse_device`)."""
    try:
        return parse_device(value)
    except ConfigError:
        raise typer.BadParameter(f"expected auto, cpu, cuda, cuda:N or mps, got {value.strip().lower()!r}") from None


@contextmanager
def usage_errors(ctx: typer.Context, param_hint: str | None = None) -> Iterator[None]:
    """Turn library errors about option values (ConfigError, UnknownModelError) into usage errors (exit 2)."""
    try:
        yield
    except (ConfigError, UnknownModelError) as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param_hint=param_hint) from None


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Architecture (fsrcnn, espcn, bicubic, ...), bundled weights name (e.g. fsrcnn-x2), pretrained network "
        "of an installed registry package (span-x4, realesrgan-x4plus: the pretrained extra), alias (best, fast) or "
        "model family for noisy, compressed photos (realworld, realworld-gan); `sruscale models` lists them. "
        "Default: the best available model for the scale, or the next larger scale followed by a downscale (above "
        "the largest: an enlargement); bicubic interpolation only when asked for (--model bicubic).",
        show_default=False,
    ),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        "-w",
        help="A weights file: .safetensors written by sruscale, a training checkpoint iter_*.pt (its EMA weights), "
        "an authors' EDSR/RCAN .pt, a bare state dict with --model ARCH --scale S, an ncnn model.param (its .bin "
        "beside it), or a community model file (ESRGAN, SwinIR, HAT, ...: needs the community extra).",
        dir_okay=False,
        show_default=False,
    ),
]
DenoiseOpt = Annotated[
    float | None,
    typer.Option(
        "--denoise",
        min=0.0,
        max=1.0,
        help="Denoise strength of --model realworld, 0..1: 0 keeps fine grain and texture (light model), "
        "1 removes strong noise and JPEG artefacts (strong model); values between interpolate the two "
        "networks' weights. Default 0.75.",
        show_default=False,
    ),
]
ScaleOpt = Annotated[
    int | None,
    typer.Option(
        "--scale",
        "-s",
        min=1,
        max=16,
        help="Upscaling factor. Default: 4, or the scale of --weights / a bundled name.",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        "-d",
        callback=check_device,
        help="auto, cpu, cuda, cuda:N or mps. auto = CUDA if present (cuda:LOCAL_RANK under torchrun), else cpu.",
    ),
]
TileOpt = Annotated[
    int | None,
    typer.Option(
        "--tile",
        "-t",
        min=0,
        help="Tile size in input pixels; 0 disables tiling. Default: auto (from free memory).",
        show_default=False,
    ),
]
OverlapOpt = Annotated[
    int | None,
    typer.Option(
        "--overlap",
        min=0,
        help="Tile overlap in input pixels. Default: twice the model's receptive field, "
        "so tiled output equals untiled output.",
        show_default=False,
    ),
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        "--precision",
        "-p",
        help="Inference precision; auto = fp16/bf16 on CUDA only, fp32 elsewhere.",
        case_sensitive=False,
    ),
]
SelfEnsembleOpt = Annotated[
    bool,
    typer.Option("--self-ensemble", help="Average the 8 flips/rotations (8x slower, slightly better)."),
]
MaxPixelsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-pixels",
        min=1,
        help=f"Refuse inputs with more pixels than this (decompression-bomb guard). Default: {DEFAULT_MAX_PIXELS}.",
        show_default=False,
    ),
]
RecursiveOpt = Annotated[
    bool,
    typer.Option("--recursive", "-r", help="Descend into subfolders of folder inputs (kept in the output names)."),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress bar and no summary; errors still go to stderr."),
]
OutputDirOpt = Annotated[
    Path,
    typer.Option("--output", "-o", help="Output folder (created if missing).", file_okay=False, show_default=False),
]
