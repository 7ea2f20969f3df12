"""Scoring SR outputs against ground truth the way SR papers do (the library side of ``sruscale evaluate``).

* :mod:`~sruscale.evaluation.protocol`: the benchmark protocol (modcrop, MATLAB-bicubic LR, the model
  run as ``upscale`` runs it, Y as MATLAB ``rgb2ycbcr``, border crop, metrics) and the metric table
  :data:`METRICS`. The only place where a benchmark PSNR/SSIM is computed; training validation and
  ``train/bundle.py`` call it too.
* :mod:`~sruscale.evaluation.pairing`: SR files paired with their ground truth by name; several folders matched.
* :mod:`~sruscale.evaluation.report`: JSON/CSV records, tables, the comparison grid.
* :mod:`~sruscale.evaluation.run`: the ``evaluate`` command as two calls (plan, run), in four modes.
"""

from __future__ import annotations

from .pairing import DEFAULT_STRIP, MAX_MODCROP, Pair, match_folders, pair_files, pairing_key
from .protocol import (
    BENCHMARK_DEGRADATION,
    DEFAULT_METRICS,
    METRICS,
    BenchmarkImage,
    DatasetResult,
    ImageResult,
    Metric,
    Protocol,
    benchmark_lr,
    count_images,
    describe_metrics,
    evaluate_files,
    evaluate_images,
    evaluate_model,
    evaluate_pairs,
    modcrop,
    prepare_image,
    quantize,
    run_benchmark_image,
    run_model,
    score_image,
    score_pair,
)
from .report import (
    RESULT_SUFFIXES,
    EvaluationResult,
    GridRow,
    check_results_path,
    dataset_table,
    extremes,
    grid_rows_model,
    grid_rows_pairs,
    image_table,
    rank_datasets,
    write_grid,
)
from .run import (
    DEFAULT_NO_REFERENCE_METRICS,
    EvaluationPlan,
    EvaluationRun,
    Mode,
    default_metrics,
    plan_evaluation,
    run_evaluation,
)

__all__ = [
    "BENCHMARK_DEGRADATION",
    "DEFAULT_METRICS",
    "DEFAULT_NO_REFERENCE_METRICS",
    "DEFAULT_STRIP",
    "MAX_MODCROP",
    "METRICS",
    "RESULT_SUFFIXES",
    "BenchmarkImage",
    "DatasetResult",
    "EvaluationPlan",
    "EvaluationResult",
    "EvaluationRun",
    "GridRow",
    "ImageResult",
    "Metric",
    "Mode",
    "Pair",
    "Protocol",
    "benchmark_lr",
    "check_results_path",
    "count_images",
    "dataset_table",
    "default_metrics",
    "describe_metrics",
    "evaluate_files",
    "evaluate_images",
    "evaluate_model",
    "evaluate_pairs",
    "extremes",
    "grid_rows_model",
    "grid_rows_pairs",
    "image_table",
    "match_folders",
    "modcrop",
    "pair_files",
    "pairing_key",
    "plan_evaluation",
    "prepare_image",
    "quantize",
    "rank_datasets",
    "run_benchmark_image",
    "run_evaluation",
    "run_model",
    "score_image",
    "score_pair",
    "write_grid",
]
