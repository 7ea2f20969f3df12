"""Reading ncnn's two files: the ``.param`` text graph (parsed and bounded) and the ``.bin`` weights.

The format and the bounds are described in :mod:`._ncnn`, which builds PyTorch modules from what
this module reads. Nothing here allocates more than the file sizes allow.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ..errors import CheckpointError

#: first line of every ``.param`` file
MAGIC = 7767517
#: weight-block tags (little-endian uint32 before a block of kernels)
_TAG_FP32 = 0x00000000
_TAG_FP16 = 0x01306B47
_TAG_INT8 = 0x000D4B38
#: bounds on what a file may ask for, checked before anything is allocated
_MAX_PARAM_BYTES = 16 << 20
_MAX_LAYERS = 10_000
_MAX_BLOBS_PER_LAYER = 1024
_MAX_ARRAY = 4096
_MAX_CHANNELS = 4096
_MAX_KERNEL = 64  # kernel size, stride and dilation
_MAX_PAD = 1024
_MAX_FACTOR = 16  # Interp scale and PixelShuffle factor
_MAX_SIZE = 1 << 16  # Interp output size, MemoryData and Crop extents
_MAX_PIXELS = 1 << 28  # any blob: 16384 x 16384 (a 4K frame times 4 fits; chained resamplings do not)
#: ncnn's "same" padding markers (SAME_UPPER, SAME_LOWER) and its "to the end" marker
_SAME_UPPER = -233
_SAME_LOWER = -234
_TO_END = -233
#: NcnnModel: probe input side for the scale, and the cap on the receptive-field estimate
_PROBE = 16
_MAX_RECEPTIVE_FIELD = 64

_Value = int | float
_ParamValue = _Value | tuple[_Value, ...]
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


# ----------------------------------------------------------------------------- the .param file


@dataclass(frozen=True)
class _LayerSpec:
    """One ``.param`` line."""

    kind: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    values: dict[int, _ParamValue]
    where: str  # "<file>: layer 'name' (Kind)", for messages


class _Params:
    """Typed access to a layer's ``key=value`` pairs; unknown keys are refused, not ignored."""

    def __init__(self, spec: _LayerSpec, known: set[int]) -> None:
        self.spec = spec
        unknown = sorted(set(spec.values) - known)
        if unknown:
            raise CheckpointError(
                f"{spec.where}: unsupported parameter {unknown[0]}={_show(spec.values[unknown[0]])} "
                f"(this reader knows {sorted(known)})"
            )

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.spec.where}: {message}")

    def integer(self, key: int, default: int, lo: int, hi: int) -> int:
        v = self.spec.values.get(key, default)
        if not isinstance(v, int):
            raise self.fail(f"parameter {key} must be an integer, found {_show(v)}")
        if not lo <= v <= hi:
            raise self.fail(f"parameter {key} must be in [{lo}, {hi}], found {v}")
        return v

    def number(self, key: int, default: float) -> float:
        v = self.spec.values.get(key, default)
        if isinstance(v, tuple) or not math.isfinite(v):
            raise self.fail(f"parameter {key} must be a finite number, found {_show(v)}")
        return float(v)

    def numbers(self, key: int) -> tuple[float, ...]:
        v = self.spec.values.get(key, ())
        if not isinstance(v, tuple) or not all(math.isfinite(x) for x in v):
            raise self.fail(f"parameter {key} must be an array of finite numbers, found {_show(v)}")
        return tuple(float(x) for x in v)

    def integers(self, key: int) -> tuple[int, ...]:
        v = self.spec.values.get(key, ())
        if not isinstance(v, tuple) or not all(isinstance(x, int) for x in v):
            raise self.fail(f"parameter {key} must be an array of integers, found {_show(v)}")
        return cast(tuple[int, ...], v)

    def arity(self, bottoms: tuple[int, int], tops: tuple[int, int]) -> None:
        """Check the bottom and top counts against inclusive ranges."""
        nb, nt = len(self.spec.bottoms), len(self.spec.tops)
        if not (bottoms[0] <= nb <= bottoms[1] and tops[0] <= nt <= tops[1]):
            raise self.fail(f"expected {_span(bottoms)} input(s) and {_span(tops)} output(s), found {nb} and {nt}")


def _span(r: tuple[int, int]) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}..{r[1]}" if r[1] < _MAX_BLOBS_PER_LAYER else f"{r[0]}+"


def _show(v: object) -> str:
    text = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(token: str) -> _Value:
    if _INTEGER.fullmatch(token):
        return int(token)
    if _NUMBER.fullmatch(token):
        return float(token)
    raise ValueError(token)


def _parse_values(tokens: list[str], where: str) -> dict[int, _ParamValue]:
    values: dict[int, _ParamValue] = {}
    for token in tokens:
        key_text, sep, text = token.partition("=")
        if not sep or not _INTEGER.fullmatch(key_text):
            raise CheckpointError(f"{where}: expected key=value, found {token[:40]!r}")
        key = int(key_text)
        try:
            if key <= -23300:
                parts = text.split(",")
                count = int(parts[0]) if _INTEGER.fullmatch(parts[0]) else -1
                if not 0 <= count <= _MAX_ARRAY or len(parts) != count + 1:
                    raise ValueError(text)
                value: _ParamValue = tuple(_number(p) for p in parts[1:])
                key = -23300 - key
            else:
                value = _number(text)
        except (ValueError, OverflowError):
            raise CheckpointError(f"{where}: parameter {key_text} is not a number or an array: {text[:40]!r}") from None
        if not 0 <= key < 32:
            raise CheckpointError(f"{where}: parameter keys are 0..31, found {key_text}")
        if key in values:
            raise CheckpointError(f"{where}: parameter {key} is given twice")
        values[key] = value
    return values


