"""The recipe: frozen dataclasses parsed from TOML, command-line overrides, the learning-rate schedule.

:func:`load_recipe` / :func:`parse_config` turn a TOML document into a :class:`TrainConfig`,
rejecting unknown keys and wrong types with a :class:`~sruscale.errors.ConfigError` that names
the key path (``optim.lrr: unknown key (did you mean 'lr'?)``); :func:`lr_at` is the learning
rate as a pure function of the iteration.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._config import parse_dataclass as _parse_dataclass
from ..errors import ConfigError, UnknownModelError
from ..losses import AdversarialTerm, FrequencyTerm, LossTerm, parse_losses
from ..models import get_model_class
from ..models._hparams import check_hparams

__all__ = [
    "CheckpointConfig",
    "DataConfig",
    "GANConfig",
    "LogConfig",
    "ModelConfig",
    "OVERRIDES",
    "OptimConfig",
    "OverrideError",
    "ProgressiveConfig",
    "ScheduleConfig",
    "TrainConfig",
    "ValConfig",
    "config_to_dict",
    "resolve_data_root",
    "project_root",
    "load_recipe",
    "lr_at",
    "parse_config",
    "with_overrides",
]

@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: registry name, scale, hyperparameters, optional starting weights."""

    name: str
    scale: int
    hparams: dict[str, Any] = field(default_factory=dict)
    #: weights file to start from (e.g. a pixel-loss pretrained generator for GAN training); "" = none
    init_weights: str = ""
    #: start from ``init_weights`` as it describes itself and load only the tensors that fit; the
    #: rest keep their initialisation (a shallower or narrower folded PlainSR of the same image
    #: channels gets identity layers or new channels, see :meth:`SRModel.init_from`). A file of
    #: another scale is always taken this way. The log lists what was copied and what is new
    init_partial: bool = False


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: training images. Relative folders resolve against the data root."""

    #: HR folders
    train_hr: tuple[str, ...]
    #: paired LR folders (one per HR folder, files matched by stem, see ``sruscale.data.load_pairs``);
    #: empty = degrade HR on the fly
    train_lr: tuple[str, ...] = ()
    #: "bicubic" (MATLAB imresize + 8-bit rounding, precomputed), a degradations preset name, a
    #: pipeline table for ``sruscale.degradations.Pipeline.from_dict``, or a pipeline ``.toml`` file
    #: (what ``sruscale degrade --pipeline`` reads), relative to the project root like ``init_weights``,
    #: not ``--data-root``: :func:`load_recipe` inlines it as the table
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
    #: distillation: a model name (``span-x4``) whose output on each training LR image is blended into
    #: the target, ``(1 - teacher_weight) * HR + teacher_weight * teacher``, rounded to 8 bits; computed
    #: once per image and cached in the run folder's ``teacher/`` (an interrupted run resumes it). The LR
    #: is the bicubic one, the paired ``train_lr`` file, or, with a degradation pipeline, fixed LR images
    #: made before training (``teacher_variants`` per HR image, seeded like ``sruscale degrade``)
    teacher: str = ""
    teacher_weight: float = 0.5
    #: the scale the teacher runs at (0 = the model's): ``span-x4`` as teacher of an x3 model, its output
    #: resized to x3 by MATLAB bicubic (``imresize(teacher_x4(LR), 3/4)``)
    teacher_scale: int = 0
    #: with a teacher and a degradation pipeline: LR images made per HR image, variant ``k`` seeded by
    #: ``(teacher_seed + k, file name)``, so variant 0 is the LR of ``sruscale degrade --seed teacher_seed``
    #: (byte for byte for 8-bit RGB files: the trainer degrades its 8-bit RGB copy of the HR)
    teacher_variants: int = 1
    teacher_seed: int = 0
    #: with a teacher: folders of unlabeled LR images (no HR), used as they are (``degradation`` does
    #: not apply; images held out by ``val.holdout`` and any smaller than the crop are left out); the
    #: target of each is the teacher's whole output (``teacher_weight`` does not apply), cached like the
    #: others. More inputs to learn the teacher from: your own photos, or the training HR folders themselves
    teacher_lr: tuple[str, ...] = ()
    #: each ``teacher_lr`` image is used once per factor here, reduced by MATLAB bicubic (modcropped,
    #: rounded to 8 bits; 1 = as it is): ``[2, 3]`` turns HR folders into LR inputs finer than the x4 LR
    teacher_lr_downscale: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class ValConfig:
    """``[val]``: periodic validation with the paper protocol (modcrop, bicubic LR, Y, crop = scale)."""

    #: HR folder; "" = no validation (unless ``holdout``)
    hr: str = ""
    #: paired LR folder; "" = LR made from HR by ``degradation``
    lr: str = ""
    #: how the LR is made from HR: "bicubic" (the protocol's LR), a preset name, a pipeline table or
    #: pipeline ``.toml`` file (inlined like ``data.degradation``), seeded per image by ``seed`` and the
    #: file name exactly as ``sruscale degrade --seed`` does, so the same LR files need not exist
    degradation: str | dict[str, Any] = "bicubic"
    seed: int = 0
    #: validate on this many images of ``data.train_hr`` (evenly spread by name) and train on the rest
    holdout: int = 0
    every: int = 1000
    #: score that selects best.safetensors
    metric: Literal["psnr", "ssim"] = "psnr"
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
    #: folder of the data paths (``data.train_hr``, ``data.train_lr``, ``data.teacher_lr``, ``val.hr``,
    #: ``val.lr``), relative to the project root; ``--data-root`` replaces it; "" = the project root
    data_root: str = ""
    #: "bf16" / "fp16" autocast (fp16 with a gradient scaler); meant for CUDA
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    #: exponential moving average of the weights (0 = off); validation and export use the EMA.
    #: Warmed up: the decay after iteration t is min(ema_decay, (1 + t) / (10 + t))
    ema_decay: float = 0.0
    description: str = ""
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    #: ``[[loss]]`` tables (``type``, ``weight``, ``name``, type keys), typed by ``sruscale.losses.parse_losses``
    loss: tuple[LossTerm, ...] = field(
        default_factory=lambda: parse_losses([{"type": "l1"}]), metadata={"parse": parse_losses}
    )
    val: ValConfig = ValConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    gan: GANConfig | None = None
    progressive: ProgressiveConfig | None = None


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
    weighted = [t for t in c.loss if t.weight > 0]
    adversarial = any(isinstance(t, AdversarialTerm) for t in weighted)
    if adversarial and c.gan is None:
        raise ConfigError("loss: an adversarial term needs a [gan] section (the discriminator)")
    if c.gan is not None and not adversarial:
        raise ConfigError('gan: needs a [[loss]] term with type = "adversarial"')
    crop = c.data.patch_size * c.model.scale
    for i, t in enumerate(c.loss):
        if isinstance(t, FrequencyTerm) and t.patch > crop:
            raise ConfigError(f"loss[{i}].patch: {t.patch} px tiles do not fit the HR crop "
                              f"(data.patch_size x scale = {crop} px): expected 0 or 2..{crop}")
    if c.gan is not None and c.progressive is not None:
        raise ConfigError("gan: adversarial training of progressive (pyramid) models is not supported")
    if c.gan is not None and c.gan.start > 0 and len(weighted) == 1:
        raise ConfigError(
            f"gan.start: {c.gan.start} iterations run before the adversarial term starts: "
            "expected a [[loss]] term besides it, got none"
        )
    _check_val(c)
    if c.data.teacher and c.data.train_lr and c.data.degradation != "bicubic":
        raise ConfigError("data.teacher: paired data.train_lr files and a data.degradation pipeline both give "
                          "the teacher's LR: expected one of them")
    if c.data.teacher_variants < 1:
        raise ConfigError(f"data.teacher_variants: expected a value >= 1, got {c.data.teacher_variants}")
    if c.data.teacher_seed < 0:
        raise ConfigError(f"data.teacher_seed: expected a value >= 0, got {c.data.teacher_seed}")
    fixed = bool(c.data.teacher) and c.data.degradation != "bicubic"
    if c.data.teacher_variants > 1 and not fixed:
        raise ConfigError(f"data.teacher_variants: {c.data.teacher_variants} LR variants per image need a teacher "
                          "and a degradation pipeline (the bicubic LR is one image)")
    if c.data.teacher_seed and not fixed:
        raise ConfigError(f"data.teacher_seed: {c.data.teacher_seed} seeds the teacher's degraded LR images: "
                          "expected a teacher and a degradation pipeline")
    if c.data.teacher_scale and not c.data.teacher:
        raise ConfigError(f"data.teacher_scale: {c.data.teacher_scale} is the scale a teacher runs at: "
                          "expected data.teacher")
    if c.data.teacher_scale < 0 or c.data.teacher_scale == 1:
        raise ConfigError(f"data.teacher_scale: expected 0 (the model's scale) or a factor >= 2, "
                          f"got {c.data.teacher_scale}")
    if c.data.teacher_lr and not c.data.teacher:
        raise ConfigError(f"data.teacher_lr: {len(c.data.teacher_lr)} folder(s) of unlabeled LR images need a "
                          "teacher for their targets: expected data.teacher")
    factors = list(c.data.teacher_lr_downscale)
    if not factors or min(factors) < 1 or len(set(factors)) != len(factors):
        raise ConfigError(f"data.teacher_lr_downscale: expected distinct factors >= 1, got {factors}")
    if factors != [1] and not c.data.teacher_lr:
        raise ConfigError(f"data.teacher_lr_downscale: {factors} reduces the images of data.teacher_lr: "
                          "expected data.teacher_lr folders")
    if not 0 <= c.data.teacher_weight <= 1:
        raise ConfigError(f"data.teacher_weight: expected a value in [0, 1], got {c.data.teacher_weight}")
    if list(c.schedule.milestones) != sorted(c.schedule.milestones):
        raise ConfigError(f"schedule.milestones: expected increasing iterations, got {list(c.schedule.milestones)}")
    _check_model(c.model)


def _check_val(c: TrainConfig) -> None:
    v = c.val
    if v.holdout < 0:
        raise ConfigError(f"val.holdout: expected a value >= 0, got {v.holdout}")
    if v.holdout and v.hr:
        raise ConfigError("val.holdout: validates on training images; expected no val.hr beside it")
    if v.holdout and c.data.train_lr:
        raise ConfigError("val.holdout: expected HR folders degraded on the fly, got data.train_lr")
    if v.holdout and v.lr:
        raise ConfigError("val.holdout: the held-out images' LR is made from them; expected no val.lr beside it")
    if v.lr and v.degradation != "bicubic":
        raise ConfigError("val.degradation: the LR comes from val.lr; expected one of the two")


def _check_model(m: ModelConfig) -> None:
    """The ``[model]`` section against the registry and the bounds weights files obey too
    (:func:`sruscale.models._hparams.check_hparams`), before anything is built."""
    try:
        cls = get_model_class(m.name)
    except UnknownModelError as exc:
        raise ConfigError(f"model.name: {exc}") from None
    try:
        cls.check_scale(m.scale)
    except ConfigError as exc:
        raise ConfigError(f"model.scale: {exc}") from None
    check_hparams(m.name, m.hparams, path="model.hparams")


def parse_config(data: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from a parsed TOML document.

    Raises:
        ConfigError: unknown key, wrong type, missing required key or out-of-range value; the
            message starts with the key path (``optim.lr: ...``).
    """
    config: TrainConfig = _parse_dataclass(TrainConfig, data, "")
    _check_ranges(config)
    return config


