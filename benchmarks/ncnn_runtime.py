"""The official ncnn runtime against sruscale's PyTorch and ONNX Runtime paths, on the same ncnn files.

    nice python benchmarks/ncnn_runtime.py [--size 256] [--repeats 3]

For each pretrained network of the registry packages (span-x2, span-x4, realesr-animevideov3-x4;
``--heavy`` adds realesrgan-x4plus): one ``size x size`` RGB input, 2 threads everywhere, the three
runtimes interleaved ``--repeats`` times in one process (the best time of each kept), and the ratio
of ncnn's time to our fastest path. ``--backend ncnn`` would ship only at a ratio of 1.3x or more.
Outputs are compared too (max difference on the 0..255 scale).

``--own`` does the same for sruscale's own default x4 network (``plainsr-x4``, folded, on a Y input):
exported to ncnn with the registry's ``pnnx`` converter (``pip install --no-deps pnnx``; run here
only, nothing of it ships), against the PyTorch path as ``sruscale upscale`` runs it (channels-last)
and ONNX Runtime, whole ``size x size`` input. ``--backend ncnn`` for our models would ship only at
1.3x or more over the faster of those two.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping

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


def _interleaved(
    runs: Mapping[str, Callable[[], np.ndarray]], repeats: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Run ``runs`` in turn ``repeats`` times: the best seconds and the last output of each."""
    best = dict.fromkeys(runs, float("inf"))
    outs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            outs[key] = run()
            best[key] = min(best[key], time.perf_counter() - start)
    return best, outs


def own(size: int, repeats: int) -> None:
    """plainsr-x4's network (its convolutions and pixel shuffle; the bicubic skip is left out, a shape-dependent
    reshape that pnnx cannot convert) through pnnx -> ncnn, PyTorch (channels-last) and ONNX Runtime."""
    import tempfile
    from pathlib import Path

    import ncnn
    import onnxruntime as ort
    import pnnx

    from sruscale.weights import load_model

    class Network(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.body, self.tail, self.shuffle = net.body, net.tail, net.shuffle

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shuffle(self.tail(self.body(x)))

    network = Network(load_model("plainsr-x4")).eval()  # folded, Y in -> Y residual out
    y = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    with tempfile.TemporaryDirectory() as tmp:
        pt, onnx_file = Path(tmp) / "plainsr_x4.pt", Path(tmp) / "plainsr_x4.onnx"
        with torch.enable_grad():
            pnnx.export(network, str(pt), (torch.rand(1, 1, 48, 48),), (torch.rand(1, 1, 64, 40),))
        torch.onnx.export(network, (torch.rand(1, 1, 48, 48),), str(onnx_file), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "H", 3: "W"}}, dynamo=False)  # fmt: skip
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = 2
        net.load_param(str(pt.with_suffix(".ncnn.param")))
        net.load_model(str(pt.with_suffix(".ncnn.bin")))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
        session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

        def run_ncnn() -> np.ndarray:
            ex = net.create_extractor()
            ex.input("in0", ncnn.Mat(np.ascontiguousarray(y[0].numpy())).clone())
            _, mat = ex.extract("out0")
            return np.array(mat).copy()

        last = network.to(memory_format=torch.channels_last)
        runs = {
            "ncnn": run_ncnn,
            "torch": lambda: last(y.contiguous(memory_format=torch.channels_last))[0].numpy(),
            "onnx": lambda: session.run(None, {"x": y.numpy()})[0][0],
        }
        best, outs = _interleaved(runs, repeats)
    ours = min(best["torch"], best["onnx"])
    diff = max(float(np.abs(outs[k] - outs["ncnn"]).max()) for k in ("torch", "onnx"))
    mp = size * size * 16 / 1e6
    print(f"| plainsr-x4 network (ours, via pnnx), {size}^2 Y | {best['ncnn']:.2f} ({mp / best['ncnn']:.2f} MP/s) "
          f"| {best['torch']:.2f} ({mp / best['torch']:.2f}) | {best['onnx']:.2f} ({mp / best['onnx']:.2f}) "
          f"| {ours / best['ncnn']:.2f}x | {diff * 255:.2f} |", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--heavy", action="store_true", help="also realesrgan-x4plus (16.7M parameters)")
    ap.add_argument("--own", action="store_true", help="only sruscale's plainsr-x4, exported with pnnx")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    if args.own:
        print(f"2 threads, best of {args.repeats} (seconds; output MP/s)")
        print("| network | ncnn runtime | PyTorch | ONNX Runtime | ncnn / fastest of ours | max diff /255 |")
        print("|---|---|---|---|---|---|")
        own(args.size, args.repeats)
        return
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
        runs = {
            "ncnn": lambda p=str(path), g=graph: _ncnn(p, x, g.input_name, g.output_name),
            "torch": lambda m=model, i=t: m(i)[0].numpy(),
            "onnx": lambda o=onnx, i=t: o(i)[0].numpy(),
        }
        best, outs = _interleaved(runs, args.repeats)
        ours = min(best["torch"], best["onnx"])
        diff = max(float(np.abs(np.clip(outs[k], 0, 1) - np.clip(outs["ncnn"], 0, 1)).max()) for k in ("torch", "onnx"))
        print(f"| {row.name} | {best['ncnn']:.2f} | {best['torch']:.2f} | {best['onnx']:.2f} | "
              f"{ours / best['ncnn']:.2f}x | {diff * 255:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
