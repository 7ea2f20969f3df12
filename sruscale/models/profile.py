"""Model size and cost: parameter counts and convolution FLOPs per output megapixel."""

from __future__ import annotations

import torch
from torch import nn

from ._base import SRModel

__all__ = ["count_parameters", "flops_per_megapixel"]


def count_parameters(model: nn.Module, *, weights_only: bool = False) -> int:
    """Number of parameters; ``weights_only`` counts only tensors with ``ndim > 1``.

    Papers of the SRCNN era (SRCNN, FSRCNN, LapSRN) count conv weights only, without
    biases or PReLU slopes; ``weights_only=True`` reproduces those numbers.
    """
    return sum(p.numel() for p in model.parameters() if not weights_only or p.ndim > 1)


def _conv_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.ConvTranspose2d):
        # every input pixel is multiplied into a k x k x C_out footprint
        k = module.kernel_size[0] * module.kernel_size[1]
        return inp.numel() // inp.shape[0] * k * module.out_channels // module.groups
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return out.numel() // out.shape[0] * k * module.in_channels // module.groups
    return 0


@torch.no_grad()
def flops_per_megapixel(model: SRModel, *, size: int = 32) -> float:
    """GFLOPs (``2 x`` multiply-accumulates of every Conv2d / ConvTranspose2d) per output megapixel.

    Measured with forward hooks on one ``(1, in_channels, size, size)`` input through
    :meth:`SRModel.forward_native`; convolutions dominate every registered model, so
    activations, additions and the (functional) bicubic pre-interpolation are not counted.
    The result scales with output pixels, so any ``size`` above the receptive field gives
    the same number up to boundary effects (none for same-padded convs).

    Example:
        >>> flops_per_megapixel(create_model("fsrcnn", scale=4))  # doctest: +SKIP
        ~1.6
    """
    total = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += _conv_macs(module, args[0], out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    try:
        was_training = model.training
        model.eval()
        p = next(model.parameters(), None)
        x = torch.rand(1, model.in_channels, size, size, device=p.device if p is not None else "cpu")
        out = model.forward_native(x)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    out_mp = out.shape[-1] * out.shape[-2] / 1e6
    return 2 * total / out_mp / 1e9
