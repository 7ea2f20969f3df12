"""Training: a typed recipe (frozen dataclasses parsed from TOML) and ``fit()``, one readable loop.

The recipe is a TOML file; :func:`load_recipe` parses it into :class:`TrainConfig`, rejecting
unknown keys and wrong types with a :class:`~sruscale.errors.ConfigError` that names the key
path (``optim.lrr: unknown key (did you mean 'lr'?)``). :func:`fit` trains for a number of
iterations (not epochs); the learning rate is a pure function of the iteration
(:func:`lr_at`), batches are a pure function of ``(seed, rank, iteration)``
(:class:`sruscale.data.PatchBatches`), so ``--resume`` continues bit for bit.

Output folder layout (``out_dir``)::

    recipe.toml            the recipe as given (copied at the first start)
    config.json            the resolved config (after command-line overrides)
    train.csv, val.csv     one row per log interval / validation
    log.jsonl              every event (train, val, checkpoint, skip, end) as JSON lines
    checkpoints/iter_XXXXXXXX.pt   full training state, atomic, the last ``checkpoint.keep`` kept
    last.safetensors       latest weights (EMA when enabled) + model card, at every checkpoint
    best.safetensors       weights with the best validation score + model card
    tb/                    TensorBoard events (when tensorboard is installed)
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import difflib
import inspect
import json
import logging
import math
import os
import random
import signal
import sys
import time
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._fs import atomic_write
from .checkpoint import load_model_file, load_state_into, save_model
from .color import rgb_to_y
from .data import ImagePair, PatchBatches, bicubic_lr, list_images, load_pairs, load_rgb, modcrop, to_y
from .device import resolve_device
from .distributed import DistInfo, dist_info, init_process_group
from .errors import CheckpointError, ConfigError
from .models import SRModel, create_model, get_model_class
from .resize import imresize

__all__ = [
    "CheckpointConfig",
    "DataConfig",
    "FitResult",
    "GANConfig",
    "LogConfig",
    "ModelConfig",
    "OptimConfig",
    "ProgressiveConfig",
    "ScheduleConfig",
    "TrainConfig",
    "ValConfig",
    "fit",
    "load_recipe",
    "load_val_images",
    "lr_at",
    "parse_config",
    "validate",
    "with_overrides",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sruscale-train"
CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: registry name, scale, hyperparameters, optional starting weights."""

    name: str
    scale: int
    hparams: dict[str, Any] = field(default_factory=dict)
    #: weights file to start from (e.g. a pixel-loss pretrained generator for GAN training); "" = none
    init_weights: str = ""


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: training images. Relative folders resolve against the data root."""

    #: HR folders
    train_hr: tuple[str, ...]
    #: paired LR folders (one per HR folder, matched by sorted file order); empty = degrade HR on the fly
    train_lr: tuple[str, ...] = ()
    #: "bicubic" (MATLAB imresize + 8-bit rounding, precomputed), a degradations preset name, or a
    #: pipeline table for ``sruscale.degradations.Pipeline.from_dict``
    degradation: str | dict[str, Any] = "bicubic"
    #: "auto": Y when the model has in_channels = 1, else RGB
    color: Literal["auto", "y", "rgb"] = "auto"
    #: LR crop side (HR crop = patch_size * scale)
    patch_size: int = 48
    #: samples per process and iteration
    batch_size: int = 16
    flip: bool = True
    rot90: bool = True
    #: DataLoader worker processes (0 = build batches in the training process)
    workers: int = 0


@dataclass(frozen=True)
class ValConfig:
    """``[val]``: periodic validation with the paper protocol (modcrop, bicubic LR, Y, crop = scale)."""

    #: HR folder; "" = no validation
    hr: str = ""
    #: paired LR folder; "" = bicubic LR from HR
    lr: str = ""
    every: int = 1000
    #: score that selects best.safetensors
    metric: Literal["psnr_y", "ssim_y"] = "psnr_y"
    #: use only the first N images (0 = all)
    max_images: int = 0


@dataclass(frozen=True)
class OptimConfig:
    """``[optim]``: optimizer of the SR network."""

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    #: max gradient norm (0 = no clipping)
    grad_clip: float = 0.0


@dataclass(frozen=True)
class ScheduleConfig:
    """``[schedule]``: learning rate as a function of the iteration, see :func:`lr_at`."""

    name: Literal["constant", "cosine", "multistep"] = "constant"
    #: linear warmup iterations from 0 to ``optim.lr``
    warmup: int = 0
    #: final learning rate of the cosine schedule
    min_lr: float = 0.0
    #: multistep: iterations where the learning rate is multiplied by ``gamma``
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5


@dataclass(frozen=True)
class CheckpointConfig:
    """``[checkpoint]``: cadence and retention of full training states."""

    every: int = 1000
    keep: int = 3


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: cadence of train.csv / log.jsonl rows and progress updates."""

    every: int = 10
    tensorboard: bool = True


