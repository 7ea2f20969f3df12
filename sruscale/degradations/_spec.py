"""Degradation operations as data: one frozen dataclass per op, parsed from dicts with unknown keys
rejected, each drawing its random parameters from a generator and recording them.

Values are fixed (``sigma = 1.6``) or ranges drawn uniformly (``sigma = [0.2, 3.0]``); categorical
values are one string or a list of choices with optional weights. Every op has ``prob``, the
probability of applying it. See :class:`sruscale.degradations.Pipeline` for the file schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .._config import parse_dataclass
from ..errors import ConfigError
from . import _kernels as K
from . import _ops as O

__all__ = [
    "BLUR_KERNELS",
    "OPS",
    "BlurOp",
    "DecimateOp",
    "JpegOp",
    "NoiseOp",
    "OneOfOp",
    "QuantizeOp",
    "ResizeOp",
]

Range = tuple[float, float]

BLUR_KERNELS = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
    "sinc",
    "motion",
)


# ----------------------------------------------------------------------------- sampling helpers


@dataclass
class _Ctx:
    scale: int
    hr_size: tuple[int, int]
    gen: torch.Generator | None

    def rand(self) -> float:
        device = self.gen.device if self.gen is not None else "cpu"
        return float(torch.rand((), generator=self.gen, device=device, dtype=torch.float64))

    def uniform(self, r: Range) -> float:
        u = self.rand()
        return r[0] if r[0] == r[1] else r[0] + (r[1] - r[0]) * u

    def randint(self, lo: int, hi: int) -> int:  # inclusive
        return min(hi, lo + int(self.rand() * (hi - lo + 1)))

    def choice(self, options: Sequence[Any], weights: Sequence[float] | None) -> tuple[int, Any]:
        u = self.rand()
        w = list(weights) if weights is not None else [1.0] * len(options)
        acc, total = 0.0, sum(w)
        for i, wi in enumerate(w):
            acc += wi / total
            if u < acc:
                return i, options[i]
        return len(options) - 1, options[-1]

    def happens(self, prob: float) -> bool:
        u = self.rand()  # always drawn, so later draws do not depend on prob being 0 or 1
        return u < prob


def _split_beta(ctx: _Ctx, r: Range) -> float:
    """BasicSR's shape-parameter draw: half the time below 1, half above, when the range straddles 1."""
    if r[0] < 1 < r[1]:
        return ctx.uniform((r[0], 1.0)) if ctx.happens(0.5) else ctx.uniform((1.0, r[1]))
    return ctx.uniform(r)


# ----------------------------------------------------------------------------- field parsers


def _unknown(what: str, value: Any, valid: Sequence[str]) -> str:
    hint = difflib.get_close_matches(str(value), list(valid), n=1)
    return f"unknown {what} {value!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; valid: {list(valid)}"


