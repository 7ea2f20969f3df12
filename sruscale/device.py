"""Device and precision selection: turn ``--device`` / ``--precision`` strings into torch objects."""

from __future__ import annotations

import logging

import torch

from ._defaults import DEVICES, parse_device
from .errors import ConfigError

__all__ = ["DEVICES", "PRECISIONS", "parse_device", "resolve_device", "resolve_precision"]

log = logging.getLogger(__name__)

#: accepted ``--precision`` values
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(spec: str | torch.device = "auto", *, local_rank: int | None = None) -> torch.device:
    """Parse a device string and check that the device exists (the one device resolver).

    Args:
        spec: ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``,
            or a :class:`torch.device` (returned as it is).
        local_rank: under torchrun, this process's local rank: ``"auto"``/``"cuda"`` then mean
            ``cuda:LOCAL_RANK`` (modulo the number of GPUs).

    Returns:
        The :class:`torch.device`.

    Raises:
        ConfigError: unknown spelling, or the device is not available on this machine.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(spec, torch.device):
        return spec
    s = parse_device(spec)
    if local_rank is not None and s in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if s == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if s == "cpu":
        return torch.device("cpu")
    if s == "mps":
        if not _mps_available():
            raise ConfigError("device 'mps' requested but MPS (Apple GPU) is not available")
        return torch.device("mps")
    number = s.partition(":")[2]  # "cuda" or "cuda:N" (parse_device accepted it)
    if not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} requested but CUDA is not available")
    if number:
        index, count = int(number), torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"device {spec!r} requested but only {count} CUDA device(s) exist (cuda:0..{count - 1})")
        return torch.device("cuda", index)
    return torch.device("cuda")


def resolve_precision(spec: str, device: torch.device, *, half_safe: bool = True) -> torch.dtype:
    """Choose the inference dtype for ``device``.

    ``auto`` is fp16 on CUDA when the model is ``half_safe`` (fp16 keeps 3 more mantissa bits
    than bf16, which matters for 8/16-bit output; tiles that overflow to NaN/Inf are recomputed
    in fp32 by :func:`sruscale.tiling.upscale_tensor`), and fp32 everywhere else. Explicit
    ``fp16`` is refused on CPU (slow and poorly supported); ``bf16`` is allowed on every device.

    Args:
        spec: ``"auto"``, ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        device: the device the model runs on.
        half_safe: the model's :attr:`SRModel.half_safe`; only affects ``auto``.

    Returns:
        ``torch.float32``, ``torch.float16`` or ``torch.bfloat16``.

    Raises:
        ConfigError: unknown spelling, or fp16 requested on CPU.
    """
    s = spec.strip().lower()
    if s == "auto":
        return torch.float16 if device.type == "cuda" and half_safe else torch.float32
    if s not in _DTYPES:
        raise ConfigError(f"unknown precision {spec!r}; expected one of {', '.join(PRECISIONS)}")
    if s == "fp16" and device.type == "cpu":
        raise ConfigError("precision 'fp16' is not supported on CPU; use bf16 or fp32")
    if s != "fp32" and not half_safe:
        log.warning("precision %s requested for a model not marked half-safe; NaN/Inf tiles fall back to fp32", s)
    return _DTYPES[s]
