"""Input checks of every loss (:mod:`sruscale._checks`) and the reduction helper (:mod:`sruscale._reduction`)."""

from __future__ import annotations

from .._checks import check_image, check_pair
from .._reduction import Reduction, check_reduction, reduce

__all__ = ["Reduction", "check_image", "check_pair", "check_reduction", "reduce"]
