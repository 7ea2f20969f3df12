"""Building the parts of a run from its config: device, model, data, discriminator, autocast."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..data import PatchBatches, load_pairs
from ..degradations import Pipeline
from ..device import resolve_device
from ..distributed import DistInfo
from ..errors import ConfigError
from ..evaluation.protocol import BenchmarkImage
from ..models import SRModel, create_model, get_model_class
from ..models._hparams import check_hparams
from ..weights._checkpoint import load_state_into
from ..weights._resolve import build, resolve
from .config import TrainConfig, _resolve_path, is_pipeline_file
from .steps import _Pyramid
from .validation import load_val_images

log = logging.getLogger(__name__)

def _resolve_device(device: str, d: DistInfo) -> torch.device:
    dev = resolve_device(device, local_rank=d.local_rank if d.is_distributed else None)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def _color(config: TrainConfig) -> Literal["y", "rgb"]:
    if config.data.color != "auto":
        return config.data.color
    cls = get_model_class(config.model.name)
    in_ch = config.model.hparams.get("in_channels")
    if in_ch is None:
        in_ch = inspect.signature(cls.__init__).parameters.get("in_channels")
        in_ch = in_ch.default if in_ch is not None else 3
    return "y" if in_ch == 1 else "rgb"


def _make_degradation(spec: str | dict[str, Any], scale: int) -> Pipeline | None:
    if spec == "bicubic":
        return None
    if is_pipeline_file(spec):  # load_recipe inlines these; a config built in code cannot
        raise ConfigError(
            f"data.degradation: pipeline file {spec!r} was not read: load the recipe with load_recipe(), "
            "or pass the table (Pipeline file contents) itself"
        )
    try:
        return Pipeline.preset(spec, scale) if isinstance(spec, str) else Pipeline.from_dict(spec, scale=scale)
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise ConfigError(f"data.degradation: {exc}") from None


def _make_model(config: TrainConfig, root: Path) -> SRModel:
    m = config.model
    hparams = check_hparams(m.name, m.hparams, path="model.hparams")  # TOML arrays -> the declared tuples
    try:
        model = create_model(m.name, scale=m.scale, **hparams)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: cannot build {m.name!r} x{m.scale} with {m.hparams}: {exc}") from None
    if m.init_weights:  # a weights file (any that --weights takes) or a bundled name / alias
        path = _resolve_path(m.init_weights, root)
        source = f"model.init_weights {m.init_weights!r}"
        if m.init_partial:  # the file as it describes itself; the model keeps what does not fit
            src = build(resolve(weights=path) if path.exists() else resolve(m.init_weights))
            if src.name != model.name:
                raise ConfigError(f"{source}: holds {src.name!r}, the recipe trains {model.name!r}")
            skipped = model.init_from(src.state_dict(), partial=True)
            log.info("%s: %d tensors kept their initialisation: %s", source, len(skipped), ", ".join(skipped))
            return model
        request = resolve(m.name, scale=m.scale, weights=path) if path.exists() else resolve(m.init_weights)
        src = build(request, hparams=hparams)
        load_state_into(model, src.state_dict(), source=source)
    return model


def _autocast_factory(precision: str, device: torch.device) -> Callable[[], Any]:
    if precision == "fp32":
        import contextlib

        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _load_data(
    config: TrainConfig, root: Path, *, color: Literal["y", "rgb"], rank: int, with_val: bool
) -> tuple[PatchBatches, list[BenchmarkImage]]:
    """The training batches and (when ``with_val`` and ``val.hr`` is set) the validation pairs.

    Raises:
        ConfigError: a data folder is missing, images do not pair up, or none fits a crop.
    """
    scale = config.model.scale
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
        seed=config.seed, rank=rank, flip=config.data.flip, rot90=config.data.rot90, color=color,
        degradation=degradation,
    )
    val_pairs: list[BenchmarkImage] = []
    if config.val.hr and with_val:
        val_pairs = load_val_images(
            _resolve_path(config.val.hr, root), scale=scale, max_images=config.val.max_images,
            lr_dir=_resolve_path(config.val.lr, root) if config.val.lr else "",
        )
    return dataset, val_pairs


def _build_gan(
    config: TrainConfig, device: torch.device, channels: int, backbone_weights: str | os.PathLike[str] | None
) -> tuple[nn.Module, torch.optim.Optimizer]:
    assert config.gan is not None
    from ..losses import build_discriminator

    spec = {"in_channels": channels, **config.gan.discriminator}
    if spec.get("type") == "feature":
        spec.pop("in_channels")
    disc = build_discriminator(spec, backbone_weights=backbone_weights, key="gan.discriminator").to(device)
    opt = torch.optim.Adam(disc.parameters(), lr=config.gan.lr, betas=config.gan.betas)
    return disc, opt


def _wrap(model: SRModel, config: TrainConfig, device: torch.device, d: DistInfo) -> nn.Module:
    """The module the step calls: ``forward_pyramid`` as ``forward`` for progressive training, DDP under torchrun."""
    wrapped: nn.Module = _Pyramid(model) if config.progressive is not None else model
    if d.is_distributed:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            wrapped, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.progressive is not None,  # inactive pyramid levels
        )
    return wrapped
