"""Grow a folded PlainSR file into a deeper and/or wider one that computes the same function.

Deeper: new body layers start as the identity (a centred eye kernel, zero bias, PReLU slope 1).
Wider: Net2WiderNet (Chen, Goodfellow, Shlens, ICLR 2016): each new channel copies a random old
one, and the next layer's weights from a copied channel are shared between its copies. A small
noise (``--noise``, relative to each kernel's scale) breaks the symmetry between copies.

    python train/grow_plainsr.py weights/realworld_x4.safetensors runs/grow/init.safetensors \\
        --blocks 16 --channels 32

Another scale (``--scale``, down only: x4 -> x2): the tail's sub-pixel outputs are averaged in
groups, so the new net's residual is the old one's box-averaged to the new grid (the bicubic skip
changes with the scale, so this is a starting point, not the same function).

The output is a folded (``deploy``) sruscale weights file; a recipe names it in ``model.init_weights`` with
the grown ``hparams``, and :meth:`PlainSR.init_from` unfolds it into the training branches.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sruscale.models.plainsr import PlainSR
from sruscale.weights import load_model, save_model


def _layers(state: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The body as ``(weight, bias, prelu)`` triples, in order."""
    n = sum(1 for k in state if k.startswith("body.") and k.endswith(".conv.weight"))
    return [
        (state[f"body.{2 * i}.conv.weight"], state[f"body.{2 * i}.conv.bias"], state[f"body.{2 * i + 1}.weight"])
        for i in range(n)
    ]


def grow(
    state: dict[str, torch.Tensor], *, blocks: int, channels: int, noise: float, seed: int
) -> dict[str, torch.Tensor]:
    """A folded PlainSR state with ``blocks`` body layers of ``channels`` channels, same function
    as ``state`` (up to ``noise``). Raises ValueError when asked to shrink."""
    layers = _layers(state)
    old_c, old_blocks = layers[0][0].shape[0], len(layers) - 1
    if blocks < old_blocks or channels < old_c:
        raise ValueError(f"can only grow: have {old_blocks} blocks x {old_c} channels, asked {blocks} x {channels}")
    gen = torch.Generator().manual_seed(seed)
    # Deeper: identity layers appended after the old body (a ReLU-free identity: PReLU slope 1).
    eye = torch.zeros(old_c, old_c, 3, 3)
    eye[:, :, 1, 1] = torch.eye(old_c)
    layers += [(eye.clone(), torch.zeros(old_c), torch.ones(old_c))] * (blocks - old_blocks)
    tail_w, tail_b = state["tail.conv.weight"], state["tail.conv.bias"]
    # Wider: one channel map g (new -> old) shared by every layer's output.
    g = torch.cat([torch.arange(old_c), torch.randint(old_c, (channels - old_c,), generator=gen)])
    counts = torch.bincount(g, minlength=old_c).to(tail_w.dtype)

    def jitter(w: torch.Tensor) -> torch.Tensor:
        return w + noise * w.std() * torch.randn(w.shape, generator=gen)

    out: dict[str, torch.Tensor] = {}
    for i, (w, b, a) in enumerate(layers):
        w = w[g]  # outputs copied
        if i > 0:  # inputs: the copies of an old channel share its weight
            w = w[:, g] / counts[g][None, :, None, None]
        out[f"body.{2 * i}.conv.weight"] = jitter(w).contiguous()
        out[f"body.{2 * i}.conv.bias"] = b[g].contiguous()
        out[f"body.{2 * i + 1}.weight"] = a[g].contiguous()
    out["tail.conv.weight"] = jitter(tail_w[:, g] / counts[g][None, :, None, None]).contiguous()
    out["tail.conv.bias"] = tail_b.clone()
    return out


def rescale_tail(state: dict[str, torch.Tensor], *, old: int, new: int) -> dict[str, torch.Tensor]:
    """``state`` with its pixel-shuffle tail retargeted from ``old`` to ``new`` (``old % new == 0``):
    each new sub-pixel output is the mean of the ``(old/new)^2`` old ones it covers."""
    if new > old or old % new:
        raise ValueError(f"can only go down to a divisor of the scale: x{old} -> x{new}")
    k = old // new
    w, b = state["tail.conv.weight"], state["tail.conv.bias"]
    c = w.shape[0] // old**2
    w6 = w.reshape(c, new, k, new, k, *w.shape[1:])  # channel index c*old^2 + i*old + j, i = a*k + di
    b6 = b.reshape(c, new, k, new, k)
    out = dict(state)
    out["tail.conv.weight"] = w6.mean(dim=(2, 4)).reshape(c * new**2, *w.shape[1:]).contiguous()
    out["tail.conv.bias"] = b6.mean(dim=(2, 4)).reshape(-1).contiguous()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path, help="folded PlainSR .safetensors")
    p.add_argument("dst", type=Path, help="output .safetensors (folded)")
    p.add_argument("--blocks", type=int, required=True, help="body layers of the grown net")
    p.add_argument("--channels", type=int, required=True, help="channels of the grown net")
    p.add_argument("--noise", type=float, default=1e-3, help="symmetry-breaking noise, relative to each kernel's std")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--scale", type=int, default=None, help="retarget the tail to this scale (a divisor of the source's)"
    )
    args = p.parse_args()
    src = load_model(weights=args.src)
    if not isinstance(src, PlainSR):
        raise SystemExit(f"{args.src}: expected a PlainSR file, got {src.name!r}")
    state = src.for_inference().state_dict()
    grown = grow(state, blocks=args.blocks, channels=args.channels, noise=args.noise, seed=args.seed)
    scale = src.hparams["scale"] if args.scale is None else args.scale
    if scale != src.hparams["scale"]:
        grown = rescale_tail(grown, old=src.hparams["scale"], new=scale)
    model = PlainSR(**{**src.hparams, "deploy": True, "blocks": args.blocks, "channels": args.channels, "scale": scale})
    model.load_state_dict(grown)
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.dst)
    print(f"wrote {args.dst}: {args.blocks} blocks x {args.channels} channels, x{scale}")  # noqa: T201


if __name__ == "__main__":
    main()
