"""Tiled inference: pad-run-crop, overlapping feathered tiles, OOM retry, precision fallback, x8 ensemble.

The image is cut into overlapping tiles (sizes in input pixels). Along each axis neighbouring
tiles share ``overlap`` pixels of context plus a feather band of ``overlap // 4``: a tile's
weight is exactly zero within ``overlap / 2`` of its inner edges and ramps linearly across the
band, and the weights of all tiles sum to one. So when ``overlap >= 2 * receptive_field`` every
output pixel comes from tiles that saw all of its receptive field and the tiled result equals
the untiled one. Tiles have one fixed size (only the last tile of a row or column is shorter),
they are processed row by row and each output block is finalised into the output buffer as soon
as no later tile touches it, so the float working set is one tile plus a carry strip a feather
band high, whatever the image size.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .device import resolve_device, resolve_precision
from .errors import ConfigError, ImageError, NonFiniteOutputError, SruscaleError
from .models import SRModel

__all__ = [
    "auto_tile_size",
    "default_overlap",
    "overlap_warning",
    "pad_to_requirements",
    "run_model",
    "upscale_tensor",
    "wrap_margin",
]

log = logging.getLogger(__name__)

_MIN_TILE = 16  # smallest tile the OOM fallback will try (input pixels)
_CPU_TILE = 512  # CPU tile cap: keeps peak memory flat as images grow
_CPU_OUT_TILE = 1536  # and in output pixels (x4 plainsr: ~80 MB working set, not ~140; as fast) ...
_CONTEXT_SHARE = 8  # ... where that tile is at least this many times its shared context (else overlap costs)
_CPU_BUDGET = 1 << 30  # bytes of working memory allowed for one CPU tile, at least (see _cpu_budget)
_OUT_DTYPES = (torch.float32, torch.float64, torch.uint8)
_OOM_MARKERS = ("out of memory", "can't allocate memory", "not enough memory")


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _padded_len(n: int, multiple_of: int, minimum: int) -> int:
    return max(_round_up(n, multiple_of), _round_up(minimum, multiple_of))


def _take(x: Tensor, dim: int, start: int, stop: int) -> Tensor:
    """``x[start:stop]`` along ``dim``; positions past the edges mirror (torch 'reflect', repeated)."""
    n = x.shape[dim]
    if 0 <= start and stop <= n:
        return x.narrow(dim, start, stop - start)
    i = torch.arange(start, stop, device=x.device)
    if n == 1:
        return x.index_select(dim, torch.zeros_like(i))
    i = i.remainder(2 * (n - 1))
    return x.index_select(dim, torch.where(i >= n, 2 * (n - 1) - i, i))


def _region(x: Tensor, y0: int, y1: int, x0: int, x1: int) -> Tensor:
    inside_rows = 0 <= y0 and y1 <= x.shape[-2]
    if inside_rows:  # slice the in-range axis first so the mirrored copy stays tile-sized
        return _take(_take(x, -2, y0, y1), -1, x0, x1)
    return _take(_take(x, -1, x0, x1), -2, y0, y1)


def pad_to_requirements(x: Tensor, *, multiple_of: int, minimum: int) -> tuple[Tensor, tuple[int, int]]:
    """Mirror-pad bottom/right so ``H`` and ``W`` are multiples of ``multiple_of`` and ``>= minimum``.

    Args:
        x: ``(..., H, W)`` tensor of any dtype.
        multiple_of: required divisor of the padded size (>= 1).
        minimum: smallest padded size (>= 1).

    Returns:
        The padded tensor (``x`` itself when no padding is needed) and the original ``(H, W)``.
        Padding reflects without repeating the edge pixel, and keeps reflecting when the pad
        is wider than the image.
    """
    if multiple_of < 1 or minimum < 1:
        raise ConfigError(f"multiple_of and minimum must be >= 1, got {multiple_of} and {minimum}")
    h, w = x.shape[-2:]
    hp, wp = _padded_len(h, multiple_of, minimum), _padded_len(w, multiple_of, minimum)
    return (x if (hp, wp) == (h, w) else _region(x, 0, hp, 0, wp)), (h, w)


def run_model(model: SRModel, x: Tensor) -> Tensor:
    """Pad ``x`` to the model's size requirements, run it, crop: ``(B, C, H, W)`` -> ``(B, C, sH, sW)``.

    The one place pad-run-crop lives; :func:`upscale_tensor` runs every tile through it.
    """
    xp, (h, w) = pad_to_requirements(x, multiple_of=model.multiple_of, minimum=model.minimum)
    y = model(xp)
    s = model.scale
    expected = (*xp.shape[:-2], xp.shape[-2] * s, xp.shape[-1] * s)
    if tuple(y.shape) != expected:
        raise SruscaleError(f"{model.name} returned shape {tuple(y.shape)}, expected {expected}")
    return y[..., : h * s, : w * s]


def default_overlap(model: SRModel) -> int:
    """Overlap (input pixels) used when none is given: ``2 * model.receptive_field``."""
    return 2 * model.receptive_field


def wrap_margin(model: SRModel) -> int:
    """Circular padding (input pixels) for ``wrap=True``: twice the receptive field, a multiple of ``multiple_of``."""
    return _round_up(max(2 * model.receptive_field, 1), model.multiple_of)


def overlap_warning(model: SRModel, *, tile: int | None, overlap: int | None) -> str:
    """A warning when tiles will show seams (overlap below the safe one), else ``""``.

    Tiled output equals untiled output when ``overlap >= default_overlap(model)`` (twice the
    receptive field); with less, tile borders can show.
    """
    safe = default_overlap(model)
    if overlap is None or overlap >= safe or tile == 0:
        return ""
    where = f"--tile {tile}" if tile is not None else "tiling"
    return (
        f"{where} with --overlap {overlap} may show seams: {model.name} sees {model.receptive_field} px "
        f"around each pixel; use --overlap {safe} or more for seamless tiles"
    )


def _span_overlap(overlap: int) -> int:
    """Tiles overlap by ``overlap`` (half of it context on each side) plus a feather band of ``overlap // 4``."""
    return overlap + overlap // 4


