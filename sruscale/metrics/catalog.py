"""What every metric of ``sruscale evaluate --metrics`` is: direction, kind, the files it needs.

The perceptual metrics get wrappers with the ``(pred, target, *, data_range, crop_border,
reduction, ...)`` signature of :data:`sruscale.metrics.METRICS`; no-reference ones ignore
``target``. Their model files are keyword options (``model=...`` for NIQE/BRISQUE,
``net``/``backbone_weights``/``heads`` for LPIPS), passed per metric by the evaluation protocol.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch

from ._common import Reduction
from .brisque import BRISQUEModel, brisque
from .lpips import Net, lpips
from .niqe import NIQEModel, niqe
from .piqe import piqe

__all__ = ["CATALOG", "PERCEPTUAL_METRICS", "RGB_INPUT", "MetricInfo", "describe_metrics"]


@dataclass(frozen=True)
class MetricInfo:
    """One metric: ``kind`` "full-reference" / "no-reference" / "derived"; what it needs to run."""

    name: str
    title: str
    lower_is_better: bool
    kind: Literal["full-reference", "no-reference", "derived"]
    needs: str = ""

    @property
    def arrow(self) -> str:
        return "↓" if self.lower_is_better else "↑"


def _niqe(
    pred: torch.Tensor,
    target: torch.Tensor,  # noqa: ARG001 - no-reference
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    reduction: Reduction = "none",
    model: NIQEModel | str | os.PathLike[str] | None = None,
) -> torch.Tensor:
    return niqe(pred, model=model, data_range=data_range, crop_border=crop_border, reduction=reduction)


def _piqe(
    pred: torch.Tensor,
    target: torch.Tensor,  # noqa: ARG001 - no-reference
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    reduction: Reduction = "none",
) -> torch.Tensor:
    return piqe(pred, data_range=data_range, crop_border=crop_border, reduction=reduction)


def _brisque(
    pred: torch.Tensor,
    target: torch.Tensor,  # noqa: ARG001 - no-reference
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    reduction: Reduction = "none",
    model: BRISQUEModel | tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> torch.Tensor:
    return brisque(pred, model=model, data_range=data_range, crop_border=crop_border, reduction=reduction)


def _lpips(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    reduction: Reduction = "none",
    net: Net = "alex",
    backbone_weights: str | os.PathLike[str] | None = None,
    heads: str | os.PathLike[str] | None = None,
) -> torch.Tensor:
    if crop_border:
        pred = pred[..., crop_border:-crop_border, crop_border:-crop_border]
        target = target[..., crop_border:-crop_border, crop_border:-crop_border]
    x, y = (pred / data_range).float(), (target / data_range).float()
    return lpips(x, y, net=net, backbone_weights=backbone_weights, heads=heads, reduction=reduction).double()


#: name -> wrapper with the METRICS signature (registered into :data:`sruscale.metrics.METRICS`)
PERCEPTUAL_METRICS = {"niqe": _niqe, "piqe": _piqe, "brisque": _brisque, "lpips": _lpips}
#: metrics that convert colour themselves: the evaluation gives them the RGB image under every protocol
RGB_INPUT = frozenset({"piqe", "brisque", "lpips"})

CATALOG: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("psnr", "PSNR (dB)", False, "full-reference"),
        MetricInfo("ssim", "SSIM", False, "full-reference"),
        MetricInfo("mssim", "MSSIM", False, "full-reference"),
        MetricInfo("ms-ssim", "MS-SSIM", False, "full-reference"),
        MetricInfo("vif", "VIF", False, "full-reference"),
        MetricInfo("vifp", "VIFp", False, "full-reference"),
        MetricInfo("ifc", "IFC", False, "full-reference"),
        MetricInfo("lpips", "LPIPS", True, "full-reference",
                   "ImageNet AlexNet/VGG16 weights (torch hub cache or --lpips-backbone) + lpips heads "
                   "(lpips package or --lpips-heads)"),
        MetricInfo("niqe", "NIQE", True, "no-reference", "bundled weights/niqe_291.npz, or --niqe-model .mat/.npz"),
        MetricInfo("piqe", "PIQE", True, "no-reference"),
        MetricInfo("brisque", "BRISQUE", True, "no-reference", "--brisque-model + --brisque-range (libsvm SVR)"),
        MetricInfo("pi", "PI", True, "derived",
                   "NIQE + Ma et al. scores: --ma-scores CSV or --ma-scorer MODULE:FN (no Ma model ships)"),
    )
}  # fmt: skip


def describe_metrics() -> str:
    """One line per metric for ``--help``: name, direction, kind, needed files."""
    parts = []
    for m in CATALOG.values():
        needs = f"; needs {m.needs}" if m.needs else ""
        parts.append(f"{m.name} {m.arrow} ({m.kind}{needs})")
    return "; ".join(parts)
