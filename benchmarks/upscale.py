"""`sruscale upscale` on CPU: backends, overheads, start-up and peak memory, as ratios.

Sections (each can be run alone with ``--only NAME``):

``backends``  PyTorch vs ONNX Runtime vs OpenVINO (when installed) forward of the default x2 model
              (plainsr-x2 today) and the largest bundled one on a ``--size``^2 input (default 2048),
              outputs compared within 1/255; then the tiled ``upscale_tensor`` path with
              ``--backend onnxruntime``'s model against PyTorch's. The ``--backend`` option ships
              because ONNX Runtime is >= 1.3x faster through that tiled path.
``runtime``   a whole batch run of a 1024^2 photo at x4 with the default model, ``--backend torch`` vs
              ``onnxruntime`` (one process, best of 3 interleaved), GFLOP/s beside a plain 3x3 conv's.
``overhead``  a whole ``sruscale upscale`` of one ``--size``^2 PNG (a fresh process: start-up,
              decode, tiles, encode) vs a fresh process that imports torch and sruscale, loads
              the same model and runs one plain forward on the same pixels (target <= 1.05).
``startup``   ``sruscale --help`` and ``sruscale upscale --help`` vs ``python -c "import torch"``,
              best of ``--repeats`` (target <= 0.3).
``pipeline``  a folder of ``--photos`` JPEG photos of about 1 MP at x2 and one 2048^2 PNG (noise, and a
              photo resized to 2048^2) through
              ``run_batch`` (read ahead, upscale, write behind) against the sum of plain (untiled
              ``upscale_tensor``: the network in the layout it runs in, nothing else) forwards of
              the same decoded pixels and against one file at a time (``process_job``), one process
              (targets: folder <= 1.05x, 2048^2 <= 1.08x the plain forwards).
``photo-memory`` peak RSS of a whole ``sruscale upscale`` of a 3000x2000 photo at x4 (fresh process)
              against input + output bytes at 8 bits + 400 MB.
``memory``    peak RSS (``VmHWM``) of ``upscale_tensor`` with auto tiling for 1024^2 and 4096^2
              uint8 inputs, a fresh process each (target: ratio <= 1.5).

Usage: ``nice python benchmarks/upscale.py [--threads 2] [--size 2048] [--only backends]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sruscale.api import load_model
from sruscale.models import create_model
from sruscale.tiling import auto_tile_size, upscale_tensor
from sruscale.weights import choose_model

os.environ.setdefault("SRUSCALE_PRETRAINED", "0")  # our own default, not a registry package's network
MB = 1e6
REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = choose_model(2).name  # what `sruscale upscale --scale 2` runs (plainsr-x2 today)


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"{key} not in /proc/self/status")


def _image(size: int) -> torch.Tensor:
    return torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _largest_bundled() -> str:
    from sruscale.weights import list_weights

    entries = [e for e in list_weights() if e.file.is_file()]
    return max(entries, key=lambda e: (e.file.stat().st_size, e.scale)).name


def _timed(fn: object, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best, out


def backends(size: int, threads: int, repeats: int) -> None:
    import onnxruntime as ort

    from sruscale.models.export import export_onnx
    from sruscale.weights._onnx import OnnxRuntimeModel

    try:
        import openvino as ov
    except ImportError:
        ov = None
    torch.set_num_threads(threads)
    print(f"## Backends: {size}x{size} RGB float input, CPU, {threads} thread(s), best of {repeats}\n")
    print("| model | PyTorch s | ONNX Runtime s | ratio | OpenVINO s | ratio | max diff (/255) |")
    print("|---|---|---|---|---|---|---|")
    x = _image(size).float().div_(255)
    for name in dict.fromkeys([DEFAULT_MODEL, _largest_bundled()]):
        model = load_model(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, Path(tmp) / "m.onnx")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            sess.run(None, {"input": x[..., :64, :64].numpy()})
            t_ort, y_ort = _timed(lambda sess=sess: sess.run(None, {"input": x.numpy()})[0], repeats)
            t_ov, y_ov = float("nan"), None
            if ov is not None:
                core = ov.Core()
                cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
                compiled = core.compile_model(core.read_model(str(path)), "CPU", cfg)
                compiled(x[..., :64, :64].numpy())
                t_ov, y_ov = _timed(lambda compiled=compiled: compiled(x.numpy())[0], repeats)
        with torch.inference_mode():
            model(x[..., :64, :64])
            t_pt, y_pt = _timed(lambda model=model: model(x), repeats)
        ref = y_pt.clamp(0, 1).numpy()  # type: ignore[union-attr]
        diffs = [np.abs(np.clip(y, 0, 1) - ref).max() * 255 for y in (y_ort, y_ov) if y is not None]
        ov_cols = f"{t_ov:.2f} | {t_pt / t_ov:.2f}x" if ov is not None else "not installed | -"
        print(f"| {name} | {t_pt:.2f} | {t_ort:.2f} | {t_pt / t_ort:.2f}x | {ov_cols} | {max(diffs):.3f} |")
    model = load_model(DEFAULT_MODEL)
    fast = OnnxRuntimeModel.from_model(model, folder=Path(tempfile.mkdtemp()))
    u8 = _image(size)
    upscale_tensor(fast, u8[..., :64, :64])
    t_pt, a = _timed(lambda: upscale_tensor(model, u8, out_dtype=torch.uint8), 1)
    t_ort, b = _timed(lambda: upscale_tensor(fast, u8, out_dtype=torch.uint8), 1)
    diff = (a.int() - b.int()).abs().max().item()  # type: ignore[union-attr]
    print(
        f"\ntiled upscale_tensor ({DEFAULT_MODEL}, auto tiles, uint8): PyTorch {t_pt:.2f} s, "
        f"--backend onnxruntime {t_ort:.2f} s: ratio {t_pt / t_ort:.2f}x (ship if >= 1.3x); max diff {diff}/255\n"
    )


def overhead(size: int, threads: int) -> None:
    from PIL import Image

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "big.png"
        Image.fromarray(_image(size)[0].permute(1, 2, 0).numpy()).save(src)
        cli = [sys.executable, "-m", "sruscale", "upscale", str(src), "-o", f"{tmp}/out", "-m", DEFAULT_MODEL, "-q"]
        plain = (
            "import torch, numpy as np\nfrom PIL import Image\nfrom sruscale.api import load_model\n"
            f"torch.set_num_threads({threads})\n"
            f"m = load_model({DEFAULT_MODEL!r})\n"
            f"x = torch.from_numpy(np.asarray(Image.open({str(src)!r}))).permute(2, 0, 1)[None].float() / 255\n"
            "with torch.inference_mode():\n    y = m(x)\n"
        )
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", plain], check=True, env=env)
        t_plain = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(cli, check=True, env=env)
        t_cli = time.perf_counter() - start
    print(f"## Overhead: {size}x{size} PNG, {DEFAULT_MODEL}, fresh processes, {threads} thread(s)\n")
    print(f"plain forward process {t_plain:.2f} s; `sruscale upscale` {t_cli:.2f} s")
    print(f"ratio sruscale upscale / plain forward: {t_cli / t_plain:.3f} (target <= 1.05)\n")


def _photos(folder: Path, n: int) -> list[Path]:
    """``n`` JPEG photos of 1152x864 (resized benchmark photos when ../shared/data exists, else smooth noise)."""
    from PIL import Image

    from sruscale.image import list_images

    data = REPO.parent / "shared" / "data" / "Urban100"
    sources = list_images(data)[:n] if data.is_dir() else []
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        if k < len(sources):
            im = Image.open(sources[k]).convert("RGB").resize((1152, 864), Image.BICUBIC)
        else:
            small = np.random.default_rng(k).integers(0, 256, (108, 144, 3), dtype=np.uint8)
            im = Image.fromarray(small).resize((1152, 864), Image.BICUBIC)
        out.append(folder / f"photo{k:03d}.jpg")
        im.save(out[-1], quality=90)
    return out


def pipeline(photos: int, threads: int, repeats: int) -> None:
    from PIL import Image

    from sruscale import batch, upscaling
    from sruscale.image import read_image

    torch.set_num_threads(threads)
    print(f"## Pipelined batch: {DEFAULT_MODEL}, x2, {threads} thread(s), one process, best of {repeats} interleaved\n")
    print("| input | plain forwards s | tiled forwards s | one file at a time s | pipelined s | pipelined / plain "
          "| pipelined / tiled | pipelined / one at a time |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        big = root / "big" / "big.png"
        big.parent.mkdir()
        Image.fromarray(_image(2048)[0].permute(1, 2, 0).numpy()).save(big)
        photo = root / "photo" / "photo.png"
        photo.parent.mkdir()
        Image.open(_photos(root / "source", 1)[0]).resize((2048, 2048), Image.BICUBIC).save(photo)
        folder = [(f"{photos} photos, 1152x864 JPEG", _photos(root / "photos", photos))] if photos else []
        cases = (*folder, ("2048^2 PNG (noise)", [big]), ("2048^2 PNG (photo)", [photo]))
        for label, files in cases:
            def plan(out: str, files: list[Path] = files) -> batch.BatchPlan:
                return batch.plan_batch(batch.UpscaleRequest(inputs=(str(files[0].parent),), output=root / out,
                                                             model=DEFAULT_MODEL, scale=2, existing="overwrite"))

            seq, piped = plan("seq"), plan("piped")
            prepared = batch.prepare_models(seq)
            model = prepared.models
            assert isinstance(model, torch.nn.Module)
            pixels = [read_image(f).pixels for f in files]

            def forwards(tiles: bool, model: torch.nn.Module = model, pixels: list[torch.Tensor] = pixels) -> None:
                with torch.inference_mode():
                    for x in pixels:
                        upscale_tensor(model, x, tile=None if tiles else 0)  # type: ignore[arg-type]

            runs = {
                "plain": lambda: forwards(False),
                "tiled": lambda: forwards(True),
                "seq": lambda seq=seq, prepared=prepared: [upscaling.process_job(j, prepared.models, prepared.settings)
                                                           for j in seq.jobs],
                "piped": lambda piped=piped, prepared=prepared: batch.run_batch(piped.jobs, prepared),
            }
            forwards(True)  # warm-up
            best = dict.fromkeys(runs, float("inf"))
            for _ in range(repeats):
                for key, fn in runs.items():
                    best[key] = min(best[key], _timed(fn, 1)[0])
            same = all((root / "piped" / j.output.name).read_bytes() == j.output.read_bytes() for j in seq.jobs)
            b = best
            print(f"| {label} | {b['plain']:.1f} | {b['tiled']:.1f} | {b['seq']:.1f} | {b['piped']:.1f} "
                  f"| {b['piped'] / b['plain']:.3f} | {b['piped'] / b['tiled']:.3f} | {b['piped'] / b['seq']:.3f} |"
                  + ("" if same else " (outputs differ!)"))
    print()


def runtime(threads: int, repeats: int, scale: int = 4, side: int = 1024) -> None:
    """A whole batch run of one ``side``^2 photo at x``scale`` with the default model per ``--backend``,
    one process, best of ``repeats`` interleaved; GFLOP/s beside a plain 3x3 convolution's."""
    from PIL import Image

    from sruscale import batch
    from sruscale.weights import list_weights

    torch.set_num_threads(threads)
    name = choose_model(scale).name
    gf = next(e.number("gflops_per_mp") for e in list_weights() if e.name == name) or 0.0
    with tempfile.TemporaryDirectory() as tmp:
        src = _photos(Path(tmp) / "in", 1)[0]
        Image.open(src).resize((side, side), Image.BICUBIC).save(src)
        runs = {}
        for backend in ("torch", "onnxruntime"):
            plan = batch.plan_batch(batch.UpscaleRequest(inputs=(str(src),), output=Path(tmp) / backend, model=name,
                                                         scale=scale, backend=backend, existing="overwrite"))  # type: ignore[arg-type]
            prepared = batch.prepare_models(plan)
            batch.run_batch(plan.jobs, prepared)  # warm-up (ONNX export and cache)
            runs[backend] = (plan, prepared)
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(repeats):
            for backend, (plan, prepared) in runs.items():
                best[backend] = min(best[backend], _timed(lambda p=plan, q=prepared: batch.run_batch(p.jobs, q), 1)[0])
    out_mp = (side * scale) ** 2 / 1e6
    convs = {}
    for c in (32, 64):
        conv, x = torch.nn.Conv2d(c, c, 3, padding=1).eval(), torch.rand(1, c, 256, 256)
        with torch.inference_mode():
            convs[c] = 2 * c * c * 9 * 256 * 256 / _timed(lambda conv=conv, x=x: conv(x), max(repeats, 3))[0] / 1e9
    print(f"## Runtimes: `sruscale upscale` of a {side}^2 photo, x{scale}, {name}, {threads} thread(s), one process\n")
    print("| backend | seconds | output MP/s | GFLOP/s (whole run) | vs PyTorch |")
    print("|---|---|---|---|---|")
    for backend, sec in best.items():
        print(f"| {backend} | {sec:.2f} | {out_mp / sec:.2f} | {gf * out_mp / sec:.0f} | {best['torch'] / sec:.2f}x |")
    print(f"\nplain 3x3 convolution (PyTorch, 256^2): 32->32 {convs[32]:.0f} GFLOP/s, 64->64 {convs[64]:.0f} GFLOP/s\n")


