"""The official ncnn runtime against sruscale's PyTorch and ONNX Runtime paths, on the same ncnn files.

    nice python benchmarks/ncnn_runtime.py [--size 256] [--repeats 3]

For each pretrained network of the registry packages (span-x2, span-x4, realesr-animevideov3-x4;
``--heavy`` adds realesrgan-x4plus): one ``size x size`` RGB input, 2 threads everywhere, the three
runtimes interleaved ``--repeats`` times in one process (the best time of each kept), and the ratio
of ncnn's time to our fastest path. ``--backend ncnn`` would ship only at a ratio of 1.3x or more.
Outputs are compared too (max difference on the 0..255 scale).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sruscale.weights._ncnn import load_ncnn
from sruscale.weights._pretrained import _locate, pretrained_rows

NAMES = ("span-x2", "span-x4", "realesr-animevideov3-x4")


def _ncnn(param: str, x: np.ndarray, inp: str, out: str) -> np.ndarray:
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 2
    net.load_param(param)
    net.load_model(param[: -len(".param")] + ".bin")
    ex = net.create_extractor()
    data = np.ascontiguousarray(x)
    ex.input(inp, ncnn.Mat(data).clone())
    _, mat = ex.extract(out)
    return np.array(mat).copy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--heavy", action="store_true", help="also realesrgan-x4plus (16.7M parameters)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    from sruscale.weights._onnx import OnnxRuntimeModel

    names = (*NAMES, "realesrgan-x4plus") if args.heavy else NAMES
    rng = np.random.default_rng(0)
    x = (rng.random((3, args.size, args.size)) * 0.6 + 0.2).astype(np.float32)
    print(f"input {args.size}x{args.size}, 2 threads, best of {args.repeats} (seconds)")
    print("| network | ncnn runtime | PyTorch | ONNX Runtime | ncnn / fastest of ours | max diff /255 |")
    print("|---|---|---|---|---|---|")
    for row in pretrained_rows():
        if row.name not in names:
            continue
        path = _locate(row.package, row.file)
        if path is None:
            print(f"| {row.name} | not installed ({row.package}) | | | | |")
            continue
        model = load_ncnn(path)
        onnx = OnnxRuntimeModel.from_model(model)
        graph = model.graph
        t = torch.from_numpy(x)[None]
        times: dict[str, list[float]] = {"ncnn": [], "torch": [], "onnx": []}
        outs: dict[str, np.ndarray] = {}
        runs = {
            "ncnn": lambda p=str(path), g=graph: _ncnn(p, x, g.input_name, g.output_name),
            "torch": lambda m=model, i=t: m(i)[0].numpy(),
            "onnx": lambda o=onnx, i=t: o(i)[0].numpy(),
        }
        for _ in range(args.repeats):
            for key, run in runs.items():
                start = time.perf_counter()
                outs[key] = run()
                times[key].append(time.perf_counter() - start)
        best = {k: min(v) for k, v in times.items()}
        ours = min(best["torch"], best["onnx"])
        diff = max(float(np.abs(np.clip(outs[k], 0, 1) - np.clip(outs["ncnn"], 0, 1)).max()) for k in ("torch", "onnx"))
        print(f"| {row.name} | {best['ncnn']:.2f} | {best['torch']:.2f} | {best['onnx']:.2f} | "
              f"{ours / best['ncnn']:.2f}x | {diff * 255:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
