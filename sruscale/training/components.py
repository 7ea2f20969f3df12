"""Building the parts of a run from its config: device, model, data, discriminator, autocast."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..data import ImagePair, PatchBatches, load_pairs, load_rgb
from ..degradations import Pipeline
from ..device import resolve_device
from ..distributed import DistInfo, barrier
from ..errors import CheckpointError, ConfigError, SruscaleError
from ..evaluation.protocol import BenchmarkImage
from ..image import list_images
from ..models import SRModel, create_model, get_model_class
from ..models._hparams import check_hparams
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


def _make_degradation(spec: str | dict[str, Any], scale: int, key: str = "data.degradation") -> Pipeline | None:
    if spec == "bicubic":
        return None
    if is_pipeline_file(spec):  # load_recipe inlines these; a config built in code cannot
        raise ConfigError(
            f"{key}: pipeline file {spec!r} was not read: load the recipe with load_recipe(), "
            "or pass the table (Pipeline file contents) itself"
        )
    try:
        return Pipeline.preset(spec, scale) if isinstance(spec, str) else Pipeline.from_dict(spec, scale=scale)
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise ConfigError(f"{key}: {exc}") from None


def _make_model(config: TrainConfig, project: Path) -> tuple[SRModel, str]:
    """The model of ``[model]``, started from ``init_weights`` (relative to ``project``) when given;
    returns it and a note on what was copied (empty for a strict load)."""
    m = config.model
    hparams = check_hparams(m.name, m.hparams, path="model.hparams")  # TOML arrays -> the declared tuples
    try:
        model = create_model(m.name, scale=m.scale, **hparams)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: cannot build {m.name!r} x{m.scale} with {m.hparams}: {exc}") from None
    if not m.init_weights:  # a weights file (any that --weights takes) or a bundled name / alias
        return model, ""
    path = _resolve_path(m.init_weights, project)
    source = f"model.init_weights {m.init_weights!r}"
    if not path.exists():  # a bundled name or alias
        src = build(resolve(m.init_weights))
    else:
        try:  # the file as it describes itself (its own scale and hyperparameters)
            src = build(resolve(m.name, weights=path))
        except CheckpointError:  # a bare state dict: the recipe's architecture, scale and hparams describe it
            src = build(resolve(m.name, scale=m.scale, weights=path), hparams=hparams)
    if src.name != model.name:
        raise ConfigError(f"{source}: holds {src.name!r}, the recipe trains {model.name!r}")
    partial = m.init_partial or src.scale != model.scale  # what fits is copied, the rest stays new
    try:  # a folded file unfolds into the training branches (PlainSR.init_from)
        new = model.init_from(src.state_dict(), partial=partial)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if not partial:
        return model, ""
    how = f"x{src.scale} file into a x{model.scale} model" if src.scale != model.scale else "partial start"
    kept = f"{len(new)} new: {', '.join(new)}" if new else "none new"
    return model, f"{source}: {how}: {len(model.state_dict()) - len(new)} tensors copied, {kept}"


def _autocast_factory(precision: str, device: torch.device) -> Callable[[], Any]:
    if precision == "fp32":
        import contextlib

        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _load_data(
    config: TrainConfig,
    root: Path,
    *,
    color: Literal["y", "rgb"],
    rank: int,
    with_val: bool,
    world: int = 1,
    root_given: bool = False,
    teacher_cache: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[PatchBatches, list[BenchmarkImage], str]:
    """The training batches, (when ``with_val``) the validation pairs, and a note for the log.
    ``progress(done, total)`` follows the teacher's outputs.

    Raises:
        ConfigError: a data folder is missing, images do not pair up, or none fits a crop.
    """
    scale = config.model.scale
    degradation = _make_degradation(config.data.degradation, scale)
    train_hr = [_data_folder(p, root, f"data.train_hr[{i}]", root_given) for i, p in enumerate(config.data.train_hr)]
    train_lr = [_data_folder(p, root, f"data.train_lr[{i}]", root_given) for i, p in enumerate(config.data.train_lr)]
    held = _holdout(train_hr, config.val.holdout)
    teacher = bool(config.data.teacher)
    pairs = load_pairs(
        train_hr, scale=scale, color="rgb" if degradation is not None or teacher else color, lr_dirs=train_lr,
        precompute_bicubic=degradation is None, exclude=held,
    )
    note = f"validation on {len(held)} held-out training images: {', '.join(p.name for p in held)}" if held else ""
    if teacher:
        lrs = ""
        if degradation is not None:  # the teacher's outputs are computed once, so its LR images are fixed
            pairs = _fixed_lr(pairs, degradation, seed=config.data.teacher_seed, variants=config.data.teacher_variants)
            degradation, lrs = None, f"{config.data.teacher_variants} degraded LR images per HR image, "
        extra = [
            _data_folder(p, root, f"data.teacher_lr[{i}]", root_given) for i, p in enumerate(config.data.teacher_lr)
        ]
        files = [f for folder in extra for f in list_images(folder) if f not in held]  # held out stays out
        unlabeled, small = _unlabeled(files, config.data.teacher_lr_downscale, config.data.patch_size)
        pairs = _distilled(
            pairs + unlabeled, config, color=color, cache=teacher_cache, progress=progress, rank=rank, world=world
        )
        if unlabeled or small:
            lrs += f"{len(unlabeled)} unlabeled LR images of data.teacher_lr"
            lrs += f" ({small} smaller than the crop left out), " if small else ", "
        t = config.data.teacher_scale
        if t and t != scale:
            lrs += f"run at x{t}, resized to x{scale} by bicubic, "
        teacher_note = f"targets blended with {config.data.teacher} ({lrs}cached per run folder)"
        note = "; ".join(filter(None, [note, teacher_note]))
    dataset = PatchBatches(
        pairs, scale=scale, patch_size=config.data.patch_size, batch_size=config.data.batch_size,
        seed=config.seed, rank=rank, flip=config.data.flip, rot90=config.data.rot90, color=color,
        degradation=degradation,
    )
    v = config.val
    val_pairs: list[BenchmarkImage] = []
    if with_val and (v.hr or held):
        val_pairs = load_val_images(
            held or _data_folder(v.hr, root, "val.hr", root_given), scale=scale, max_images=v.max_images,
            lr_dir=_data_folder(v.lr, root, "val.lr", root_given) if v.lr else "",
            degradation=_make_degradation(v.degradation, scale, "val.degradation"), seed=v.seed,
        )
    return dataset, val_pairs, note


def _data_folder(p: str, root: Path, key: str, root_given: bool) -> Path:
    """``p`` resolved against the data root; a missing folder names the key, the root and the fix."""
    path = _resolve_path(p, root)
    if path.is_dir():
        return path
    hint = f"relative paths resolve against the data root {root}"
    old = root / "shared" / "data"
    if root_given and old.is_dir():  # the old meaning: --data-root was the folder above the project
        hint += f"; --data-root takes the data folder itself: --data-root {old}"
    raise ConfigError(f"{key}: folder not found: {path} ({hint})")


def _holdout(folders: list[Path], n: int) -> list[Path]:
    """``n`` images of ``folders`` spread evenly by name, for validation instead of training."""
    if not n:
        return []
    files = [f for folder in folders for f in list_images(folder)]
    if len(files) <= n:
        raise ConfigError(f"val.holdout: {n} held-out images leave none to train on ({len(files)} images)")
    step = len(files) / n
    return [files[int(step * (k + 0.5))] for k in range(n)]


def _fixed_lr(pairs: list[ImagePair], pipeline: Pipeline, *, seed: int, variants: int) -> list[ImagePair]:
    """``variants`` LR images of each HR (RGB, modcropped) by ``pipeline``; variant ``k`` of ``name`` is
    the LR that ``sruscale degrade --seed (seed + k)`` writes for it (byte for byte for an 8-bit RGB file),
    named ``name`` (``name#k`` for k > 0)."""
    from ..degradations import degrade_seeded, image_seed
    from ..image import array_to_tensor, tensor_to_array

    out = []
    for k in range(variants):
        for p in pairs:  # the 8-bit values that write_image would store, as `sruscale degrade` does
            lr = degrade_seeded(pipeline, array_to_tensor(p.hr), image_seed(seed + k, p.name))[0]
            out.append(ImagePair(name=p.name if k == 0 else f"{p.name}#{k}", hr=p.hr, lr=tensor_to_array(lr)))
    return out


def _unlabeled(files: list[Path], factors: tuple[int, ...], patch: int) -> tuple[list[ImagePair], int]:
    """LR-only pairs (an empty HR, so the whole target is the teacher's) of ``files`` (RGB), each
    reduced by every factor ``k`` as the benchmark LR is (``round(imresize(modcrop(x, k), 1/k))``),
    named ``folder/file`` (``folder/file/k`` for ``k > 1``), and how many were left out because
    they would be smaller than the ``patch``-pixel crop (before the teacher spends time on them)."""
    from ..evaluation.protocol import benchmark_lr, modcrop
    from ..image import array_to_tensor, tensor_to_array

    out, small = [], 0
    for f in files:
        rgb = load_rgb(f)
        for k in factors:
            if min(rgb.shape[0] // k, rgb.shape[1] // k) < patch:
                small += 1
                continue
            lr = rgb if k == 1 else tensor_to_array(benchmark_lr(modcrop(array_to_tensor(rgb), k), k))
            name = f"{f.parent.name}/{f.name}" + (f"/{k}" if k > 1 else "")
            out.append(ImagePair(name=name, hr=np.zeros((0, 0, 3), np.uint8), lr=lr))
    return out, small


def _distilled(
    pairs: list[ImagePair], config: TrainConfig, *, color: str, cache: Path | None,
    progress: Callable[[int, int], None] | None = None, rank: int = 0, world: int = 1,
) -> list[ImagePair]:
    """``pairs`` (RGB, with LR) with each HR replaced by ``(1 - w) HR + w teacher(LR)``, rounded to
    8 bits, then the colour of the run; a pair with an empty HR (unlabeled LR) gets ``teacher(LR)``, and
    a teacher of another scale (``data.teacher_scale``) has its output resized by MATLAB bicubic.
    Each target is cached in ``cache`` under a key of the teacher, ``w``, the scale and the pair's
    pixels, so an interrupted run computes only the missing ones.
    Under DDP (``world > 1`` with a cache) rank ``r`` first computes pairs ``r, r + world, ...``, then,
    after a barrier, every rank reads all of them (computing any it cannot find, as on unshared disks)."""
    import contextlib
    import hashlib

    from .._fs import atomic_write
    from ..data import to_y
    from ..image import array_to_tensor
    from ..resize import imresize
    from ..tiling import upscale_tensor
    from ..upscaling import model_digest
    from ..weights import load_model

    d, s = config.data, config.model.scale
    try:
        teacher = load_model(d.teacher, scale=d.teacher_scale or s)
    except SruscaleError as exc:
        hint = ""
        if not d.teacher_scale:  # a teacher of one fixed scale (span-x4): say how to use it
            with contextlib.suppress(SruscaleError):
                hint = f"; data.teacher_scale = {load_model(d.teacher).scale} runs it and resizes its output"
        raise ConfigError(f"data.teacher: {exc}{hint}") from None

    # a resized teacher's key also names it: weightless models (bicubic) share the digest "none"
    resized = repr((d.teacher, teacher.scale)) if teacher.scale != s else ""

    def target(p: ImagePair) -> np.ndarray:
        assert p.lr is not None
        w = d.teacher_weight if p.hr.size else 1.0
        shape = p.hr.shape if p.hr.size else (p.lr.shape[0] * s, p.lr.shape[1] * s, 3)
        base = (repr((model_digest(teacher), w, s)) + resized).encode()
        head = repr((p.name, p.lr.shape, p.hr.shape)).encode()
        key = hashlib.sha256(base + head + p.lr.tobytes() + p.hr.tobytes()).hexdigest()[:20]
        path = cache / f"{key}.npy" if cache is not None else None
        t = np.load(path) if path is not None and path.is_file() else None
        if t is not None and t.shape == shape and t.dtype == np.uint8:
            return t
        with torch.no_grad():
            out = upscale_tensor(teacher, array_to_tensor(p.lr), precision="fp32").clamp(0, 1)
        if teacher.scale != s:  # a teacher of another scale: its output resized to this one
            out = imresize(out.double(), size=(p.lr.shape[0] * s, p.lr.shape[1] * s)).clamp(0, 1)
        sr = out[0].permute(1, 2, 0).double().numpy()
        blend = (1 - w) * p.hr / 255.0 + w * sr if p.hr.size else sr
        t = np.clip(np.round(blend * 255), 0, 255).astype(np.uint8)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, t)
        return t

    n, shared = len(pairs), world > 1 and cache is not None
    own: dict[int, np.ndarray] = {}
    if shared:  # each rank its share first (progress: the share's last image), then the rest from the cache
        for i in range(rank, n, world):
            own[i] = target(pairs[i])
            if progress is not None:
                progress(i + 1, n)
        barrier()
    targets = []
    for i, p in enumerate(pairs):
        targets.append(own[i] if i in own else target(p))
        if progress is not None and (not shared or i + 1 == n):
            progress(i + 1, n)
    y = color == "y"
    return [
        ImagePair(name=p.name, hr=to_y(t) if y else t, lr=to_y(p.lr) if y and p.lr is not None else p.lr)
        for p, t in zip(pairs, targets, strict=True)
    ]


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
