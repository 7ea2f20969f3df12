"""Seeded degradation pipelines: ordered operations with random parameter ranges, and the presets.

A pipeline is data (a frozen dataclass per operation) parsed from a dict or a TOML file with
unknown keys rejected, and a callable: ``lr, ops = pipeline(hr, generator=g)``. Parameters are
drawn from ``g`` (a CPU ``torch.Generator`` keeps results device-independent), once per call and
shared by the batch; the returned list records every applied operation with its drawn values,
JSON-serialisable. Call it per image for per-image parameters (the trainer and ``degrade`` do).

Schema (TOML; the same keys in a dict)::

    scale = 4                      # optional when given by the caller
    [[ops]]
    op = "blur"                    # resize | blur | noise | jpeg | quantize | decimate | one_of
    kernel = ["iso", "aniso"]      # a value, or a list of choices
    kernel_prob = [0.7, 0.3]       # optional weights of the choices
    size = [7, 21]                 # a number is fixed; [lo, hi] is drawn uniformly
    sigma = [0.2, 3.0]

or ``preset = "realistic"`` instead of ``ops``. Every op accepts ``prob`` (probability of applying).
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._checks import check_image
from ..errors import ConfigError, ImageError
from ._spec import (
    BlurOp,
    DecimateOp,
    JpegOp,
    NoiseOp,
    OneOfOp,
    QuantizeOp,
    ResizeOp,
    _Ctx,
    _Op,
    _parse_ops,
    _run,
    _unknown,
)

__all__ = ["PRESETS", "Pipeline", "image_seed"]

PRESETS = ("bi", "bd", "dn", "realistic")


def image_seed(seed: int, name: str) -> int:
    """Per-image seed from a global seed and an image name: independent of file order and worker count.

    Example:
        >>> gen = torch.Generator().manual_seed(image_seed(0, "baby.png"))
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# ----------------------------------------------------------------------------- pipeline


def _bd_kernel_size(scale: int, sigma: float = 1.6) -> int:
    """RDN's ``imresize_BD`` width: 7 at x3 (sigma 1.6), else ``2 ceil(3 sigma) + 1`` (odd s) / ``+ 2`` (even s)."""
    if scale == 3 and sigma == 1.6:
        return 7
    return math.ceil(3 * sigma) * 2 + (1 if scale % 2 else 2)


