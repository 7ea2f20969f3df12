"""Bounds of architecture hyperparameters: one table for weights metadata and training recipes.

A weights file's ``hparams`` metadata and a recipe's ``[model] hparams`` both pass
:func:`check_hparams` before anything is built, so neither can ask for a 10 GB layer
(``d = 10**8``) or a nonsense value; the caller names the source in the error.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from ..errors import ConfigError
from . import get_model_class

__all__ = ["FLOAT_LIMIT", "INT_BOUNDS", "INT_DEFAULT", "check_hparams"]

#: inclusive bounds for integer hyperparameters (also inside tuples), by name; others get INT_DEFAULT.
#: Generous for every registered architecture, small enough that nothing absurd gets built.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "in_channels": (1, 3),
    "kernel_sizes": (1, 31),
    "features": (1, 2048), "base_features": (1, 2048), "channels": (1, 2048), "growth": (1, 2048),
    "d": (1, 2048), "s": (1, 2048),
    "blocks": (0, 1024), "depth": (1, 1024), "m": (0, 1024), "groups": (1, 256), "stages": (1, 64),
    "level_config": (0, 256), "reduction": (1, 2048), "bottleneck": (1, 64), "expand": (1, 64),
}  # fmt: skip
INT_DEFAULT = (0, 4096)
#: largest magnitude of a float hyperparameter (residual scaling, slopes, ...)
FLOAT_LIMIT = 1e6
_MAX_ITEMS = 64


def check_hparams(arch: str, hparams: dict[str, Any], *, path: str = "hparams") -> dict[str, Any]:
    """Check ``hparams`` against ``arch``'s keyword signature, types and :data:`INT_BOUNDS`.

    Args:
        arch: a registered architecture name.
        hparams: keyword arguments for its constructor (``scale`` excluded), as parsed from JSON
            or TOML (lists for tuples).
        path: key path of the table in messages (``model.hparams`` for a recipe).

    Returns:
        The hyperparameters with lists turned into the (nested) tuples the signatures declare.

    Raises:
        ConfigError: unknown name, wrong type, non-finite or out-of-bounds value; the message
            starts with the key path (``model.hparams.d = 100000000 is out of range (expected 1..2048)``).
        UnknownModelError: ``arch`` is not registered.

    Example:
        >>> check_hparams("dbpn", {"features": 64, "stages": 7}, path="model.hparams")
        {'features': 64, 'stages': 7}
    """
    params = inspect.signature(get_model_class(arch).__init__).parameters
    names = [k for k in params if k not in ("self", "scale")]
    out: dict[str, Any] = {}
    for key, value in hparams.items():
        if key not in names:
            raise ConfigError(f"{path}: {arch} has no hyperparameter {key!r} (expected one of {', '.join(names)})")
        value = _tuples(value)
        _check_value(value, params[key].default, f"{path}.{key}", INT_BOUNDS.get(key, INT_DEFAULT))
        out[key] = value
    return out


def _check_value(value: Any, default: Any, what: str, bounds: tuple[int, int]) -> None:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{what}: expected true/false, got {value!r:.60}")
    elif isinstance(default, tuple):
        if not isinstance(value, tuple) or len(value) > _MAX_ITEMS:
            raise ConfigError(f"{what}: expected a list of at most {_MAX_ITEMS} values, got {value!r:.60}")
        inner = default[0] if default else 0
        for v in value:
            _check_value(v, inner, what, bounds)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{what}: expected an integer, got {value!r:.60}")
        lo, hi = bounds
        if not lo <= value <= hi:
            shown = value if value.bit_length() <= 128 else f"a {value.bit_length()}-bit integer"
            raise ConfigError(f"{what} = {shown} is out of range (expected {lo}..{hi})")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{what}: expected a number, got {value!r:.60}")
        if not (math.isfinite(value) and abs(value) <= FLOAT_LIMIT):
            raise ConfigError(f"{what} = {value} is not a finite number of magnitude <= {FLOAT_LIMIT:g}")


def _tuples(value: Any) -> Any:
    """JSON/TOML turn tuples into lists; hyperparameters are declared as (nested) tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value
