"""Image-quality metrics with the conventions of SR papers, each a function plus a thin module.

Every function takes ``(pred, target)`` as ``(B, C, H, W)`` tensors in ``[0, data_range]`` and the
same keyword options: ``data_range``, ``y_channel`` (BT.601 studio-range Y as MATLAB's
``rgb2ycbcr``), ``round_8bit`` (MATLAB's integer Y for ``uint8`` images), ``crop_border`` and
``reduction`` (``"none"`` -> ``(B,)``, ``"mean"``, ``"sum"``). ``target`` is the reference.

========  ==============================================  ==========================
function  metric                                          module
========  ==============================================  ==========================
psnr      PSNR (dB)                                       :class:`PSNR`
ssim      SSIM, Wang et al. 2004 (Gaussian 11/1.5, valid) :class:`SSIM`
mssim     mean of local SSIM, configurable windows        :class:`MSSIM`
ssim_map  the per-window SSIM map                         (function only)
ms_ssim   MS-SSIM, Wang et al. 2003                       :class:`MSSSIM`
vif       VIF, wavelet-domain GSM, Sheikh & Bovik 2006    :class:`VIF`
vifp      VIFp, pixel-domain VIF                          :class:`VIFp`
ifc       IFC, Sheikh, Bovik & de Veciana 2005            :class:`IFC`
lpips     LPIPS v0.1, Zhang et al. 2018 (learned, FR)     :class:`LPIPS`
niqe      NIQE, Mittal et al. 2013 (no reference)         :class:`NIQE`
piqe      PIQE, Venkatanath et al. 2015 (no reference)    :class:`PIQE`
brisque   BRISQUE, Mittal et al. 2012 (no reference)      :class:`BRISQUE`
========  ==============================================  ==========================

The perceptual metrics take their own options (models, backbones) and are not in :data:`METRICS`;
the evaluation's one metric table, :data:`sruscale.evaluation.METRICS`, holds every metric of
``evaluate --metrics`` with its direction, kind, options and needed files. PI (PIRM 2018) is
derived from NIQE and user-supplied Ma et al. scores in :mod:`sruscale.evaluation.perception`.
"""

from __future__ import annotations

from .brisque import BRISQUE, brisque
from .ifc import IFC, ifc
from .lpips import LPIPS, lpips
from .ms_ssim import MS_SSIM_WEIGHTS, MSSSIM, ms_ssim
from .niqe import NIQE, niqe
from .piqe import PIQE, piqe
from .psnr import PSNR, psnr
from .ssim import MSSIM, SSIM, mssim, ssim, ssim_map
from .vif import VIF, vif
from .vifp import VIFp, vifp

__all__ = [
    "BRISQUE",
    "IFC",
    "LPIPS",
    "METRICS",
    "NIQE",
    "PIQE",
    "MSSIM",
    "MSSSIM",
    "MS_SSIM_WEIGHTS",
    "PSNR",
    "SSIM",
    "VIF",
    "VIFp",
    "brisque",
    "ifc",
    "lpips",
    "ms_ssim",
    "mssim",
    "niqe",
    "piqe",
    "psnr",
    "ssim",
    "ssim_map",
    "vif",
    "vifp",
]

#: command-line name -> metric function (all share the keyword options above)
METRICS = {
    "psnr": psnr,
    "ssim": ssim,
    "mssim": mssim,
    "ms-ssim": ms_ssim,
    "vif": vif,
    "vifp": vifp,
    "ifc": ifc,
}
