"""Degradations: HR -> LR as pure tensor functions, seeded pipelines, presets, and the folder job.

* tensor functions (batched ``(B, C, H, W)``, CPU/GPU): :func:`resize`, :func:`decimate`,
  :func:`blur`, :func:`add_gaussian_noise`, :func:`add_poisson_noise`, :func:`jpeg`, :func:`quantize`;
* kernels: :func:`gaussian_kernel`, :func:`generalized_gaussian_kernel`, :func:`plateau_kernel`,
  :func:`sinc_kernel`, :func:`motion_kernel`;
* :class:`Pipeline` (``preset``, ``from_dict``, ``from_toml``), used by the trainer on the fly;
* :func:`degrade_folder` / :func:`plan_degrade` + :func:`run_degrade`, behind ``sruscale degrade``.
"""

from __future__ import annotations

from ._batch import (
    DegradePlan,
    DegradeResult,
    DegradeSummary,
    degrade_folder,
    degrade_seeded,
    is_lossy,
    plan_degrade,
    read_manifest,
    run_degrade,
)
from ._kernels import gaussian_kernel, generalized_gaussian_kernel, motion_kernel, plateau_kernel, sinc_kernel
from ._ops import RESIZE_MODES, add_gaussian_noise, add_poisson_noise, blur, decimate, jpeg, quantize, resize
from ._pipeline import PRESETS, Pipeline, image_seed, read_pipeline_table
from ._spec import BLUR_KERNELS, OPS, BlurOp, DecimateOp, JpegOp, NoiseOp, OneOfOp, QuantizeOp, ResizeOp

__all__ = [
    "BLUR_KERNELS",
    "OPS",
    "PRESETS",
    "RESIZE_MODES",
    "BlurOp",
    "DecimateOp",
    "DegradePlan",
    "DegradeResult",
    "DegradeSummary",
    "JpegOp",
    "NoiseOp",
    "OneOfOp",
    "Pipeline",
    "QuantizeOp",
    "ResizeOp",
    "add_gaussian_noise",
    "add_poisson_noise",
    "blur",
    "decimate",
    "degrade_folder",
    "degrade_seeded",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "image_seed",
    "is_lossy",
    "jpeg",
    "motion_kernel",
    "plan_degrade",
    "plateau_kernel",
    "quantize",
    "read_pipeline_table",
    "read_manifest",
    "resize",
    "run_degrade",
    "sinc_kernel",
]