def _where(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ConfigError(f"{where}: expected a number, got {v!r}")
    return float(v)


def _range(lo_ok: float = -math.inf, hi_ok: float = math.inf) -> Callable[[Any, str], Range]:
    def parse(v: Any, where: str) -> Range:
        if isinstance(v, list | tuple):
            if len(v) != 2:
                raise ConfigError(f"{where}: expected a number or [lo, hi], got {v!r}")
            lo, hi = _number(v[0], where), _number(v[1], where)
        else:
            lo = hi = _number(v, where)
        if lo > hi:
            raise ConfigError(f"{where}: expected lo <= hi, got [{lo}, {hi}]")
        if lo < lo_ok or hi > hi_ok:
            raise ConfigError(f"{where}: expected values in [{lo_ok}, {hi_ok}], got [{lo}, {hi}]")
        return (lo, hi)

    return parse


def _int_range(lo_ok: int, hi_ok: int) -> Callable[[Any, str], tuple[int, int]]:
    def parse(v: Any, where: str) -> tuple[int, int]:
        items = list(v) if isinstance(v, list | tuple) else [v, v]
        if len(items) != 2 or any(isinstance(i, bool) or not isinstance(i, int) for i in items):
            raise ConfigError(f"{where}: expected an integer or [lo, hi] integers, got {v!r}")
        lo, hi = items
        if lo > hi or lo < lo_ok or hi > hi_ok:
            raise ConfigError(f"{where}: expected {lo_ok} <= lo <= hi <= {hi_ok}, got {v!r}")
        return (lo, hi)

    return parse


def _prob(v: Any, where: str) -> float:
    p = _number(v, where)
    if not 0 <= p <= 1:
        raise ConfigError(f"{where}: expected a probability in [0, 1], got {p}")
    return p


def _weights(n: int | None = None) -> Callable[[Any, str], tuple[float, ...] | None]:
    def parse(v: Any, where: str) -> tuple[float, ...] | None:
        if v is None:
            return None
        if not isinstance(v, list | tuple) or not v:
            raise ConfigError(f"{where}: expected a list of weights, got {v!r}")
        w = tuple(_number(x, where) for x in v)
        if any(x < 0 for x in w) or sum(w) <= 0 or (n is not None and len(w) != n):
            raise ConfigError(f"{where}: expected {n or 'some'} non-negative weights with a positive sum, got {v!r}")
        return w

    return parse


def _choices(allowed: Sequence[str]) -> Callable[[Any, str], tuple[str, ...]]:
    def parse(v: Any, where: str) -> tuple[str, ...]:
        items = list(v) if isinstance(v, list | tuple) else [v]
        if not items:
            raise ConfigError(f"{where}: expected at least one of {list(allowed)}")
        for item in items:
            if item not in allowed:
                raise ConfigError(f"{where}: unknown value {item!r}; choose from {list(allowed)}")
        return tuple(items)

    return parse


def _one_of(*allowed: str) -> Callable[[Any, str], str]:
    def parse(v: Any, where: str) -> str:
        if v not in allowed:
            raise ConfigError(f"{where}: expected one of {list(allowed)}, got {v!r}")
        return str(v)

    return parse


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{where}: expected true or false, got {v!r}")
    return v


def _optional(parse: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda v, where: None if v is None else parse(v, where)


def _positive(v: Any, where: str) -> float:
    x = _number(v, where)
    if not x > 0:
        raise ConfigError(f"{where}: expected a positive number, got {x}")
    return x


def _nonneg_int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{where}: expected a non-negative integer, got {v!r}")
    return v


def _f(default: Any, parse: Callable[[Any, str], Any], *, compact: bool = False) -> Any:
    """``parse(value, where)`` validates; ``compact`` writes ``(v, v)`` as ``v`` and ``("a",)`` as ``"a"``."""
    return field(default=default, metadata={"parse": parse, "compact": compact})


def _to_json(v: Any, compact: bool) -> Any:
    if compact and isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return v[0]  # a fixed range is written as a number
    if compact and isinstance(v, tuple) and len(v) == 1:
        return v[0]
    if isinstance(v, tuple):
        return list(v)
    return v


# ----------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class _Op:
    name: ClassVar[str]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> _Op:
        table = {k: v for k, v in d.items() if k != "op"}
        op: _Op = parse_dataclass(cls, table, where, context=f" for op {cls.name!r}")
        op.validate(where)
        return op

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = _to_json(value, f.metadata["compact"])
        return out

    def validate(self, where: str) -> None:  # noqa: B027 - optional hook
        """Cross-field checks; raise ConfigError."""

    def apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any] | None]:
        """Draw parameters, apply, and return the record (``None`` when skipped by ``prob``)."""
        if not ctx.happens(self.prob):  # type: ignore[attr-defined]  # every concrete op declares prob
            return x, None
        return self._apply(x, ctx)

    def _apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError


@dataclass(frozen=True)
class ResizeOp(_Op):
    """Resize by a factor drawn from ``factor``, relative to the input or to the target LR size.

    ``updown_prob = [up, down, keep]`` (Real-ESRGAN) first picks a direction: up draws from
    ``[1, hi]``, down from ``[lo, 1]``, keep uses 1. ``relative_to = "target"`` makes the output
    ``floor(H_hr / scale * factor)``: with ``factor = 1`` the final LR size.
    """

    name: ClassVar[str] = "resize"
    factor: Range = _f((1.0, 1.0), _range(1e-3, 64.0), compact=True)
    updown_prob: tuple[float, ...] | None = _f(None, _weights(3))
    relative_to: str = _f("input", _one_of("input", "target"))
    mode: tuple[str, ...] = _f(("bicubic",), _choices(tuple(O.RESIZE_MODES)), compact=True)
    mode_prob: tuple[float, ...] | None = _f(None, _weights())
    prob: float = _f(1.0, _prob)

    def validate(self, where: str) -> None:
        if self.updown_prob is not None and not self.factor[0] <= 1 <= self.factor[1]:
            raise ConfigError(f"{where}.factor: with updown_prob the range must contain 1, got {list(self.factor)}")
        if self.mode_prob is not None and len(self.mode_prob) != len(self.mode):
            raise ConfigError(f"{where}.mode_prob: expected {len(self.mode)} weights, got {len(self.mode_prob)}")

    def _apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any]]:
        lo, hi = self.factor
        if self.updown_prob is not None:
            _, way = ctx.choice(("up", "down", "keep"), self.updown_prob)
            factor = {"up": ctx.uniform((1.0, hi)), "down": ctx.uniform((lo, 1.0)), "keep": 1.0}[way]
        else:
            factor = ctx.uniform(self.factor)
        _, mode = ctx.choice(self.mode, self.mode_prob)
        if self.relative_to == "target":
            size = tuple(max(1, math.floor(n / ctx.scale * factor + 1e-9)) for n in ctx.hr_size)
            out = O.resize(x, size=size, mode=mode)
        else:
            out = O.resize(x, scale=factor, mode=mode)
        return out, {"op": self.name, "mode": mode, "factor": factor, "size": list(out.shape[-2:])}