def _min_tile(model: SRModel, overlap: int) -> int:
    return _round_up(max(_MIN_TILE, 2 * _span_overlap(overlap), model.minimum), model.multiple_of)


def auto_tile_size(
    model: SRModel, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, *, overlap: int | None = None
) -> int:
    """Tile size (input pixels) for an input of ``shape`` ``(B, C, H, W)``; 0 when no tiling is needed.

    The per-input-pixel cost is the model's measured ``live_values_per_pixel`` where it has one
    (ncnn graphs), else estimated from the widest convolution (feature maps live at output
    resolution for pre-upsampling models). On CUDA the budget is half the free memory
    (``torch.cuda.mem_get_info`` plus PyTorch's reusable cache); elsewhere a quarter of the
    available memory, at least 1 GiB. CPU tiles are capped at 512 input pixels, and at 1536 output
    pixels where that tile is still 8 times the context tiles share (Real-ESRGAN's 64 px receptive
    field keeps 512), but never below twice the context tiles share (a large ``--overlap`` gets larger
    tiles). Every tile but the last of a row or column has exactly this size (the layout
    never shrinks tiles to fit the image), so peak memory does not grow with the image.
    ``overlap`` is the one the tiles will use (default :func:`default_overlap`).
    """
    b, (h, w) = (shape[0] if len(shape) == 4 else 1), shape[-2:]
    overlap = default_overlap(model) if overlap is None else overlap
    convs = [mod.out_channels for mod in model.modules() if isinstance(mod, nn.Conv2d | nn.ConvTranspose2d)]
    width = max(convs, default=3) * (model.scale**2 if model.framework != "post" else 1)
    elem = 4 if dtype in (torch.float32, torch.float64) else 2
    live = model.live_values_per_pixel  # measured for graphs read from files
    maps = 3 * width if live is None else 1.5 * live  # ~3 live feature maps; 1.5x for a layer's workspace
    per_pixel = b * (maps * elem + 16 * 3 * model.scale**2)  # + fp32 output buffers
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        tile = math.isqrt(int(0.5 * free / per_pixel))
    else:
        cap = _CPU_OUT_TILE // model.scale
        if cap < _CONTEXT_SHARE * _span_overlap(overlap):  # a wide receptive field or a large --overlap: 512
            cap = _CPU_TILE
        tile = min(_CPU_TILE, cap, math.isqrt(int(_cpu_budget() / per_pixel)))
    tile = max(tile // model.multiple_of * model.multiple_of, _min_tile(model, overlap))  # room for the overlap
    return 0 if h * w <= tile * tile else tile


#: (limit, usage) files of cgroup v2 and v1, below /sys/fs/cgroup
_CGROUP_FILES = (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"))


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):  # absent, unreadable, or "max" (no limit)
        return None


def _available_memory() -> int | None:
    """Bytes this process may still use: Linux ``MemAvailable``, or less under a cgroup (container) limit."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    for limit, used in _CGROUP_FILES:
        cap, now = _read_int(f"/sys/fs/cgroup/{limit}"), _read_int(f"/sys/fs/cgroup/{used}")
        if cap is not None and now is not None and cap < 1 << 60:  # cgroup v1 says "no limit" with a huge number
            free = min(free, max(0, cap - now))
    return free


def _cpu_budget() -> int:
    """Working memory for one CPU tile: a quarter of the memory available now (see :func:`_available_memory`),
    shared by the processes of a ``torchrun`` on this machine, at least :data:`_CPU_BUDGET`."""
    free = _available_memory()
    if free is None:
        return _CPU_BUDGET
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(_CPU_BUDGET, free // 4 // local)


def _spans(length: int, tile: int, overlap: int, model: SRModel) -> list[tuple[int, int]]:
    """Tiles of ``tile`` px covering ``[0, length)``; the last one ends at ``length`` and may be shorter.

    Neighbours overlap by ``>= _span_overlap(overlap)``; starts are multiples of ``multiple_of``.
    Every tile but the last is exactly ``tile`` px whatever ``length`` is, so the working set
    does not depend on the image size (shrinking tiles to share the length evenly would make
    it). ``length`` and ``tile`` are multiples of ``model.multiple_of`` and ``tile >= model.minimum``,
    and a last tile shorter than ``model.minimum`` is moved back to that size, so run_model never
    pads a tile (a tile padded at the image edge would differ from the untiled run).
    """
    if length <= tile:
        return [(0, length)]
    multiple_of, floor = model.multiple_of, _round_up(model.minimum, model.multiple_of)
    stride = (tile - _span_overlap(overlap)) // multiple_of * multiple_of
    if stride <= 0:
        raise ConfigError(
            f"cannot tile {length} px with tile {tile}, overlap {_span_overlap(overlap)}, multiple of {multiple_of}"
        )
    starts = list(range(0, length - tile, stride))  # the last of these ends before ``length``
    starts.append(min(len(starts) * stride, length - floor))
    return [(a, min(a + tile, length)) for a in starts]


def _axis_weights(spans: list[tuple[int, int]], scale: int, overlap: int) -> list[tuple[int, Tensor]]:
    """Per span: (first output index with nonzero weight, float64 weights up to its last nonzero one).

    Each boundary is a linear ramp centred in the overlap; a tile's weight is zero within
    ``overlap / 2`` input pixels of its inner edges, and the weights of all spans sum to one.
    """
    min_stride = min((b[0] - a[0] for a, b in zip(spans, spans[1:], strict=False)), default=0) * scale
    ramps = []  # (cut, feather) of each boundary, in output pixels
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        a, b = start * scale, end * scale
        keep = min(-(-overlap * scale // 2), (b - a) // 2)
        ramps.append(((a + b) / 2, min(b - a - 2 * keep, min_stride)))

    def up(p: Tensor, cut: float, feather: float) -> Tensor:
        return (p > cut).double() if feather == 0 else ((p - cut) / feather + 0.5).clamp(0, 1)

    out = []
    for i, (start, end) in enumerate(spans):
        p = torch.arange(start * scale, end * scale, dtype=torch.float64) + 0.5  # pixel centres
        w = torch.ones_like(p)
        if i > 0:
            w *= up(p, *ramps[i - 1])
        if i < len(ramps):
            w *= 1 - up(p, *ramps[i])
        nz = w.nonzero()
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        out.append((start * scale + lo, w[lo:hi]))
    return out


Emit = Callable[[int, int, int, int, Tensor], None]


def _blend(
    fetch: Callable[[int, int, int, int], Tensor],
    spans_y: list[tuple[int, int]],
    spans_x: list[tuple[int, int]],
    scale: int,
    overlap: int,
    run: Callable[[Tensor], Tensor],
    emit: Emit,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Run every tile and ``emit(y0, y1, x0, x1, block)`` each final blended output block exactly once.

    ``block`` is not used after ``emit`` returns, so ``emit`` may change it in place."""
    wy, wx = _axis_weights(spans_y, scale, overlap), _axis_weights(spans_x, scale, overlap)
    width, total, done = spans_x[-1][1] * scale, len(spans_y) * len(spans_x), 0
    # output rows of tile row r that row r + 1 finalises: a feather band high, whatever the image size
    bands = [lo + len(w) - nxt[0] for (lo, w), nxt in zip(wy, wy[1:], strict=False)]
    strips: Tensor | None = None  # two full-width carry strips, allocated once, used in turn
    below: Tensor | None = None  # rows of this tile row already weighted by the previous row
    for r, ((y0, y1), (ly, wr)) in enumerate(zip(spans_y, wy, strict=True)):
        next_y = wy[r + 1][0] if r + 1 < len(wy) else ly + len(wr)
        right: Tensor | None = None  # columns of this tile already weighted by the previous tile
        carry: Tensor | None = None
        for j, ((x0, x1), (lx, wc)) in enumerate(zip(spans_x, wx, strict=True)):
            next_x = wx[j + 1][0] if j + 1 < len(wx) else lx + len(wc)
            out = run(fetch(y0, y1, x0, x1))
            oy, ox = ly - y0 * scale, lx - x0 * scale
            o = out[..., oy : oy + len(wr), ox : ox + len(wc)]  # weighted in place: no second tile-sized buffer
            o.mul_(wr.to(o.dtype)[:, None]).mul_(wc.to(o.dtype))
            del out
            if right is not None:
                o[..., : right.shape[-1]] += right
            if below is not None:
                o[..., : below.shape[-2], : next_x - lx] += below[..., lx:next_x]
            emit(ly, next_y, lx, next_x, o[..., : next_y - ly, : next_x - lx])
            if next_y < ly + len(wr):
                if strips is None:
                    strips = o.new_empty((2, *o.shape[:-2], max(bands), width))
                carry = strips[r % 2][..., : ly + len(wr) - next_y, :]
                carry[..., lx:next_x] = o[..., next_y - ly :, : next_x - lx]
            right = o[..., next_x - lx :].clone() if j + 1 < len(wx) else None
            del o
            done += 1
            if progress is not None:
                progress(done, total)
        below = carry


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to 32 MiB come from the heap and are reused
_TRIM_THRESHOLD = 2**31 - 1  # no trimming on free (the largest int): blocks stay for the next layer


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, after setting glibc to reuse freed blocks (None on other C libraries).

    By default glibc maps blocks over its dynamic threshold afresh and returns them on free, so every
    layer's output faults in its pages again (SPAN x4, 384²: 1.14 s system time; 1.37x faster with
    reuse, see benchmarks/malloc_reuse.py). With a fixed 32 MiB
    threshold and no trimming on free, a tile's freed feature maps serve the next layers; what is
    left is given back after each tile by :func:`_release_freed_memory`.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        trim, mallopt = libc.malloc_trim, libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    return trim