def startup(repeats: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def best(cmd: list[str]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        return min(times)

    torch_s = best([sys.executable, "-c", "import torch"])
    print(f"## Start-up, best of {repeats}\n")
    print(f"python -c 'import torch': {torch_s:.2f} s")
    for args in (["--help"], ["upscale", "--help"]):
        t = best([sys.executable, "-m", "sruscale", *args])
        print(f"sruscale {' '.join(args)}: {t:.2f} s, ratio {t / torch_s:.2f} (target <= 0.3)")
    print()


def child(size: int, threads: int) -> None:
    """Upscale one ``size``^2 image with the default (auto) tiling; print a JSON line of measurements."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, x = create_model("fsrcnn", scale=2).eval(), _image(size)
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    y = upscale_tensor(model, x, out_dtype=torch.uint8)
    result = {
        "size": size,
        "tile": auto_tile_size(model, tuple(x.shape), torch.device("cpu"), torch.float32),
        "rss_before_mb": before,
        "peak_mb": _status_mb("VmHWM"),
        "seconds": time.perf_counter() - start,
        "in_mb": x.numel() / MB,
        "out_mb": y.numel() / MB,
    }
    print(json.dumps(result))


def memory(sizes: list[int], threads: int) -> None:
    rows = []
    for size in sizes:
        cmd = [sys.executable, __file__, "--child", str(size), "--threads", str(threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print("## Peak RSS (fresh process per size, FSRCNN x2, auto tiling, uint8 in/out)\n")
    print("| input | tile | seconds | RSS before call MB | peak RSS MB | input MB | output MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']}^2 | {r['tile']} | {r['seconds']:.1f} | {r['rss_before_mb']:.0f} | {r['peak_mb']:.0f} "
            f"| {r['in_mb']:.0f} | {r['out_mb']:.0f} |"
        )
    lo, hi = rows[0], rows[-1]
    print(
        f"\npeak RSS {hi['size']}^2 / {lo['size']}^2: {hi['peak_mb'] / lo['peak_mb']:.2f}x (target <= 1.5x); "
        f"growth {hi['peak_mb'] - lo['peak_mb']:.0f} MB of which input+output images "
        f"{hi['in_mb'] + hi['out_mb'] - lo['in_mb'] - lo['out_mb']:.0f} MB\n"
    )


def photo_memory(threads: int, width: int = 3000, height: int = 2000, scale: int = 4) -> None:
    """Peak RSS of a whole ``sruscale upscale`` (fresh process) of a ``width`` x ``height`` photo at x``scale``."""
    import resource

    from PIL import Image

    model = choose_model(scale).name
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo.png"
        data = REPO.parent / "shared" / "data" / "Urban100" / "img_002.png"
        fallback = _image(512)[0].permute(1, 2, 0).numpy()
        im = Image.open(data).convert("RGB") if data.is_file() else Image.fromarray(fallback)
        im.resize((width, height), Image.BICUBIC).save(src)
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), "SRUSCALE_PRETRAINED": "0"}
        cmd = [sys.executable, "-m", "sruscale", "upscale", str(src), "-o", f"{tmp}/out", "-m", model,
               "-s", str(scale), "-q", "--overwrite"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / MB
    in_mb, out_mb = width * height * 3 / MB, width * height * scale * scale * 3 / MB
    print(f"## Peak RSS of `sruscale upscale` on a {width}x{height} 8-bit photo, x{scale} ({model}), fresh process\n")
    print(f"{seconds:.1f} s; peak RSS {peak:.0f} MB; input {in_mb:.0f} MB + output {out_mb:.0f} MB (8-bit) "
          f"+ 400 MB = {in_mb + out_mb + 400:.0f} MB target: {'met' if peak <= in_mb + out_mb + 400 else 'missed'}\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2: this machine's cores)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--size", type=int, default=2048, help="input side for backends and overhead")
    p.add_argument("--memory-sizes", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--photos", type=int, default=50, help="photos in the pipeline folder (0: the 2048^2 images only)")
    p.add_argument("--only", choices=["backends", "runtime", "overhead", "startup", "pipeline", "memory",
                                      "photo-memory"],
                   action="append")
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.threads)
        return
    only = set(args.only or ["backends", "runtime", "overhead", "startup", "pipeline", "memory", "photo-memory"])
    if "startup" in only:
        startup(max(args.repeats, 3))
    if "backends" in only:
        backends(args.size, args.threads, args.repeats)
    if "runtime" in only:
        runtime(args.threads, max(args.repeats, 3))
    if "overhead" in only:
        overhead(args.size, args.threads)
    if "pipeline" in only:
        pipeline(args.photos, args.threads, max(args.repeats, 3))
    if "memory" in only:
        memory(args.memory_sizes, args.threads)
    if "photo-memory" in only:
        photo_memory(args.threads)


if __name__ == "__main__":
    main()
