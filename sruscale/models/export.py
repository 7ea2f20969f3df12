"""Export a model to ONNX with dynamic batch, height and width.

The exported graph takes ``(B, channels, H, W)`` floats in ``[0, 1]`` and returns
``(B, channels, sH, sW)`` (not clamped), exactly like :meth:`SRModel.forward`: Y-only
networks given RGB convert to YCbCr, run on Y and upsample CbCr with MATLAB bicubic.
Bicubic interpolation is exported through :func:`~sruscale.models.blocks.bicubic_upsample`
(pad + conv + pixel shuffle), which traces with symbolic sizes; :func:`sruscale.resize.imresize`
would bake the example size into the graph. Exported graphs need ``H, W >= 2``.

Uses the TorchScript-based exporter (``dynamo=False``), which needs only ``onnx``; install
the optional extra: ``pip install sruscale[onnx]``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ._base import SRModel, adapt_channels
from .bicubic import Bicubic
from .blocks import bicubic_upsample

__all__ = ["OnnxWrapper", "export_onnx"]


class OnnxWrapper(nn.Module):
    """:meth:`SRModel.forward` on a fixed channel count, with traceable bicubic interpolation."""

    def __init__(self, model: SRModel, *, channels: int) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels}")
        self.model = model
        self.channels = channels

    def _native(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.model, Bicubic):
            return bicubic_upsample(x, self.model.scale)
        return self.model.forward_native(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        if isinstance(model, Bicubic):  # any channel count
            return self._native(x)
        return adapt_channels(self._native, x, in_channels=model.in_channels, scale=model.scale)


def export_onnx(
    model: SRModel,
    path: str | os.PathLike[str],
    *,
    channels: int = 3,
    opset: int = 17,
    example_size: int = 32,
) -> Path:
    """Write ``model`` (eval mode, on CPU) as an ONNX graph with dynamic ``B``, ``H`` and ``W``.

    Args:
        model: any registered model.
        path: output ``.onnx`` file.
        channels: channels of the graph's input and output (3 = RGB, 1 = gray/Y).
        opset: ONNX opset version.
        example_size: side of the tracing input (rounded up to ``model.multiple_of``).

    Returns:
        ``path``.

    Raises:
        ConfigError: ``onnx`` is not installed, or ``channels`` is not 1 or 3.
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the optional extra: pip install 'sruscale[onnx]'") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = OnnxWrapper(model.for_inference(), channels=channels).cpu().eval()
    m = max(model.multiple_of, 1)
    size = max(example_size, model.minimum, 2)
    size = -(-size // m) * m
    x = torch.rand(1, channels, size, size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            wrapper,
            (x,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={
                "input": {0: "batch", 2: "height", 3: "width"},
                "output": {0: "batch", 2: "out_height", 3: "out_width"},
            },
        )
    return path
