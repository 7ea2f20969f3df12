"""Time sruscale's metrics over the Set14 pairs (bicubic x4 SR vs HR) and scikit-image's where it has one.

Usage: python benchmarks/metrics.py [DATA_DIR] [--repeat N]

The pairs are prepared first (untimed): HR modcropped to 4, LR and SR by MATLAB bicubic, both
rounded to 8 bits, integer Y (paper protocol), 4 pixels shaved. Each metric then runs over the 14
Y-plane pairs in float64 on the CPU; the best of N repeats is reported. scikit-image gets the
same float64 Y arrays (PSNR; SSIM with gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, which gives the same value).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sruscale.color import rgb_to_y
from sruscale.evaluation import run_benchmark_image
from sruscale.image import list_images, read_image
from sruscale.metrics import ms_ssim, psnr, ssim, vif
from sruscale.models import create_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _pairs(folder: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model = create_model("bicubic", scale=4)
    out = []
    for path in list_images(folder):
        hr, _, sr = run_benchmark_image(model, read_image(path), device="cpu")
        if hr.shape[1] == 3:
            hr, sr = rgb_to_y(hr, round_8bit=True), rgb_to_y(sr, round_8bit=True)
        out.append((sr[..., 4:-4, 4:-4].contiguous(), hr[..., 4:-4, 4:-4].contiguous()))
    return out


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pairs = _pairs(args.data / "Set14")
    arrays = [(sr[0, 0].numpy(), hr[0, 0].numpy()) for sr, hr in pairs]
    print(
        f"Set14, {len(pairs)} pairs, bicubic x4, Y, crop 4; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); best of {args.repeat}"
    )

    ours = {
        "PSNR": lambda: [psnr(s, h) for s, h in pairs],
        "SSIM": lambda: [ssim(s, h) for s, h in pairs],
        "MS-SSIM": lambda: [ms_ssim(s, h) for s, h in pairs],
        "VIF": lambda: [vif(s, h) for s, h in pairs],
    }
    theirs: dict[str, Callable[[], object]] = {}
    try:
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        theirs = {
            "PSNR": lambda: [peak_signal_noise_ratio(h, s, data_range=1.0) for s, h in arrays],
            "SSIM": lambda: [
                structural_similarity(h, s, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=1.0)
                for s, h in arrays
            ],
        }  # fmt: skip
    except ImportError:
        print("scikit-image not installed: no comparison")

    print(f"{'metric':<10}{'sruscale (s)':>14}{'skimage (s)':>14}{'skimage/sruscale':>18}")
    total = 0.0
    for name, fn in ours.items():
        t = _best(fn, args.repeat)
        total += t
        if name in theirs:
            u = _best(theirs[name], args.repeat)
            print(f"{name:<10}{t:>14.4f}{u:>14.4f}{u / t:>17.2f}x")
        else:
            print(f"{name:<10}{t:>14.4f}{'-':>14}{'-':>18}")
    print(f"{'total':<10}{total:>14.4f}   (PSNR+SSIM+MS-SSIM+VIF over {len(pairs)} pairs)")


if __name__ == "__main__":
    main()
