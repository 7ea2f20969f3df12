"""PNG writing: sruscale's band encoder against Pillow (zlib level 6) and OpenCV (its defaults), same process.

Images: Set14 upscaled x2 by the bundled default model (the files ``sruscale upscale`` writes), one
4096x4096 photo-like image (an Urban100 photo resized with bicubic) and 4096x4096 uniform noise; without
``../shared/data`` smooth synthetic images stand in. Prints seconds and bytes per encoder, ratios to
Pillow, and checks that every file decodes to the same pixels. Best of ``--repeats``.

    nice python benchmarks/png.py [--repeats 2] [--workers N]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from sruscale._png import _default_workers, band_rows, write_png

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _ours(a: np.ndarray, workers: int) -> bytes:
    h, w, c = a.shape
    rows, buf = band_rows(w, c, 8), io.BytesIO()
    write_png(buf, (a[y : y + rows] for y in range(0, h, rows)), width=w, height=h, channels=c, depth=8,
              workers=workers)  # fmt: skip
    return buf.getvalue()


def _pillow(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _opencv(a: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a[:, :, ::-1]))
    assert ok
    return buf.tobytes()


def _images() -> list[tuple[str, np.ndarray]]:
    from sruscale.tiling import upscale_tensor
    from sruscale.weights import load_model

    rng = np.random.default_rng(0)
    out: list[tuple[str, np.ndarray]] = []
    sources = sorted((DATA / "Set14").glob("*.png")) if (DATA / "Set14").is_dir() else []
    if sources:
        model = load_model("plainsr-x2")
        for f in sources:
            x = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
            with torch.inference_mode():
                y = upscale_tensor(model, x, tile=None)
            out.append((f"Set14 x2 {f.stem}", (y[0] * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()))
    urban = sorted((DATA / "Urban100").glob("*.png")) if (DATA / "Urban100").is_dir() else []
    if urban:
        big = np.asarray(Image.open(urban[0]).convert("RGB").resize((4096, 4096), Image.BICUBIC))
    else:
        small = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        big = np.asarray(Image.fromarray(small).resize((4096, 4096), Image.BICUBIC))
    out.append(("4096^2 photo", big))
    out.append(("4096^2 noise", rng.integers(0, 256, (4096, 4096, 3), dtype=np.uint8)))
    return out


def _best(fn: Callable[[], bytes], repeats: int) -> tuple[float, bytes]:
    best, data = float("inf"), b""
    for _ in range(repeats):
        start = time.perf_counter()
        data = fn()
        best = min(best, time.perf_counter() - start)
    return best, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=_default_workers())
    args = ap.parse_args()
    torch.set_num_threads(2)
    coders: dict[str, Callable[[np.ndarray], bytes]] = {
        "pillow": _pillow,
        "opencv": _opencv,
        "ours, 1 thread": lambda a: _ours(a, 1),
        f"ours, {args.workers} threads": lambda a: _ours(a, args.workers),
    }
    print(f"| image | {' | '.join(f'{k} s / MB' for k in coders)} | ours 1 thread: time / size vs Pillow "
          f"| ours {args.workers} threads: time vs Pillow |")
    print("|---" * (len(coders) + 3) + "|")
    totals = {k: [0.0, 0] for k in coders}
    rows: list[str] = []
    for label, a in _images():
        cells, results = [], {}
        for name, fn in coders.items():
            seconds, data = _best(lambda fn=fn, a=a: fn(a), args.repeats)
            decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            assert np.array_equal(decoded, a), f"{name} on {label}: pixels differ"
            results[name] = (seconds, len(data))
            if not label.startswith("4096"):
                totals[name][0] += seconds
                totals[name][1] += len(data)
            cells.append(f"{seconds:.2f} / {len(data) / 1e6:.2f}")
        many = f"ours, {args.workers} threads"
        (tp, sp), (t1, s1), (tn, _) = results["pillow"], results["ours, 1 thread"], results[many]
        rows.append(f"| {label} | {' | '.join(cells)} | {t1 / tp:.2f} / {s1 / sp:.3f} | {tn / tp:.2f} |")
    (tp, sp), (t1, s1) = totals["pillow"], totals["ours, 1 thread"]
    tn = totals[f"ours, {args.workers} threads"][0]
    cells = [f"{t:.2f} / {s / 1e6:.2f}" for t, s in totals.values()]
    rows.append(f"| Set14 x2, all | {' | '.join(cells)} | {t1 / tp:.2f} / {s1 / sp:.3f} | {tn / tp:.2f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
