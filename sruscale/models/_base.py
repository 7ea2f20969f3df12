"""The model contract shared by every architecture."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import nn

from ..color import planes_to_rgb, rgb_to_ycbcr
from ..errors import ConfigError, ImageError
from .blocks import bicubic_upsample

__all__ = ["SRModel", "store_hparams"]

Framework = Literal["pre", "post", "progressive", "iterative", "none"]
F = TypeVar("F", bound=Callable[..., None])


def store_hparams(init: F) -> F:
    """Decorate an ``__init__`` so the bound keyword arguments land in ``self.hparams``."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: SRModel, *args: Any, **kwargs: Any) -> None:
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        hp = {k: v for k, v in bound.arguments.items() if k != "self"}
        init(self, *args, **kwargs)
        self.hparams = hp

    return wrapper  # type: ignore[return-value]  # same signature as init (functools.wraps)


def adapt_channels(
    native: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, in_channels: int, scale: int
) -> torch.Tensor:
    """Run ``native`` (``(B, in_channels, H, W)`` -> ``(B, in_channels, sH, sW)``) on ``x`` with 1 or 3 channels.

    RGB through a Y network: the network upscales Y, Cb/Cr get MATLAB bicubic (one convolution)
    and the planes become RGB without being joined. Gray through an RGB network: the mean of its
    three outputs. The one rule for :meth:`SRModel.forward` and the ONNX export.
    """
    if x.shape[1] == in_channels:
        return native(x)
    if in_channels == 1:
        ycc = rgb_to_ycbcr(x)
        y = native(ycc[:, :1])
        return planes_to_rgb(y, bicubic_upsample(ycc[:, 1:], scale).to(y.dtype))
    return native(x.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)


class SRModel(nn.Module):
    """Base of every registered super-resolution model.

    Contract: ``forward`` takes ``(B, C, H, W)`` floats in ``[0, 1]`` with ``C`` in {1, 3}
    and returns ``(B, C, H * scale, W * scale)``, approximately in ``[0, 1]`` (inference
    helpers clamp). Networks published on one channel (``in_channels = 1``) see the Y
    plane (BT.601) and Cb/Cr are upscaled with MATLAB bicubic; RGB networks given a
    gray image see it repeated on three channels and return the channel mean.

    Subclasses implement :meth:`forward_native` on ``in_channels`` channels and declare
    the class attributes below; the ``size`` requirement is data, used by the
    pad-run-crop helper in :mod:`sruscale.tiling`.
    """

    #: registry name (set by subclasses)
    name: ClassVar[str] = ""
    #: SR framework: pre-, post-upsampling, progressive, iterative up-and-down
    framework: ClassVar[Framework] = "none"
    #: supported integer scales
    scales: ClassVar[tuple[int, ...]] = (2, 3, 4)
    #: spatial input size must be a multiple of this
    multiple_of: ClassVar[int] = 1
    #: smallest spatial input size
    minimum: ClassVar[int] = 1
    #: fp16/bf16 inference is numerically safe
    half_safe: ClassVar[bool] = True
    #: receptive-field radius in input pixels (tiling overlap needed for exactness)
    receptive_field: ClassVar[int] = 8
    #: progressive models: ``forward_pyramid(x, max_level=, blend=)`` grows the pyramid level by level
    pyramid_curriculum: ClassVar[bool] = False
    #: inference on the CPU runs in channels-last memory format (oneDNN convolutions without
    #: layout reorders: measured 1.9x on PlainSR's body); only for nets of plain convolutions
    channels_last: ClassVar[bool] = False
    #: float32 values held at once per input pixel during a forward, where measured (graphs read from
    #: files); None: :func:`~sruscale.tiling.auto_tile_size` estimates it from the widest convolution
    live_values_per_pixel: ClassVar[float | None] = None

    scale: int
    in_channels: int
    hparams: dict[str, Any]
    #: where the weights came from, for the user ("bundled plainsr-x4", a file, a registry package); set by
    #: :func:`sruscale.weights.load_model`
    origin: str = ""

    def __init__(self, *, scale: int, in_channels: int) -> None:
        super().__init__()
        self.check_scale(scale)
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        self.scale = scale
        self.in_channels = in_channels
        self.hparams = {}

    @classmethod
    def check_scale(cls, scale: int) -> None:
        """The one scale check of every architecture (models, the resolver, weights files).

        Raises:
            ConfigError: ``scale`` is not one of :attr:`scales`.
        """
        if scale not in cls.scales:
            have = ", ".join(map(str, cls.scales))
            raise ConfigError(f"{cls.name or cls.__name__} supports scales {have}; got x{scale}")

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, in_channels, sH, sW)``; no channel adaptation."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ImageError(f"expected (B, C, H, W) with C in (1, 3), got {tuple(x.shape)}")
        return adapt_channels(self.forward_native, x, in_channels=self.in_channels, scale=self.scale)

    def init_from(self, state: dict[str, torch.Tensor], *, partial: bool = False) -> list[str]:
        """Load ``state`` as initial weights (fine-tuning); returns the names left at their init.

        With ``partial`` the tensors whose name or shape does not match (a new upsampling tail
        at another scale, say) are skipped; otherwise any mismatch raises ``ValueError``.
        """
        own = self.state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(set(own) - set(fits))
        if not partial and (skipped or len(fits) != len(state)):
            extra = sorted(set(state) - set(fits))
            raise ValueError(f"weights do not fit {self.name} x{self.scale}: not loaded {skipped}, unused {extra}")
        self.load_state_dict(fits, strict=False)
        return skipped

    def for_inference(self) -> SRModel:
        """The network to run and export: ``self``, or a folded copy for re-parameterised models."""
        return self

    def extra_repr(self) -> str:
        return f"scale={self.scale}, in_channels={self.in_channels}"