def load_recipe(path: str | os.PathLike[str], *, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read and parse a TOML recipe (see :class:`TrainConfig`).

    Args:
        path: the recipe file.
        overrides: values by key path (``{"optim.lr": 0.01}``, see :data:`OVERRIDES`) that replace
            the recipe's before the one validation, so a command-line value is checked exactly like
            the same value in the file; ``None`` values are ignored.

    Raises:
        OverrideError: an override value is invalid (its ``key`` names it; the message does not
            blame the file).
        ConfigError: the file is missing, is not valid TOML, or does not fit the schema.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read recipe ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: an integer too long to convert
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    try:
        return _inline_pipeline(_parse_with_overrides(data, overrides or {}), project_root(path))
    except OverrideError:
        raise
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _inline_pipeline(config: TrainConfig, root: Path) -> TrainConfig:
    """``config`` with ``data.degradation`` / ``val.degradation`` pipeline files (``*.toml``, relative
    to ``root``) replaced by their tables, so the run's config and model card hold the ops themselves."""
    from ..degradations import read_pipeline_table

    def inline(spec: str | dict[str, Any], key: str) -> str | dict[str, Any]:
        if not is_pipeline_file(spec):
            return spec
        try:
            return read_pipeline_table(_resolve_path(str(spec), root))
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None

    data = dataclasses.replace(config.data, degradation=inline(config.data.degradation, "data.degradation"))
    val = dataclasses.replace(config.val, degradation=inline(config.val.degradation, "val.degradation"))
    return dataclasses.replace(config, data=data, val=val)


def is_pipeline_file(spec: object) -> bool:
    """``data.degradation`` names a pipeline ``.toml`` file (inlined by :func:`load_recipe`)."""
    return isinstance(spec, str) and spec.endswith(".toml")


#: the command-line overrides of ``sruscale train``: keyword of :func:`with_overrides` -> key path
OVERRIDES: dict[str, str] = {
    "iterations": "iterations",
    "batch_size": "data.batch_size",
    "lr": "optim.lr",
    "patch_size": "data.patch_size",
    "workers": "data.workers",
}


class OverrideError(ConfigError):
    """An override value (command line) that the recipe validator refuses; ``key`` is its key path."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


def _parse_with_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> TrainConfig:
    """:func:`parse_config` of ``data`` with ``overrides`` (key path -> value; None = keep) set in a copy.

    Raises:
        OverrideError: the error is at an overridden key (messages start with the key path).
        ConfigError: any other error of the recipe.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    merged = copy.deepcopy(data)
    for path, value in given.items():
        *sections, key = path.split(".")
        table = merged
        for name in sections:
            table = table.setdefault(name, {})
            if not isinstance(table, dict):  # the recipe's own error (a section that is not a table)
                return parse_config(merged)
        table[key] = value
    try:
        return parse_config(merged)
    except ConfigError as exc:
        culprit = next((k for k in given if str(exc).startswith(f"{k}:")), None)
        if culprit is None:
            raise
        raise OverrideError(str(exc), key=culprit) from None


def with_overrides(
    config: TrainConfig,
    *,
    iterations: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    patch_size: int | None = None,
    workers: int | None = None,
) -> TrainConfig:
    """A copy of ``config`` with the common command-line overrides applied (``None`` = keep),
    validated by the recipe's validator (:func:`parse_config`) like the same values in a recipe.

    Raises:
        OverrideError: an invalid value (``key`` names it: ``optim.lr: expected a finite number, got inf``).
    """
    values = {"iterations": iterations, "batch_size": batch_size, "lr": lr, "patch_size": patch_size,
              "workers": workers}  # fmt: skip
    return _parse_with_overrides(config_to_dict(config), {OVERRIDES[k]: v for k, v in values.items()})


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


# --------------------------------------------------------------------------- paths


def _resolve_path(p: str, root: Path) -> Path:
    path = Path(os.path.expanduser(p))
    return path if path.is_absolute() else (root / path).resolve()


def project_root(recipe_path: str | os.PathLike[str] | None) -> Path:
    """The project root: the nearest ancestor of the recipe holding ``pyproject.toml`` (else the CWD).
    ``model.init_weights`` and pipeline files resolve against it."""
    if recipe_path is not None:
        for parent in Path(recipe_path).resolve().parents:
            if (parent / "pyproject.toml").is_file():
                return parent
    return Path.cwd()


def resolve_data_root(config: TrainConfig, project: Path, given: str | os.PathLike[str] | None = None) -> Path:
    """The folder the data paths resolve against: ``given`` (``--data-root``, the data folder
    itself), else the recipe's ``data_root`` relative to ``project``, else ``project``."""
    if given is not None:
        return Path(os.path.expanduser(given)).resolve()
    return _resolve_path(config.data_root, project) if config.data_root else project
