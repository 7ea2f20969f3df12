"""int8 for the bundled default family: ONNX Runtime static post-training quantisation, measured.

For plainsr-x2 and plainsr-x4 (the Y networks `upscale` runs by default): the Y graph is exported
(`sruscale.models.export.export_onnx`, one channel), its body and tail convolutions are quantised
with ONNX Runtime's `quantize_static` (QDQ, per-channel int8 weights, uint8 activations), calibrated
on ``--crops`` random LR crops of the training images (T91 + BSD200, bicubic LR; never a benchmark
image). The MATLAB-bicubic skip stays float. Printed, in one process:

- speed: ONNX Runtime fp32 vs int8 on a ``--size``^2 Y input, best of ``--repeats`` (target >= 1.8x);
- accuracy: Set5 and Set14 Y-PSNR with the benchmark protocol, fp32 vs int8 (target <= 0.1 dB lower).

    nice python benchmarks/int8.py [--threads 2] [--crops 64] [--size 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from sruscale.evaluation.protocol import Protocol, evaluate_images, prepare_image
from sruscale.image import list_images, read_image
from sruscale.models import SRModel
from sruscale.models.export import export_onnx
from sruscale.weights import load_model
from sruscale.weights._onnx import OnnxRuntimeModel

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def crops(scale: int, n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """``n`` random Y crops ``(1, 1, size, size)`` of the training images' bicubic LR."""
    from sruscale.color import rgb_to_y

    rng = np.random.default_rng(seed)
    files = [f for name in ("T91", "BSD200") for f in list_images(DATA / name)]
    out = []
    for k in rng.choice(len(files), n):
        lr = prepare_image(read_image(files[k]), scale).lr.float()
        y = rgb_to_y(lr if lr.shape[1] == 3 else lr.expand(-1, 3, -1, -1))
        h, w = y.shape[-2:]
        if h < size or w < size:
            continue
        i, j = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out.append(y[..., i : i + size, j : j + size].contiguous().numpy())
    return out


def quantize(src: Path, dst: Path, calibration: list[np.ndarray]) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"input": x}

    graph = onnx.load(str(src))
    convs = [n.name for n in graph.graph.node if n.op_type == "Conv" and ("body" in n.name or "tail" in n.name)]
    quantize_static(
        str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_quantize=convs,
    )  # fmt: skip
    print(f"  quantised {len(convs)} convolutions")  # noqa: T201


def session(path: Path, threads: int) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def best_seconds(sess: object, x: np.ndarray, repeats: int) -> float:
    sess.run(None, {"input": x[..., :64, :64]})  # type: ignore[attr-defined]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, {"input": x})  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - t0)
    return best


def psnr(model: torch.nn.Module, sess: object, scale: int, name: str) -> float:
    """The protocol's Y-PSNR with ``sess`` as the network: RGB -> Y through the graph, Cb/Cr bicubic."""
    wrapped = OnnxRuntimeModel.from_model(model, folder=Path(tempfile.mkdtemp()))  # type: ignore[arg-type]

    def native(y: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(None, {"input": y.float().contiguous().numpy()})[0])  # type: ignore[attr-defined]

    wrapped.forward = types.MethodType(SRModel.forward, wrapped)  # type: ignore[method-assign]
    wrapped.forward_native = native  # type: ignore[method-assign]
    images = [prepare_image(read_image(p), scale, name=p.stem) for p in list_images(DATA / name)]
    return evaluate_images(wrapped, images, Protocol.make("paper", scale=scale, metrics=("psnr",))).means()["psnr"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crops", type=int, default=64)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | ORT fp32 s | ORT int8 s | speed-up | Set5 fp32 | Set5 int8 | Set14 fp32 | Set14 int8 |")  # noqa: T201
    rows = []
    for scale in (2, 4):
        model = load_model(f"plainsr-x{scale}").eval()
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", channels=1)
            int8 = Path(tmp) / "int8.onnx"
            quantize(fp32, int8, crops(scale, args.crops))
            s32, s8 = session(fp32, args.threads), session(int8, args.threads)
            x = np.random.default_rng(0).random((1, 1, args.size, args.size), dtype=np.float32)
            t32, t8 = best_seconds(s32, x, args.repeats), best_seconds(s8, x, args.repeats)
            scores = [psnr(model, s, scale, name) for name in ("Set5", "Set14") for s in (s32, s8)]
        rows.append(f"| plainsr-x{scale} | {t32:.3f} | {t8:.3f} | {t32 / t8:.2f}x | "
                    + " | ".join(f"{v:.3f}" for v in scores) + " |")  # fmt: skip
        print(rows[-1])  # noqa: T201


if __name__ == "__main__":
    main()