def _realistic_ops() -> tuple[_Op, ...]:
    """Real-ESRGAN's second-order degradation (``train_realesrnet_x4plus.yml``), as operations."""
    gauss = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")
    weights = tuple(p * 0.9 for p in (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)) + (0.1,)  # sinc_prob 0.1
    modes = ("area", "bilinear", "bicubic")
    blur1 = BlurOp(kernel=gauss, kernel_prob=weights, size=(7, 21), sigma=(0.2, 3.0))
    blur2 = BlurOp(kernel=gauss, kernel_prob=weights, size=(7, 21), sigma=(0.2, 1.5), prob=0.8)
    final_resize = ResizeOp(relative_to="target", mode=modes)
    jpeg2 = JpegOp(quality=(30, 95))
    final_sinc = BlurOp(kernel=("sinc",), size=(7, 21), cutoff=(math.pi / 3, math.pi), prob=0.8)
    return (
        blur1,
        ResizeOp(factor=(0.15, 1.5), updown_prob=(0.2, 0.7, 0.1), mode=modes),
        NoiseOp(gaussian_prob=0.5, sigma=(1.0, 30.0), poisson_scale=(0.05, 3.0), gray_prob=0.4),
        JpegOp(quality=(30, 95)),
        blur2,
        ResizeOp(factor=(0.3, 1.2), updown_prob=(0.3, 0.4, 0.3), relative_to="target", mode=modes),
        NoiseOp(gaussian_prob=0.5, sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5), gray_prob=0.4),
        OneOfOp(
            choices=((final_resize, final_sinc, jpeg2), (jpeg2, final_resize, final_sinc)),
            weights=(0.5, 0.5),
        ),
        QuantizeOp(bits=(8, 8)),
    )


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of degradation operations for one scale factor.

    Attributes:
        scale: integer SR factor; the output is ``(B, C, H // scale, W // scale)``.
        ops: the operations, applied in order.
        name: a label (the preset name for presets); informational.

    Example:
        >>> pipe = Pipeline.preset("realistic", 4)
        >>> lr, ops = pipe(hr, generator=torch.Generator().manual_seed(0))
        >>> Pipeline.from_dict(pipe.to_dict()) == pipe
        True
    """

    scale: int
    ops: tuple[_Op, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not 1 <= self.scale <= 16:
            raise ConfigError(f"scale must be an integer in [1, 16], got {self.scale!r}")
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))

    @classmethod
    def preset(cls, name: str, scale: int) -> Pipeline:
        """``bi``: MATLAB bicubic; ``bd``: RDN's Gaussian blur (sigma 1.6) + decimation; ``dn``: bicubic,
        8-bit rounding, Gaussian noise sigma 30; ``realistic``: Real-ESRGAN's second-order degradation.

        Raises:
            ConfigError: unknown preset or bad scale.
        """
        if name == "bi":
            ops: tuple[_Op, ...] = (ResizeOp(relative_to="target"),)
        elif name == "bd":
            size = _bd_kernel_size(scale) if isinstance(scale, int) else 7
            ops = (BlurOp(size=(size, size), sigma=(1.6, 1.6), padding="replicate"), DecimateOp())
        elif name == "dn":
            ops = (ResizeOp(relative_to="target"), QuantizeOp(), NoiseOp(sigma=(30.0, 30.0)))
        elif name == "realistic":
            ops = _realistic_ops()
        else:
            raise ConfigError(_unknown("preset", name, PRESETS))
        return cls(scale=scale, ops=ops, name=name)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, scale: int | None = None) -> Pipeline:
        """Parse ``{"scale"?, "name"?, "ops": [...]}`` or ``{"scale"?, "preset": name}``.

        Args:
            d: the pipeline table.
            scale: the caller's scale; must agree with ``d["scale"]`` when both are given.

        Raises:
            ConfigError: unknown keys (named), bad values, missing or conflicting scale.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"expected a pipeline table, got {type(d).__name__}")
        allowed = {"scale", "name", "ops", "preset"}
        for key in d:
            if key not in allowed:
                raise ConfigError(f"pipeline: {_unknown('key', key, sorted(allowed))}")
        s = d.get("scale", scale)
        if scale is not None and s != scale:
            raise ConfigError(f"pipeline scale {d['scale']!r} does not match the requested scale {scale}")
        if s is None:
            raise ConfigError("pipeline: no scale given (set 'scale' or pass --scale)")
        if ("preset" in d) == ("ops" in d):
            raise ConfigError("pipeline: give exactly one of 'ops' and 'preset'")
        if "preset" in d:
            if "name" in d:
                raise ConfigError("pipeline: 'name' cannot be combined with 'preset'")
            return cls.preset(d["preset"], s)
        name = d.get("name")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"pipeline.name: expected a string, got {name!r}")
        return cls(scale=s, ops=_parse_ops(d["ops"], "ops"), name=name)

    @classmethod
    def from_toml(cls, path: str | Path, *, scale: int | None = None) -> Pipeline:
        """Read a pipeline TOML file (schema in the module docstring).

        Raises:
            ConfigError: missing or unreadable file, TOML syntax error, or any ``from_dict`` error.
        """
        table = read_pipeline_table(path)  # its errors name the file
        try:
            return cls.from_dict(table, scale=scale)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready dict with every op spelled out; ``from_dict`` of it gives an equal pipeline."""
        out: dict[str, Any] = {"scale": self.scale}
        if self.name is not None:
            out["name"] = self.name
        out["ops"] = [op.to_dict() for op in self.ops]
        return out

    def __call__(
        self, hr: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Degrade a batch of HR images.

        Args:
            hr: ``(B, C, H, W)`` float in ``[0, 1]``; ``H``, ``W`` ideally multiples of ``scale``.
            generator: source of all randomness (``None``: torch's global generator). The same
                seeded generator gives the same output.

        Returns:
            ``(lr, ops)``: ``lr`` of shape ``(B, C, H // scale, W // scale)`` clamped to ``[0, 1]``,
            and the applied operations with their drawn parameters (JSON-serialisable).

        Raises:
            ImageError: bad input, or an image smaller than ``scale``.
            ConfigError: the operations do not end at the target size.
        """
        check_image(hr, "hr")
        h, w = hr.shape[-2:]
        target = (h // self.scale, w // self.scale)
        if min(target) < 1:
            raise ImageError(f"image of size {(h, w)} is smaller than the scale {self.scale}")
        ctx = _Ctx(scale=self.scale, hr_size=(h, w), gen=generator)
        lr, records = _run(self.ops, hr, ctx)
        if tuple(lr.shape[-2:]) != target:
            raise ConfigError(
                f"pipeline {self.name or ''} produced size {tuple(lr.shape[-2:])}, expected {target} "
                "(HR size // scale); end it with a resize with relative_to = 'target' or a decimate"
            )
        return lr.clamp(0.0, 1.0), records


def read_pipeline_table(path: str | Path) -> dict[str, Any]:
    """The table of a pipeline TOML file, unchecked (:meth:`Pipeline.from_dict` checks it).

    Raises:
        ConfigError: missing or unreadable file, or a TOML syntax error (the path named).
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline file {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