@dataclass(frozen=True)
class BlurOp(_Op):
    """Blur with a random kernel (see :data:`BLUR_KERNELS`).

    ``size`` is the kernel width; a range draws odd widths. ``sigma`` (pixels) feeds the Gaussian
    family (``sigma_x``, and ``sigma_y`` for the anisotropic ones), ``angle`` (degrees) rotates the
    anisotropic kernels and orients ``motion`` (of ``length`` pixels); ``beta_g`` / ``beta_p`` shape
    the generalized / plateau kernels; ``cutoff`` (rad/pixel) sets the sinc kernel, by default
    Real-ESRGAN's ``[pi/3, pi]`` below width 13 and ``[pi/5, pi]`` from 13 on.
    """

    name: ClassVar[str] = "blur"
    kernel: tuple[str, ...] = _f(("iso",), _choices(BLUR_KERNELS), compact=True)
    kernel_prob: tuple[float, ...] | None = _f(None, _weights())
    size: tuple[int, int] = _f((21, 21), _int_range(1, 101), compact=True)
    sigma: Range = _f((0.2, 3.0), _range(1e-3, 100.0), compact=True)
    angle: Range = _f((-180.0, 180.0), _range(-360.0, 360.0), compact=True)
    beta_g: Range = _f((0.5, 4.0), _range(1e-3, 100.0), compact=True)
    beta_p: Range = _f((1.0, 2.0), _range(1e-3, 100.0), compact=True)
    cutoff: Range | None = _f(None, _optional(_range(1e-3, math.pi)), compact=True)
    length: Range = _f((5.0, 15.0), _range(0.0, 101.0), compact=True)
    padding: str = _f("reflect", _one_of("reflect", "replicate", "symmetric"))
    prob: float = _f(1.0, _prob)

    def validate(self, where: str) -> None:
        if self.kernel_prob is not None and len(self.kernel_prob) != len(self.kernel):
            raise ConfigError(f"{where}.kernel_prob: expected {len(self.kernel)} weights, got {len(self.kernel_prob)}")
        lo, hi = self.size
        if lo != hi and lo + (lo + 1) % 2 > hi:
            raise ConfigError(f"{where}.size: the range [{lo}, {hi}] contains no odd width")

    def _draw_size(self, ctx: _Ctx) -> int:
        lo, hi = self.size
        if lo == hi:
            return lo
        lo_odd, hi_odd = lo + (lo + 1) % 2, hi - (hi + 1) % 2
        return lo_odd + 2 * ctx.randint(0, (hi_odd - lo_odd) // 2)

    def _apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any]]:
        _, kind = ctx.choice(self.kernel, self.kernel_prob)
        size = self._draw_size(ctx)
        rec: dict[str, Any] = {"op": self.name, "kernel": kind, "size": size}
        if kind == "sinc":
            default = (math.pi / 3, math.pi) if size < 13 else (math.pi / 5, math.pi)
            rec["cutoff"] = ctx.uniform(self.cutoff or default)
            k = K.sinc_kernel(size, cutoff=rec["cutoff"])
        elif kind == "motion":
            rec["length"], rec["angle"] = ctx.uniform(self.length), ctx.uniform(self.angle)
            k = K.motion_kernel(size, length=rec["length"], angle=rec["angle"])
        else:
            sx = ctx.uniform(self.sigma)
            aniso = kind.endswith("aniso")
            sy, angle = (ctx.uniform(self.sigma), ctx.uniform(self.angle)) if aniso else (sx, 0.0)
            rec.update(sigma_x=sx, sigma_y=sy, angle=angle)
            if kind.startswith("generalized"):
                rec["beta"] = _split_beta(ctx, self.beta_g)
                k = K.generalized_gaussian_kernel(size, sigma_x=sx, sigma_y=sy, angle=angle, beta=rec["beta"])
            elif kind.startswith("plateau"):
                rec["beta"] = _split_beta(ctx, self.beta_p)
                k = K.plateau_kernel(size, sigma_x=sx, sigma_y=sy, angle=angle, beta=rec["beta"])
            else:
                k = K.gaussian_kernel(size, sigma_x=sx, sigma_y=sy, angle=angle)
        rec["padding"] = self.padding
        return O.blur(x, k, padding=self.padding), rec  # type: ignore[arg-type]  # padding: checked in from_dict


@dataclass(frozen=True)
class NoiseOp(_Op):
    """Gaussian noise (probability ``gaussian_prob``) or else Poisson noise, gray with ``gray_prob``.

    ``sigma`` is on the 0..255 scale (papers' convention); ``poisson_scale`` multiplies the shot
    noise, ``poisson_peak`` is its photon count (unset: BasicSR's rule, see ``add_poisson_noise``).
    """

    name: ClassVar[str] = "noise"
    gaussian_prob: float = _f(1.0, _prob)
    sigma: Range = _f((1.0, 30.0), _range(0.0, 255.0), compact=True)
    poisson_scale: Range = _f((0.05, 3.0), _range(0.0, 100.0), compact=True)
    poisson_peak: float | None = _f(None, _optional(_positive))
    gray_prob: float = _f(0.0, _prob)
    clip: bool = _f(True, _bool)
    prob: float = _f(1.0, _prob)

    def _apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any]]:
        gaussian = ctx.happens(self.gaussian_prob)
        gray = ctx.happens(self.gray_prob)
        if gaussian:
            sigma = ctx.uniform(self.sigma)
            out = O.add_gaussian_noise(x, sigma / 255.0, gray=gray, clip=self.clip, generator=ctx.gen)
            return out, {"op": self.name, "type": "gaussian", "sigma": sigma, "gray": gray}
        scale = ctx.uniform(self.poisson_scale)
        peak = self.poisson_peak
        out = O.add_poisson_noise(x, scale, peak=peak, gray=gray, clip=self.clip, generator=ctx.gen)
        return out, {"op": self.name, "type": "poisson", "scale": scale, "peak": peak, "gray": gray}


