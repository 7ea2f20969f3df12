"""The one reduction vocabulary of every loss and metric: ``"none" | "mean" | "sum"``."""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["Reduction", "check_reduction", "reduce"]

Reduction = Literal["none", "mean", "sum"]
_REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` early (before any computation) for an unknown reduction."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")


def reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-element or per-image values: ``"none"`` returns ``x``, else its mean or sum.

    Raises:
        ValueError: ``reduction`` is not one of ``"none"``, ``"mean"``, ``"sum"``.
    """
    check_reduction(reduction)
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x