def _release_freed_memory() -> None:
    """Give the heap pages freed by the previous tile back to the OS.

    glibc keeps freed heap blocks (see :func:`_malloc_trim`); without this the resident size would
    creep up with the number of tiles, i.e. with the image (measured: +44 MB from 1024^2 to 4096^2
    with FSRCNN x2, see benchmarks/upscale.py). Costs a few ms per tile; a no-op without glibc.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError | MemoryError) or (
        isinstance(e, RuntimeError) and any(m in str(e).lower() for m in _OOM_MARKERS)
    )


@dataclass
class _Runner:
    """Runs one tile: device transfer, precision with fp32 fallback, ensemble, OOM halving."""

    model: SRModel
    device: torch.device
    dtype: torch.dtype  # autocast dtype; float32 = none
    acc: torch.dtype  # dtype of tiles and results on the CPU side
    ensemble: bool
    overlap: int
    limit: int  # largest tile side that has not run out of memory

    def _forward(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        half = dtype not in (torch.float32, torch.float64)
        cast = torch.autocast(self.device.type, dtype=dtype) if half else contextlib.nullcontext()
        with torch.inference_mode(), cast:
            if not self.ensemble:
                return run_model(self.model, x).to(self.acc)
            outs = (self._transformed(x, k, flip) for k in range(4) for flip in (False, True))
            total = next(outs)
            for y in outs:
                total += y
            return total / 8

    def _transformed(self, x: Tensor, k: int, flip: bool) -> Tensor:
        """Model output for ``x`` rotated ``k`` quarter turns and optionally mirrored, mapped back."""
        xt = torch.rot90(x, k, (-2, -1))
        y = run_model(self.model, xt.flip(-1) if flip else xt).to(self.acc)
        return torch.rot90(y.flip(-1) if flip else y, -k, (-2, -1))

    def _checked(self, t: Tensor) -> Tensor:
        if self.device.type == "cpu":
            _release_freed_memory()
        x = t.to(self.device)
        if self.device.type == "cpu" and self.model.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self._forward(x, self.dtype)
        if self.dtype != torch.float32 and not bool(torch.isfinite(y).all()):
            log.warning("NaN/Inf in a %dx%d tile at %s; recomputing it in fp32", *t.shape[-2:], self.dtype)
            y = self._forward(x, torch.float32)
        if not bool(torch.isfinite(y).all()):
            raise NonFiniteOutputError(
                f"the model produced NaN/Inf for a {t.shape[-2]}x{t.shape[-1]} tile even in fp32 "
                "(damaged weights or an input the model cannot handle); no output written"
            )
        return y.cpu()

    def __call__(self, t: Tensor) -> Tensor:
        h, w = t.shape[-2:]
        if max(h, w) > self.limit:
            return self._split(t)
        try:
            return self._checked(t)
        except (RuntimeError, MemoryError) as e:
            if not _is_oom(e):
                raise
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = max(h, w) // 2 // self.model.multiple_of * self.model.multiple_of
        if smaller < _min_tile(self.model, self.overlap):
            raise SruscaleError(
                f"out of memory on a {h}x{w} tile on {self.device}, and tiles smaller than "
                f"{_min_tile(self.model, self.overlap)} px are not tried; free memory, use --precision fp16/bf16, "
                "or a smaller model"
            )
        log.warning("out of memory on a %dx%d tile; retrying it with tile %d", h, w, smaller)
        self.limit = smaller
        return self._split(t)

    def _split(self, t: Tensor) -> Tensor:
        h, w, s = *t.shape[-2:], self.model.scale
        out = t.new_empty((*t.shape[:-2], h * s, w * s), dtype=self.acc)

        def emit(y0: int, y1: int, x0: int, x1: int, block: Tensor) -> None:
            out[..., y0:y1, x0:x1] = block

        spans_y, spans_x = (_spans(n, self.limit, self.overlap, self.model) for n in (h, w))
        _blend(lambda *r: t[..., r[0] : r[1], r[2] : r[3]], spans_y, spans_x, s, self.overlap, self, emit)
        return out


def upscale_tensor(
    model: SRModel,
    x: Tensor,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    precision: str = "auto",
    device: torch.device | str = "cpu",
    self_ensemble: bool = False,
    out_dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
    wrap: bool = False,
) -> Tensor:
    """Upscale a batch with tiling, reduced precision and optional x8 self-ensemble.

    Args:
        model: any :class:`SRModel`; moved to ``device`` and run in eval mode (its mode is restored).
        x: ``(B, C, H, W)`` float in ``[0, 1]`` (float64 is kept as float64) or uint8 in ``[0, 255]``, any device.
        tile: tile side in input pixels; ``None`` = :func:`auto_tile_size`, ``0`` = one tile (no tiling).
            Rounded down to ``model.multiple_of``.
        overlap: context shared by neighbouring tiles, in input pixels; default :func:`default_overlap`.
            A tile's output is ignored within ``overlap / 2`` of its inner edges, so the result equals
            the untiled one when ``overlap >= 2 * model.receptive_field``; tiles overlap by a further
            ``overlap // 4`` where the two outputs are cross-faded.
        precision: ``"auto"``, ``"fp32"``, ``"fp16"`` or ``"bf16"`` (see :func:`resolve_precision`);
            a tile with NaN/Inf in reduced precision is recomputed in fp32.
        device: torch device or a :func:`resolve_device` string.
        self_ensemble: average the 8 flips/rotations of each tile (Lim et al., EDSR+, CVPR-W 2017).
        out_dtype: ``torch.float32`` / ``torch.float64`` (clamped to ``[0, 1]``) or ``torch.uint8``
            (``round(255 * v)``).
        progress: called as ``progress(done_tiles, total_tiles)`` after each tile.
        wrap: the image is a tileable texture: pad circularly (by :func:`wrap_margin` input pixels)
            instead of mirroring, so the output's opposite edges continue each other.

    Returns:
        ``(B, C, sH, sW)`` on the CPU, dtype ``out_dtype``.

    Raises:
        ImageError: ``x`` has the wrong shape or dtype.
        ConfigError: bad tile/overlap/out_dtype/precision/device.
        SruscaleError: out of memory even at the smallest tile.

    Example:
        >>> y = upscale_tensor(create_model("bicubic", scale=2), torch.rand(1, 3, 37, 53), tile=16)
        >>> y.shape
        torch.Size([1, 3, 74, 106])
    """
    if x.ndim != 4 or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ImageError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise ImageError(f"expected a float or uint8 tensor, got {x.dtype}")
    if out_dtype not in _OUT_DTYPES:
        raise ConfigError(f"out_dtype must be one of {_OUT_DTYPES}, got {out_dtype}")
    if wrap:
        p, (h, w) = wrap_margin(model), x.shape[-2:]
        iy, ix = torch.arange(-p, h + p) % h, torch.arange(-p, w + p) % w
        xw = x.index_select(-2, iy.to(x.device)).index_select(-1, ix.to(x.device))
        y = upscale_tensor(
            model,
            xw,
            tile=tile,
            overlap=overlap,
            precision=precision,
            device=device,
            self_ensemble=self_ensemble,
            out_dtype=out_dtype,
            progress=progress,
        )
        s = model.scale
        return y[..., p * s : (p + h) * s, p * s : (p + w) * s].contiguous()
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev, half_safe=model.half_safe)
    s, m = model.scale, model.multiple_of
    (h, w), acc = x.shape[-2:], (torch.float64 if x.dtype == torch.float64 else torch.float32)
    hp, wp = _padded_len(h, m, model.minimum), _padded_len(w, m, model.minimum)
    overlap = default_overlap(model) if overlap is None else overlap
    tile = auto_tile_size(model, tuple(x.shape), dev, dtype, overlap=overlap) if tile is None else tile
    if overlap < 0 or tile < 0:
        raise ConfigError(f"tile and overlap must be >= 0, got tile={tile}, overlap={overlap}")
    size = max(hp, wp) if tile == 0 else max(tile // m * m, _round_up(model.minimum, m))
    if size < max(hp, wp) and size <= _span_overlap(overlap):
        raise ConfigError(
            f"tile ({size} px after rounding to a multiple of {m}) must exceed the overlap plus feather "
            f"({_span_overlap(overlap)} px for overlap {overlap})"
        )
    runner = _Runner(model, dev, dtype, acc, self_ensemble, overlap, size)
    if out_dtype == torch.uint8:  # stored channels-last: the (H, W, C) array an encoder takes is a view
        out = torch.empty((x.shape[0], h * s, w * s, x.shape[1]), dtype=out_dtype).permute(0, 3, 1, 2)
    else:
        out = torch.empty((*x.shape[:2], h * s, w * s), dtype=out_dtype)

    def fetch(y0: int, y1: int, x0: int, x1: int) -> Tensor:
        t = _region(x, y0, y1, x0, x1)
        return t.to(acc).div_(255) if t.dtype == torch.uint8 else t.to(acc)

    def emit(y0: int, y1: int, x0: int, x1: int, block: Tensor) -> None:
        y1, x1 = min(y1, h * s), min(x1, w * s)
        if y0 < y1 and x0 < x1:
            v = block[..., : y1 - y0, : x1 - x0].clamp_(0, 1)  # in place: _blend hands over the block
            out[..., y0:y1, x0:x1] = v.nan_to_num_(0.0).mul_(255).round_() if out_dtype == torch.uint8 else v

    was_training = model.training
    model.to(dev).eval()
    layout = dev.type == "cpu" and model.channels_last  # the weights once here, each tile in _Runner
    if layout:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack it
    try:
        spans_y, spans_x = _spans(hp, size, overlap, model), _spans(wp, size, overlap, model)
        with torch.inference_mode():  # tiles are inference tensors, weighted in place
            _blend(fetch, spans_y, spans_x, s, overlap, runner, emit, progress)
    finally:
        model.train(was_training)
        if layout:  # the caller's model as it was
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return out