def _parse_param(path: Path, source: str) -> list[_LayerSpec]:
    try:
        size = path.stat().st_size
        if size > _MAX_PARAM_BYTES:
            raise CheckpointError(f"{source}: {size} bytes; a .param file is at most {_MAX_PARAM_BYTES}")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{source}: no such file") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{source}: not an ncnn .param file (not text)") from None
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot read ({exc.strerror or exc})") from None
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines or lines[0][1] != [str(MAGIC)]:
        found = " ".join(lines[0][1])[:40] if lines else "an empty file"
        raise CheckpointError(f"{source}: not an ncnn .param file: expected the magic {MAGIC}, found {found!r}")
    if len(lines) < 2 or len(lines[1][1]) != 2 or not all(_INTEGER.fullmatch(t) for t in lines[1][1]):
        raise CheckpointError(f"{source}: line 2 must be 'layer_count blob_count'")
    layer_count, blob_count = (int(t) for t in lines[1][1])
    if not 1 <= layer_count <= _MAX_LAYERS:
        raise CheckpointError(f"{source}: expected 1..{_MAX_LAYERS} layers, the header says {layer_count}")
    if len(lines) - 2 != layer_count:
        raise CheckpointError(f"{source}: the header says {layer_count} layers, the file has {len(lines) - 2}")
    specs: list[_LayerSpec] = []
    for n, tokens in lines[2:]:
        where = f"{source}: line {n}"
        if len(tokens) < 4 or not _NAME.fullmatch(tokens[0]):
            raise CheckpointError(f"{where}: expected 'Type name bottom_count top_count ...', found {tokens[:4]}")
        kind, name = tokens[0], tokens[1]
        where = f"{source}: layer {name[:60]!r} ({kind[:40]})"
        if not (_INTEGER.fullmatch(tokens[2]) and _INTEGER.fullmatch(tokens[3])):
            raise CheckpointError(f"{where}: bottom and top counts must be integers, found {tokens[2:4]}")
        nb, nt = int(tokens[2]), int(tokens[3])
        if not (0 <= nb <= _MAX_BLOBS_PER_LAYER and 0 <= nt <= _MAX_BLOBS_PER_LAYER) or len(tokens) < 4 + nb + nt:
            raise CheckpointError(f"{where}: {nb} inputs and {nt} outputs do not fit the line")
        blobs = tokens[4 : 4 + nb + nt]
        if any("=" in b for b in blobs):
            raise CheckpointError(f"{where}: {nb} inputs and {nt} outputs do not fit the line")
        values = _parse_values(tokens[4 + nb + nt :], where)
        specs.append(_LayerSpec(kind, name, tuple(blobs[:nb]), tuple(blobs[nb:]), values, where))
    distinct = {b for s in specs for b in (*s.bottoms, *s.tops)}
    if len(distinct) != blob_count:
        raise CheckpointError(f"{source}: the header says {blob_count} blobs, the layers name {len(distinct)}")
    return specs


# ----------------------------------------------------------------------------- the .bin file


class _Weights:
    """Sequential reader of a ``.bin``; every read is checked against the bytes left before allocating."""

    def __init__(self, file: io.BufferedReader, size: int, source: str) -> None:
        self.file, self.size, self.source, self.offset = file, size, source, 0

    def _need(self, nbytes: int, where: str, what: str) -> None:
        left = self.size - self.offset
        if nbytes > left:
            raise CheckpointError(
                f"{where}: the .bin {self.source} is truncated: {what} needs {nbytes} bytes at offset "
                f"{self.offset}, {left} left"
            )

    def _read(self, count: int, dtype: str, where: str, what: str) -> np.ndarray:
        nbytes = count * np.dtype(dtype).itemsize
        self._need(nbytes, where, what)
        out = np.empty(count, dtype=dtype)
        if self.file.readinto(out.data.cast("B")) != nbytes:
            raise CheckpointError(f"{where}: the .bin {self.source} ended early while reading {what}")
        self.offset += nbytes
        return out

    def raw(self, count: int, where: str, what: str) -> torch.Tensor:
        """``count`` float32 values without a tag (bias, slopes, MemoryData)."""
        return _finite(self._read(count, "<f4", where, what), where, what)

    def tagged(self, count: int, where: str, what: str) -> torch.Tensor:
        """``count`` weights after their 4-byte tag: float32 or float16 (padded to 4 bytes)."""
        tag = int(self._read(1, "<u4", where, f"the tag of {what}")[0])
        if tag == _TAG_FP32:
            return self.raw(count, where, what)
        if tag == _TAG_FP16:
            half = self._read(count, "<f2", where, f"{what} (float16)")
            self._read((-2 * count) % 4, "u1", where, f"the padding of {what}")
            return _finite(half.astype(np.float32), where, what)
        if tag == _TAG_INT8:
            raise CheckpointError(f"{where}: {what} are int8-quantised; only float32 and float16 weights are supported")
        raise CheckpointError(
            f"{where}: {what}: unsupported weight tag 0x{tag:08X} at offset {self.offset - 4} "
            f"(expected 0x{_TAG_FP32:08X} float32 or 0x{_TAG_FP16:08X} float16)"
        )


def _finite(a: np.ndarray, where: str, what: str) -> torch.Tensor:
    if not np.isfinite(a).all():
        raise CheckpointError(f"{where}: {what} contain NaN or Inf")
    return torch.from_numpy(a.astype(np.float32, copy=False))