@dataclass(frozen=True)
class GANConfig:
    """``[gan]``: adversarial training (generator = the SR model); the ``[[loss]]`` list must hold
    one ``type = "adversarial"`` term (its ``kind`` and ``weight``)."""

    #: discriminator table for ``sruscale.losses.build_discriminator`` (``in_channels`` defaults
    #: to the model's channels)
    discriminator: dict[str, Any] = field(default_factory=lambda: {"type": "vgg"})
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    #: generator-only iterations before the adversarial term starts
    start: int = 0


@dataclass(frozen=True)
class ProgressiveConfig:
    """``[progressive]``: per-level losses on ``model.forward_pyramid`` and a curriculum."""

    #: weight of each pyramid level, coarsest first (empty = 1 for every level)
    level_weights: tuple[float, ...] = ()
    #: iteration at which levels 2, 3, ... join the loss (empty = all levels from the start)
    curriculum: tuple[int, ...] = ()
    #: iterations over which a newly added level fades in (ProSR's blend; 0 = at once)
    blend: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """A whole training recipe. TOML: top-level keys first, then one table per section."""

    model: ModelConfig
    data: DataConfig
    iterations: int
    seed: int = 0
    #: "bf16" / "fp16" autocast (fp16 with a gradient scaler); meant for CUDA
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    #: exponential moving average of the weights (0 = off); validation and export use the EMA
    ema_decay: float = 0.0
    description: str = ""
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    #: ``[[loss]]`` tables for ``sruscale.losses.build_loss`` (``type``, ``weight``, ``name``, type keys)
    loss: tuple[dict[str, Any], ...] = ({"type": "l1"},)
    val: ValConfig = ValConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    gan: GANConfig | None = None
    progressive: ProgressiveConfig | None = None


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "table"
    if origin is tuple:
        return "array"
    if origin is dict:
        return "table"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` (parsed TOML) against the annotation ``tp``; return the typed value."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    def bad() -> ConfigError:
        shown = repr(value) if not isinstance(value, dict) else "a table"
        return ConfigError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {shown}")

    if tp is Any:
        return value
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise ConfigError(f"{path}: expected one of {', '.join(repr(a) for a in args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own (more precise) error
            return _convert(value, options[0], path)
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, path)
            except ConfigError:
                continue
        raise bad()
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return _parse_dataclass(tp, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected an array of {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        return copy.deepcopy(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {path}")  # pragma: no cover - programming error


def _parse_dataclass(cls: Any, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            hint = difflib.get_close_matches(key, list(fields), n=1)
            raise ConfigError(f"{path}: unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        kwargs[key] = _convert(value, hints[key], path)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            path = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{path}: required key missing")
    return cls(**kwargs)


def _check_ranges(c: TrainConfig) -> None:
    positive = {
        "iterations": c.iterations,
        "model.scale": c.model.scale,
        "data.patch_size": c.data.patch_size,
        "data.batch_size": c.data.batch_size,
        "val.every": c.val.every,
        "checkpoint.every": c.checkpoint.every,
        "checkpoint.keep": c.checkpoint.keep,
        "log.every": c.log.every,
        "optim.lr": c.optim.lr,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{key}: expected a positive value, got {value}")
    non_negative = {
        "data.workers": c.data.workers,
        "schedule.warmup": c.schedule.warmup,
        "schedule.min_lr": c.schedule.min_lr,
        "optim.grad_clip": c.optim.grad_clip,
        "optim.weight_decay": c.optim.weight_decay,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key}: expected a value >= 0, got {value}")
    if not 0 <= c.ema_decay < 1:
        raise ConfigError(f"ema_decay: expected a value in [0, 1), got {c.ema_decay}")
    if not c.data.train_hr:
        raise ConfigError("data.train_hr: expected at least one folder")
    if c.data.train_lr and len(c.data.train_lr) != len(c.data.train_hr):
        raise ConfigError(
            f"data.train_lr: expected one folder per data.train_hr folder ({len(c.data.train_hr)}), "
            f"got {len(c.data.train_lr)}"
        )
    if not c.loss:
        raise ConfigError("loss: expected at least one [[loss]] term")
    if list(c.schedule.milestones) != sorted(c.schedule.milestones):
        raise ConfigError(f"schedule.milestones: expected increasing iterations, got {list(c.schedule.milestones)}")


def parse_config(data: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from a parsed TOML document.

    Raises:
        ConfigError: unknown key, wrong type, missing required key or out-of-range value; the
            message starts with the key path (``optim.lr: ...``).
    """
    config: TrainConfig = _parse_dataclass(TrainConfig, data, "")
    _check_ranges(config)
    return config


def load_recipe(path: str | os.PathLike[str]) -> TrainConfig:
    """Read and parse a TOML recipe (see :class:`TrainConfig`).

    Raises:
        ConfigError: the file is missing, is not valid TOML, or does not fit the schema.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read recipe ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def with_overrides(
    config: TrainConfig,
    *,
    iterations: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    patch_size: int | None = None,
    workers: int | None = None,
) -> TrainConfig:
    """A copy of ``config`` with the common command-line overrides applied (``None`` = keep)."""
    data, optim = config.data, config.optim
    if batch_size is not None:
        data = dataclasses.replace(data, batch_size=batch_size)
    if patch_size is not None:
        data = dataclasses.replace(data, patch_size=patch_size)
    if workers is not None:
        data = dataclasses.replace(data, workers=workers)
    if lr is not None:
        optim = dataclasses.replace(optim, lr=lr)
    out = dataclasses.replace(
        config, data=data, optim=optim, iterations=config.iterations if iterations is None else iterations
    )
    _check_ranges(out)
    return out


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON-ready dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


# --------------------------------------------------------------------------- schedule


def lr_at(iteration: int, config: TrainConfig) -> float:
    """Learning rate of the step that starts after ``iteration`` completed iterations.

    Linear warmup over ``schedule.warmup`` steps (``lr * (i + 1) / warmup``), then
    ``constant``, ``multistep`` (``lr * gamma ** #(milestones <= i)``) or ``cosine`` from ``lr``
    at the end of warmup to ``min_lr`` at ``iterations``.
    """
    s, base = config.schedule, config.optim.lr
    if iteration < s.warmup:
        return base * (iteration + 1) / s.warmup
    if s.name == "multistep":
        return base * s.gamma ** sum(iteration >= m for m in s.milestones)
    if s.name == "cosine":
        span = max(1, config.iterations - s.warmup)
        t = min(1.0, (iteration - s.warmup) / span)
        return s.min_lr + (base - s.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
    return base


# --------------------------------------------------------------------------- losses


def _build_losses(config: TrainConfig, backbone_weights: str | os.PathLike[str] | None) -> tuple[Any, Any]:
    """The recipe's :class:`~sruscale.losses.CombinedLoss`, and the same without its adversarial
    term (used before ``gan.start`` and on the inner levels of a pyramid)."""
    from .losses import build_loss

    full = build_loss(list(config.loss), backbone_weights=backbone_weights, key="loss")
    if full.has_adversarial and config.gan is None:
        raise ConfigError("loss: an adversarial term needs a [gan] section (the discriminator)")
    if config.gan is not None and not full.has_adversarial:
        raise ConfigError('gan: needs a [[loss]] term with type = "adversarial"')
    if config.gan is not None and config.progressive is not None:
        raise ConfigError("gan: adversarial training of progressive (pyramid) models is not supported")
    plain = [t for t in config.loss if t.get("type") != "adversarial"]
    if not full.has_adversarial:
        return full, full
    if not plain:
        return full, None
    return full, build_loss(plain, backbone_weights=backbone_weights, key="loss")


# --------------------------------------------------------------------------- validation


def load_val_images(
    hr_dir: str | os.PathLike[str], *, scale: int, lr_dir: str | os.PathLike[str] = "", max_images: int = 0
) -> list[ImagePair]:
    """Validation pairs as ``uint8`` RGB: modcropped HR and LR = ``round(imresize(HR, 1/s))``
    (or the paired LR file)."""
    files = list_images(hr_dir)
    lr_files = list_images(lr_dir) if lr_dir else None
    if lr_files is not None and len(lr_files) != len(files):
        raise ConfigError(f"{lr_dir}: expected {len(files)} LR images to match {hr_dir}, got {len(lr_files)}")
    if max_images:
        files = files[:max_images]
    pairs = []
    for i, path in enumerate(files):
        hr = modcrop(load_rgb(path), scale)
        lr = load_rgb(lr_files[i]) if lr_files is not None else bicubic_lr(hr, scale)
        pairs.append(ImagePair(name=path.name, hr=hr, lr=lr))
    return pairs


def _to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    arr = np.require(img, requirements=["C", "W"])
    return torch.from_numpy(arr).permute(2, 0, 1)[None].to(device, torch.float32) / 255.0


def _run_padded(model: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
    """Run ``model`` on ``x`` padded (replicate) to its size requirements, cropped back."""
    m = getattr(model, "multiple_of", 1)
    minimum = getattr(model, "minimum", 1)
    h, w = x.shape[-2:]
    ph = max(minimum, math.ceil(h / m) * m) - h
    pw = max(minimum, math.ceil(w / m) * m) - w
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return model(x)[..., : h * scale, : w * scale]


def _psnr_255(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).square().mean().item()
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _ssim_y(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """SSIM of two ``(1, 1, H, W)`` Y planes on the 0..255 scale, via :mod:`sruscale.metrics` if present."""
    try:
        from .metrics import ssim  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        value = ssim(a / 255.0, b / 255.0, crop_border=0, y_channel=False, data_range=1.0)
    except TypeError:
        return None
    return float(value.mean().item())


@torch.no_grad()
def validate(
    model: nn.Module,
    pairs: Sequence[ImagePair],
    *,
    scale: int,
    color: Literal["y", "rgb"],
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Paper-protocol scores of ``model`` on ``pairs`` (from :func:`load_val_images`).

    The LR image is the 8-bit RGB bicubic downscale; a Y network gets its 8-bit Y plane
    (MATLAB ``rgb2ycbcr``), an RGB network the RGB image. The output is clamped and
    rounded to 8 bits; PSNR and SSIM are measured on Y (rounded to 8 bits) with ``scale``
    pixels cropped from each border, and averaged over the images.

    Returns:
        ``{"psnr_y": dB, "ssim_y": [0, 1]}`` (``ssim_y`` only when :mod:`sruscale.metrics` is available).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    psnrs: list[float] = []
    ssims: list[float] = []
    try:
        for pair in pairs:
            assert pair.lr is not None
            if color == "y":
                x = _to_tensor(to_y(pair.lr), device)
                target = torch.from_numpy(to_y(pair.hr)[..., 0]).double()
            else:
                x = _to_tensor(pair.lr, device)
                target = rgb_to_y(_to_tensor(pair.hr, torch.device("cpu")).double(), round_8bit=True)[0, 0] * 255
            sr = _run_padded(model, x, scale).float().clamp(0, 1).mul(255).round().cpu().double()
            sr_y = sr[0, 0] if color == "y" else rgb_to_y(sr / 255.0, round_8bit=True)[0, 0] * 255
            c = scale
            a, b = sr_y[c:-c, c:-c], target[c:-c, c:-c]
            psnrs.append(_psnr_255(a, b))
            s = _ssim_y(a[None, None], b[None, None])
            if s is not None:
                ssims.append(s)
    finally:
        model.train(was_training)
    out = {"psnr_y": float(np.mean(psnrs))}
    if ssims:
        out["ssim_y"] = float(np.mean(ssims))
    return out


# --------------------------------------------------------------------------- run state


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns."""

    #: completed iterations
    iteration: int
    #: True when ``iteration == config.iterations``
    complete: bool
    #: last validation scores (empty without validation)
    val: dict[str, float]
    #: best validation score and its iteration (None without validation)
    best: dict[str, float] | None
    last_weights: Path | None
    best_weights: Path | None
    checkpoint: Path | None
    #: steps skipped by the NaN/Inf guard
    skipped: int


def _resolve_device(device: str, d: DistInfo) -> torch.device:
    dev = resolve_device(device)
    if dev.type == "cuda":
        if d.is_distributed and dev.index is None:
            dev = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(dev)
    return dev


def _resolve_path(p: str, root: Path) -> Path:
    path = Path(os.path.expanduser(p))
    return path if path.is_absolute() else (root / path).resolve()


def default_data_root(recipe_path: str | os.PathLike[str] | None) -> Path:
    """The project root: the nearest ancestor of the recipe holding ``pyproject.toml`` (else the CWD)."""
    if recipe_path is not None:
        for parent in Path(recipe_path).resolve().parents:
            if (parent / "pyproject.toml").is_file():
                return parent
    return Path.cwd()


class _RunLog:
    """CSV + JSONL + optional TensorBoard logs, written by rank 0 only."""

    def __init__(self, out: Path, *, start: int, tensorboard: bool) -> None:
        self.out = out
        self.jsonl = out / "log.jsonl"
        for name in ("train.csv", "val.csv", "log.jsonl"):
            _truncate_after(out / name, start)
        self._csv_fields: dict[str, list[str]] = {}
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=start + 1 if start else None)
            except ImportError:
                self.tb = None

    def write(self, kind: str, record: dict[str, Any]) -> None:
        record = {"event": kind, "time": round(time.time(), 3), **record}
        with self.jsonl.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if kind in ("train", "val"):
            path = self.out / f"{kind}.csv"
            row = {k: v for k, v in record.items() if k != "event"}
            fields = self._csv_fields.get(kind)
            if fields is None:
                fields = _csv_header(path) or list(row)
                self._csv_fields[kind] = fields
            if any(k not in fields for k in row):  # a new column (curriculum level, GAN start): widen
                fields = fields + [k for k in row if k not in fields]
                self._csv_fields[kind] = fields
                _rewrite_csv(path, fields)
            new = not path.exists() or path.stat().st_size == 0
            with path.open("a", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
            if self.tb is not None:
                for k, v in row.items():
                    if k not in ("iter", "time") and isinstance(v, int | float):
                        self.tb.add_scalar(f"{kind}/{k}", v, record["iter"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _rewrite_csv(path: Path, fields: list[str]) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _csv_header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f), None)


def _truncate_after(path: Path, iteration: int) -> None:
    """Drop log rows written after ``iteration`` (a resumed run rewrites them)."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if path.suffix == ".jsonl":
        keep = [ln for ln in lines if json.loads(ln).get("iter", 0) <= iteration]
    else:
        if not lines:
            return
        col = next(csv.reader([lines[0]])).index("iter") if "iter" in lines[0] else 0
        keep = lines[:1] + [ln for ln in lines[1:] if int(next(csv.reader([ln]))[col]) <= iteration]
    if len(keep) != len(lines):
        path.write_text("".join(keep), encoding="utf-8")


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("iter_*.pt"))


def _save_state(out: Path, state: dict[str, Any], iteration: int, keep: int) -> Path:
    path = out / "checkpoints" / f"iter_{iteration:08d}.pt"
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
    for old in _checkpoints(out)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: cannot load training checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a sruscale training checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')}, expected {CHECKPOINT_VERSION}")
    return state


class _Pyramid(nn.Module):
    """Makes ``forward_pyramid`` the ``forward`` of a module, so DDP hooks see it.

    Models whose ``forward_pyramid`` takes ``max_level`` / ``blend`` (ProSR) run only the active
    levels, the newest faded in; others (LapSRN) run every level.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        params = inspect.signature(model.forward_pyramid).parameters  # type: ignore[operator]
        self.curriculum_aware = "max_level" in params and "blend" in params

    def forward(self, x: torch.Tensor, level: int, blend: float) -> list[torch.Tensor]:
        if self.curriculum_aware:
            return self.model.forward_pyramid(x, max_level=level, blend=blend)  # type: ignore[operator]
        return self.model.forward_pyramid(x)  # type: ignore[operator]


class _EMA:
    """Exponential moving average of a model's parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)


# --------------------------------------------------------------------------- steps


@dataclass
class _Parts:
    """Everything one training step needs (built once by :func:`fit`)."""

    model: nn.Module  # possibly DDP-wrapped
    loss: Any  # CombinedLoss
    plain_loss: Any  # CombinedLoss without the adversarial term (or None)
    optimizer: torch.optim.Optimizer
    scaler: Any
    autocast: Callable[[], Any]
    grad_clip: float
    progressive: ProgressiveConfig | None
    levels: int = 1
    disc: nn.Module | None = None
    disc_optimizer: torch.optim.Optimizer | None = None
    gan: GANConfig | None = None
    distributed: bool = False


def _curriculum(p: ProgressiveConfig, iteration: int, levels: int) -> tuple[int, float]:
    """Active pyramid levels at ``iteration`` and the blend weight of the newest one."""
    active = min(levels, 1 + sum(iteration >= c for c in p.curriculum))
    if active == 1 or p.blend <= 0:
        return active, 1.0
    since = iteration - p.curriculum[active - 2]
    return active, min(1.0, (since + 1) / p.blend)


def _loss_terms(parts: _Parts, sr: torch.Tensor | list[torch.Tensor], hr: torch.Tensor, iteration: int) -> tuple[
    torch.Tensor, dict[str, torch.Tensor], bool
]:
    """Total loss, its weighted components, and whether the adversarial term was used.

    For a pyramid (list of levels, coarsest first) every active level is compared with the
    HR resized to its size (MATLAB bicubic), weighted by ``progressive.level_weights``.
    """
    if isinstance(sr, list):
        p = parts.progressive or ProgressiveConfig()
        active, _ = _curriculum(p, iteration, parts.levels)
        total, terms = hr.new_zeros((), dtype=torch.float32), {}
        for level, out in enumerate(sr[:active]):
            target = hr if out.shape[-2:] == hr.shape[-2:] else imresize(hr, size=tuple(out.shape[-2:]))
            lw = p.level_weights[level] if level < len(p.level_weights) else 1.0
            t, level_terms = parts.loss(out.float(), target)
            total = total + lw * t
            terms.update({f"{k}@{level + 1}": lw * v for k, v in level_terms.items()})
        return total, terms, False
    gan_on = parts.disc is not None and parts.gan is not None and iteration >= parts.gan.start
    if parts.disc is not None and not gan_on:
        total, terms = parts.plain_loss(sr.float(), hr)
        return total, terms, False
    if gan_on:
        assert parts.disc is not None
        parts.disc.requires_grad_(False)
    total, terms = parts.loss(sr.float(), hr, disc=parts.disc)
    return total, terms, gan_on


def _train_step(parts: _Parts, lr: torch.Tensor, hr: torch.Tensor, iteration: int) -> dict[str, float]:
    """Forward, loss, backward, optional clip, step (then the discriminator step for GANs).

    Returns the weighted loss components (floats), ``loss`` (their sum), ``grad_norm`` and
    ``skipped`` (1.0 when the NaN/Inf guard dropped the step).
    """
    opt = parts.optimizer
    with parts.autocast():
        if parts.progressive is not None:  # a list of pyramid levels
            sr = parts.model(lr, *_curriculum(parts.progressive, iteration, parts.levels))
        else:
            sr = parts.model(lr)
        loss, terms, gan_on = _loss_terms(parts, sr, hr, iteration)
    opt.zero_grad(set_to_none=True)
    stats = {k: float(v) for k, v in terms.items()}
    stats["loss"] = float(loss.detach())
    if not math.isfinite(stats["loss"]):
        stats["skipped"] = 1.0
        return stats
    parts.scaler.scale(loss).backward() if parts.scaler is not None else loss.backward()
    if parts.scaler is not None:
        parts.scaler.unscale_(opt)
    params = [p for g in opt.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, parts.grad_clip if parts.grad_clip > 0 else float("inf"))
    if parts.scaler is None and not torch.isfinite(norm):
        opt.zero_grad(set_to_none=True)
        stats["skipped"] = 1.0
        return stats
    if parts.scaler is not None:
        parts.scaler.step(opt)
        parts.scaler.update()
    else:
        opt.step()
    stats["grad_norm"] = float(norm)
    stats["skipped"] = 0.0
    if gan_on:
        final = sr[-1] if isinstance(sr, list) else sr
        stats.update(_discriminator_step(parts, final.detach().float(), hr))
    return stats


def _discriminator_step(parts: _Parts, fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """One discriminator update on ``real`` HR and detached ``fake`` SR; skipped when non-finite."""
    assert parts.disc is not None and parts.disc_optimizer is not None
    parts.disc.requires_grad_(True)
    with parts.autocast():
        d_loss = parts.loss.discriminator_loss(parts.disc, real, fake)
    parts.disc_optimizer.zero_grad(set_to_none=True)
    value = float(d_loss.detach())
    if not math.isfinite(value):
        return {"d_loss": value, "d_skipped": 1.0}
    d_loss.backward()
    if parts.distributed:  # the discriminator is not DDP-wrapped: average its gradients by hand
        world = torch.distributed.get_world_size()
        for p in parts.disc.parameters():
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad.div_(world)
    parts.disc_optimizer.step()
    return {"d_loss": value}


# --------------------------------------------------------------------------- fit


def _batches(dataset: PatchBatches, start: int, stop: int, workers: int) -> Iterator[dict[str, torch.Tensor]]:
    if workers == 0:
        return (dataset[i] for i in range(start, stop))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=range(start, stop), num_workers=workers, persistent_workers=False,
        prefetch_factor=4,
    )
    return iter(loader)


def _color(config: TrainConfig) -> Literal["y", "rgb"]:
    if config.data.color != "auto":
        return config.data.color
    cls = get_model_class(config.model.name)
    in_ch = config.model.hparams.get("in_channels")
    if in_ch is None:
        in_ch = inspect.signature(cls.__init__).parameters.get("in_channels")
        in_ch = in_ch.default if in_ch is not None else 3
    return "y" if in_ch == 1 else "rgb"


def _make_degradation(spec: str | dict[str, Any], scale: int) -> Any:
    if spec == "bicubic":
        return None
    try:
        from .degradations import Pipeline  # type: ignore[attr-defined]
    except ImportError:
        raise ConfigError(f"data.degradation: {spec!r} needs sruscale.degradations, which is not available") from None
    try:
        return Pipeline.preset(spec, scale) if isinstance(spec, str) else Pipeline.from_dict(spec, scale=scale)
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise ConfigError(f"data.degradation: {exc}") from None


def _make_model(config: TrainConfig, root: Path) -> SRModel:
    m = config.model
    def tuples(v: Any) -> Any:  # TOML arrays -> the tuples the model signatures declare
        return tuple(tuples(x) for x in v) if isinstance(v, list) else v

    hparams = {k: tuples(v) for k, v in m.hparams.items()}
    try:
        model = create_model(m.name, scale=m.scale, **hparams)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: cannot build {m.name!r} x{m.scale} with {m.hparams}: {exc}") from None
    if m.init_weights:
        src = load_model_file(_resolve_path(m.init_weights, root))
        load_state_into(model, src.state_dict(), source=m.init_weights)
    return model


def _autocast_factory(precision: str, device: torch.device) -> Callable[[], Any]:
    if precision == "fp32":
        import contextlib

        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _build_gan(
    config: TrainConfig, device: torch.device, channels: int, backbone_weights: str | os.PathLike[str] | None
) -> tuple[nn.Module, torch.optim.Optimizer]:
    assert config.gan is not None
    from .losses import build_discriminator

    spec = {"in_channels": channels, **config.gan.discriminator}
    if spec.get("type") == "feature":
        spec.pop("in_channels")
    disc = build_discriminator(spec, backbone_weights=backbone_weights, key="gan.discriminator").to(device)
    opt = torch.optim.Adam(disc.parameters(), lr=config.gan.lr, betas=config.gan.betas)
    return disc, opt


def fit(
    config: TrainConfig,
    *,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    device: str = "auto",
    data_root: str | os.PathLike[str] | None = None,
    recipe_path: str | os.PathLike[str] | None = None,
    command: str | None = None,
    stop_at: int | None = None,
    backbone_weights: str | os.PathLike[str] | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``config.model`` for ``config.iterations`` iterations; write logs, checkpoints, weights.

    Args:
        config: the recipe (see :class:`TrainConfig`).
        out_dir: run folder (layout in the module docstring).
        resume: continue from the newest checkpoint in ``out_dir/checkpoints`` (model, EMA,
            optimizer, grad scaler, discriminator, RNG states, iteration); the schedule and the
            batches are functions of the iteration, so the continuation is exact.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``; under ``torchrun`` each rank uses
            its local GPU (or CPU with gloo).
        data_root: base of relative data paths (default: the project root of ``recipe_path``).
        recipe_path: the recipe file, recorded with its text in the model card.
        command: the command line, recorded in the model card.
        backbone_weights: torchvision-format classifier weights for perceptual/style losses and
            feature discriminators (default: the torch hub cache).
        stop_at: stop (with a checkpoint) after this many iterations although the schedule runs
            to ``config.iterations``. SIGINT/SIGTERM stop the same way at the end of the step.
        on_event: ``callback(kind, record)`` for progress display (rank 0): kinds ``start``,
            ``train``, ``val``, ``checkpoint``, ``skip``, ``end``.

    Returns:
        :class:`FitResult`.

    Raises:
        ConfigError: bad data folders, model hyperparameters, losses, devices.
        CheckpointError: ``resume`` without a checkpoint, or one that does not fit the config;
            a fresh run into a folder that already holds checkpoints.
    """
    out = Path(out_dir)
    d = dist_info()
    dev = _resolve_device(device, d)
    own_group = d.is_distributed and not torch.distributed.is_initialized()
    if d.is_distributed and not init_process_group(d, backend="nccl" if dev.type == "cuda" else "gloo"):
        raise ConfigError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: start with torchrun")
    root = Path(data_root) if data_root is not None else default_data_root(recipe_path)
    emit = on_event if (on_event is not None and d.is_main) else (lambda kind, rec: None)
    if not resume and _checkpoints(out):
        raise CheckpointError(f"{out} already holds checkpoints; pass --resume or choose another --out")
    ckpt_path = _checkpoints(out)[-1] if resume and _checkpoints(out) else None
    if resume and ckpt_path is None:
        raise CheckpointError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    scale, color = config.model.scale, _color(config)
    model = _make_model(config, root).to(dev).train()
    if model.in_channels != (1 if color == "y" else 3):
        raise ConfigError(f"data.color: {color!r} does not fit a model with in_channels={model.in_channels}")
    degradation = _make_degradation(config.data.degradation, scale)
    train_hr = [_resolve_path(p, root) for p in config.data.train_hr]
    train_lr = [_resolve_path(p, root) for p in config.data.train_lr]
    for key, paths in (("data.train_hr", train_hr), ("data.train_lr", train_lr)):
        for i, p in enumerate(paths):
            if not p.is_dir():
                raise ConfigError(
                    f"{key}[{i}]: folder not found: {p} (relative paths resolve against {root}; see --data-root)"
                )
    pairs = load_pairs(
        train_hr, scale=scale, color=color if degradation is None else "rgb", lr_dirs=train_lr,
        precompute_bicubic=degradation is None,
    )
    dataset = PatchBatches(
        pairs, scale=scale, patch_size=config.data.patch_size, batch_size=config.data.batch_size,
        seed=config.seed, rank=d.rank, flip=config.data.flip, rot90=config.data.rot90, color=color,
        degradation=degradation,
    )
    val_pairs: list[ImagePair] = []
    if config.val.hr and d.is_main:
        val_pairs = load_val_images(
            _resolve_path(config.val.hr, root), scale=scale, max_images=config.val.max_images,
            lr_dir=_resolve_path(config.val.lr, root) if config.val.lr else "",
        )
    if config.progressive is not None and not hasattr(model, "forward_pyramid"):
        raise ConfigError(f"progressive: model {config.model.name!r} has no forward_pyramid()")

    o = config.optim
    opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    ema = _EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    scaler = torch.amp.GradScaler(dev.type) if config.precision == "fp16" else None
    disc = disc_opt = None
    if config.gan is not None:
        disc, disc_opt = _build_gan(config, dev, model.in_channels, backbone_weights)
    loss, plain_loss = _build_losses(config, backbone_weights)
    loss = loss.to(dev)
    plain_loss = plain_loss.to(dev) if plain_loss is not None else None

    start, best, last_val = 0, None, {}
    if ckpt_path is not None:
        state = _load_state(ckpt_path)
        saved = state["config"]["model"]
        if (saved["name"], saved["scale"]) != (config.model.name, scale):
            raise CheckpointError(
                f"{ckpt_path}: holds {saved['name']} x{saved['scale']}, recipe asks {config.model.name} x{scale}"
            )
        load_state_into(model, state["model"], source=str(ckpt_path))
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            load_state_into(ema.model, state["ema"], source=f"{ckpt_path} (ema)")  # type: ignore[arg-type]
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if disc is not None and state.get("disc") is not None:
            disc.load_state_dict(state["disc"])
            assert disc_opt is not None
            disc_opt.load_state_dict(state["disc_optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        start, best, last_val = int(state["iteration"]), state.get("best"), state.get("val", {})

    wrapped: nn.Module = _Pyramid(model) if config.progressive is not None else model
    if d.is_distributed:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            wrapped, device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=config.progressive is not None,  # inactive pyramid levels
        )
    parts = _Parts(
        model=wrapped, loss=loss, plain_loss=plain_loss, optimizer=optimizer, scaler=scaler,
        autocast=_autocast_factory(config.precision, dev), grad_clip=o.grad_clip,
        progressive=config.progressive, levels=max(1, round(math.log2(scale))),
        disc=disc, disc_optimizer=disc_opt, gan=config.gan, distributed=d.is_distributed,
    )
    runlog = _RunLog(out, start=start, tensorboard=config.log.tensorboard) if d.is_main else None
    if d.is_main and recipe_path is not None and not (out / "recipe.toml").exists():
        (out / "recipe.toml").write_text(Path(recipe_path).read_text(encoding="utf-8"), encoding="utf-8")
    if d.is_main:
        (out / "config.json").write_text(json.dumps(config_to_dict(config), indent=2) + "\n", encoding="utf-8")

    def record(kind: str, rec: dict[str, Any]) -> None:
        if runlog is not None:
            runlog.write(kind, rec)
        emit(kind, rec)

    card_base = {
        "arch": config.model.name,
        "scale": scale,
        "hparams": config.model.hparams,
        "color": color,
        "data": {"train_hr": list(config.data.train_hr), "train_lr": list(config.data.train_lr),
                 "degradation": config.data.degradation, "val": config.val.hr},
        "recipe": {"path": str(recipe_path) if recipe_path else None,
                   "text": Path(recipe_path).read_text(encoding="utf-8") if recipe_path else None,
                   "config": config_to_dict(config)},
        "command": command,
        "ema": ema is not None,
    }

    def export(name: str, iteration: int) -> Path:
        card = {**card_base, "iterations": iteration, "validation": {"last": last_val, "best": best}}
        return save_model(ema.model if ema is not None else model, out / name, extra=card)  # type: ignore[arg-type]

    def checkpoint(iteration: int) -> Path:
        state = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "iteration": iteration,
            "config": config_to_dict(config), "model": model.state_dict(),
            "ema": ema.model.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
            "disc": disc.state_dict() if disc is not None else None,
            "disc_optimizer": disc_opt.state_dict() if disc_opt is not None else None,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "best": best, "val": last_val,
        }
        path = _save_state(out, state, iteration, config.checkpoint.keep)
        export("last.safetensors", iteration)
        record("checkpoint", {"iter": iteration, "path": str(path)})
        return path

    stop = _StopFlag()
    end = min(config.iterations, stop_at) if stop_at is not None else config.iterations
    emit("start", {"iter": start, "iterations": config.iterations, "end": end, "color": color,
                   "images": len(dataset.pairs), "device": str(dev), "world": d.world_size})
    skipped, ckpt, window, t0, done = 0, None, [], time.perf_counter(), start
    try:
        for it, batch in zip(range(start, end), _batches(dataset, start, end, config.data.workers), strict=False):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(it, config)
            stats = _train_step(parts, batch["lr"].to(dev), batch["hr"].to(dev), it)
            done = it + 1
            if stats.pop("skipped"):
                skipped += 1
                log.warning("iteration %d: non-finite loss or gradient (loss %s); step skipped", done, stats["loss"])
                record("skip", {"iter": done, "loss": stats["loss"]})
            elif ema is not None:
                ema.update(model)
            window.append(stats)
            if done % config.log.every == 0 or done == end:
                now = time.perf_counter()
                rec = {"iter": done, "lr": lr_at(it, config), "it_s": len(window) / max(now - t0, 1e-9)}
                rec.update({k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]})
                window, t0 = [], now
                record("train", rec)
            if val_pairs and (done % config.val.every == 0 or done == end):
                last_val = validate(ema.model if ema else model, val_pairs, scale=scale, color=color, device=dev)
                score = last_val.get(config.val.metric, -math.inf)
                if best is None or score > best["score"]:
                    best = {"score": score, "iter": done, **last_val}
                    export("best.safetensors", done)
                record("val", {"iter": done, **last_val, "best": best["score"]})
                t0 = time.perf_counter()  # validation time is not training speed
            if done % config.checkpoint.every == 0 and d.is_main:
                ckpt = checkpoint(done)
            if stop.check(d, dev):
                break
    finally:
        stop.restore()
    if d.is_main and done > start and (ckpt is None or ckpt.name != f"iter_{done:08d}.pt"):
        ckpt = checkpoint(done)
    elif ckpt is None and _checkpoints(out):
        ckpt = _checkpoints(out)[-1]
    result = FitResult(
        iteration=done, complete=done >= config.iterations, val=last_val, best=best,
        last_weights=out / "last.safetensors" if (out / "last.safetensors").exists() else None,
        best_weights=out / "best.safetensors" if best is not None else None, checkpoint=ckpt, skipped=skipped,
    )
    record("end", {"iter": done, "complete": result.complete, "skipped": skipped})
    if runlog is not None:
        runlog.close()
    if d.is_distributed:
        torch.distributed.barrier()
        if own_group:
            torch.distributed.destroy_process_group()
    return result


class _StopFlag:
    """SIGINT/SIGTERM set a flag checked at the end of each step (a second SIGINT interrupts)."""

    def __init__(self, *, install: bool = True) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}
        if install and sys.platform != "win32":
            import threading

            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested (signal %d): saving a checkpoint after this step", signum)

    def check(self, d: DistInfo, device: torch.device) -> bool:
        if not d.is_distributed:
            return self.requested
        import torch.distributed as dist

        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        dist.all_reduce(flag)
        return bool(flag.item() > 0)

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()