@dataclass(frozen=True)
class JpegOp(_Op):
    """JPEG round trip with an integer quality drawn uniformly from ``quality``."""

    name: ClassVar[str] = "jpeg"
    quality: tuple[int, int] = _f((30, 95), _int_range(1, 100), compact=True)
    prob: float = _f(1.0, _prob)

    def _apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any]]:
        q = ctx.randint(*self.quality)
        return O.jpeg(x, q), {"op": self.name, "quality": q}


@dataclass(frozen=True)
class QuantizeOp(_Op):
    """Clamp and round to ``bits`` bits (8: as an 8-bit image file)."""

    name: ClassVar[str] = "quantize"
    bits: tuple[int, int] = _f((8, 8), _int_range(1, 16), compact=True)
    prob: float = _f(1.0, _prob)

    def _apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any]]:
        bits = ctx.randint(*self.bits)
        return O.quantize(x, bits), {"op": self.name, "bits": bits}


@dataclass(frozen=True)
class DecimateOp(_Op):
    """Keep every ``scale``-th pixel (the pipeline's scale) from ``offset`` (default ``(s - 1) // 2``)."""

    name: ClassVar[str] = "decimate"
    offset: int | None = _f(None, _optional(_nonneg_int))
    prob: float = _f(1.0, _prob)

    def _apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any]]:
        off = (ctx.scale - 1) // 2 if self.offset is None else self.offset
        return O.decimate(x, ctx.scale, offset=off), {"op": self.name, "offset": off}


def _parse_ops(v: Any, where: str) -> tuple[_Op, ...]:
    if not isinstance(v, list | tuple):
        raise ConfigError(f"{where}: expected a list of operations, got {type(v).__name__}")
    ops = []
    for i, d in enumerate(v):
        w = f"{where}[{i}]"
        if isinstance(d, _Op):
            ops.append(d)
            continue
        if not isinstance(d, Mapping):
            raise ConfigError(f"{w}: expected a table with an 'op' key, got {d!r}")
        kind = d.get("op")
        if kind not in OPS:
            raise ConfigError(f"{w}: {_unknown('op', kind, list(OPS))}")
        ops.append(OPS[kind].from_dict(d, w))
    return tuple(ops)


def _parse_branches(v: Any, where: str) -> tuple[tuple[_Op, ...], ...]:
    if not isinstance(v, list | tuple) or not v:
        raise ConfigError(f"{where}: expected a list of operation lists, got {v!r}")
    return tuple(_parse_ops(b, f"{where}[{i}]") for i, b in enumerate(v))


@dataclass(frozen=True)
class OneOfOp(_Op):
    """Run one of several operation lists, picked with ``weights`` (e.g. Real-ESRGAN's final JPEG/sinc order)."""

    name: ClassVar[str] = "one_of"
    choices: tuple[tuple[_Op, ...], ...] = _f((), _parse_branches)
    weights: tuple[float, ...] | None = _f(None, _weights())
    prob: float = _f(1.0, _prob)

    def validate(self, where: str) -> None:
        if not self.choices:
            raise ConfigError(f"{where}.choices: expected at least one list of operations")
        if self.weights is not None and len(self.weights) != len(self.choices):
            raise ConfigError(f"{where}.weights: expected {len(self.choices)} weights, got {len(self.weights)}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["choices"] = [[op.to_dict() for op in branch] for branch in self.choices]
        return out

    def _apply(self, x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, dict[str, Any]]:
        index, branch = ctx.choice(self.choices, self.weights)
        x, records = _run(branch, x, ctx)
        return x, {"op": self.name, "choice": index, "ops": records}


OPS: dict[str, type[_Op]] = {
    cls.name: cls for cls in (ResizeOp, BlurOp, NoiseOp, JpegOp, QuantizeOp, DecimateOp, OneOfOp)
}


def _run(ops: Sequence[_Op], x: torch.Tensor, ctx: _Ctx) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    records = []
    for op in ops:
        x, rec = op.apply(x, ctx)
        if rec is not None:
            records.append(rec)
    return x, records
