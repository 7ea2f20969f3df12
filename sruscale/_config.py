"""The one validator for typed TOML tables: a parsed table -> a frozen dataclass, or a ConfigError."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["parse_dataclass"]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))  # TOML has no null
    if dataclasses.is_dataclass(tp):
        return "table"
    if origin is tuple:
        return "array"
    if origin is dict:
        return "table"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` (parsed TOML) against the annotation ``tp``; return the typed value."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    def bad() -> ConfigError:
        shown = repr(value) if not isinstance(value, dict) else "a table"
        return ConfigError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {shown}")

    if tp is Any:
        return value
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise ConfigError(f"{path}: expected one of {', '.join(repr(a) for a in args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own (more precise) error
            return _convert(value, options[0], path)
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, path)
            except ConfigError:
                continue
        raise bad()
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return parse_dataclass(tp, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected an array of {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        return copy.deepcopy(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {path}")  # pragma: no cover - programming error


def parse_dataclass(cls: Any, data: dict[str, Any], prefix: str, *, context: str = "") -> Any:
    """Build dataclass ``cls`` from a parsed TOML table: unknown keys, wrong types and missing
    required keys raise :class:`ConfigError` naming the key path (``optim.lr: ...``).

    Field annotations drive the checks: ``bool``/``int``/``float``/``str``, ``Literal``, unions
    and ``X | None``, tuples (fixed or ``...``), ``dict``, ``Any`` and nested dataclasses (tables).
    A field whose metadata holds ``"parse"`` (``parse(value, path) -> typed value``, raising
    ConfigError) is parsed by it instead (the degradation ops' ranges: a number or ``[lo, hi]``).
    ``context`` is appended to "unknown key" (e.g. `` for discriminator 'vgg'``).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            hint = difflib.get_close_matches(key, list(fields), n=1)
            raise ConfigError(f"{path}: unknown key{context}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        parse = fields[key].metadata.get("parse")  # a field's own parser: (value, path) -> typed value
        kwargs[key] = parse(value, path) if parse is not None else _convert(value, hints[key], path)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            path = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{path}: required key missing")
    return cls(**kwargs)
