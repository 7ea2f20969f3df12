"""PlainSR: a plain stack of 3x3 convolutions for fast CPU inference, trained with
multi-branch re-parameterised convolutions (our design; post-upsampling framework).

Ideas taken from: ECBSR (Zhang, Zeng, Zhang, "Edge-oriented Convolution Block for Real-time
Super Resolution on Mobile Devices", ACM MM 2021: 3x3, 1x1 -> 3x3 expand-squeeze and
Sobel/Laplacian branches), RepVGG (Ding et al., CVPR 2021: identity branch), SPAN's Conv3XC
and SESR (collapsible linear blocks), OREPA (Hu et al., CVPR 2022: fold the branches *online*,
so a training step costs what the folded convolution costs).

Training graph: ``head -> blocks x body -> tail``, each a :class:`RepConv3x3` (PReLU after all
but the tail), then a pixel shuffle, plus MATLAB bicubic of the input (the network learns the
residual). Every branch is linear, so each :class:`RepConv3x3` equals one 3x3 convolution;
:meth:`PlainSR.reparameterize` returns the folded (``deploy=True``) model, which is what ships
and what ``export`` writes. Published on nothing: a Y-channel network like FSRCNN/VDSR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import bicubic_upsample

__all__ = ["PlainSR", "RepConv3x3"]

# Fixed edge filters of ECBSR's edge branches: Sobel-x, Sobel-y, Laplacian.
_EDGE_FILTERS = torch.tensor(
    [
        [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
        [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],
        [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
    ]
)


def _pad_with_bias(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` by 1 with the per-channel ``bias`` (what a 1x1 conv gives on zero padding)."""
    b = bias.view(1, -1, 1, 1)
    return F.pad(y - b, (1, 1, 1, 1)) + b


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a convolution built with ``bias=True`` (every one here)."""
    if conv.bias is None:
        raise ValueError("expected a convolution with a bias")
    return conv.bias


class RepConv3x3(nn.Module):
    """A 3x3 convolution ``(B, in, H, W) -> (B, out, H, W)`` (zero padding 1) parameterised as a
    sum of linear branches: 3x3; 1x1; 1x1 -> 3x3 (``expand`` x wider); 1x1 -> scaled Sobel-x,
    Sobel-y, Laplacian; identity when ``in == out``.

    ``forward`` folds the branches into one kernel and runs one convolution (exactly equal to
    :meth:`forward_branches`, the branch-by-branch reference). With ``deploy=True`` the module
    holds only the folded ``conv``.
    """

    edge_filters: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, *, expand: int = 2, deploy: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.deploy = in_channels, out_channels, deploy
        if deploy:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            return
        mid = max(1, expand * out_channels)
        self.k3 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.k1 = nn.Conv2d(in_channels, out_channels, 1)
        self.expand_1x1 = nn.Conv2d(in_channels, mid, 1)
        self.expand_3x3 = nn.Conv2d(mid, out_channels, 3)
        n_edge = _EDGE_FILTERS.shape[0]
        self.edge_1x1 = nn.Conv2d(in_channels, n_edge * out_channels, 1)
        self.edge_scale = nn.Parameter(torch.randn(n_edge, out_channels) * 1e-3)
        self.edge_bias = nn.Parameter(torch.zeros(n_edge, out_channels))
        self.register_buffer("edge_filters", _EDGE_FILTERS.clone(), persistent=False)
        self.identity = in_channels == out_channels

    def fold(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent 3x3 kernel ``(out, in, 3, 3)`` and bias ``(out,)`` (differentiable)."""
        if self.deploy:
            return self.conv.weight, _bias(self.conv)
        o = self.out_channels
        w = self.k3.weight + F.pad(self.k1.weight, (1, 1, 1, 1))
        b = _bias(self.k3) + _bias(self.k1)
        e1w = self.expand_1x1.weight[:, :, 0, 0]  # (mid, in)
        w = w + torch.einsum("omhw,mi->oihw", self.expand_3x3.weight, e1w)
        b = b + _bias(self.expand_3x3) + torch.einsum("omhw,m->o", self.expand_3x3.weight, _bias(self.expand_1x1))
        filt = self.edge_filters  # (n, 3, 3)
        ew = self.edge_1x1.weight[:, :, 0, 0].view(-1, o, self.in_channels)  # (n, out, in)
        eb = _bias(self.edge_1x1).view(-1, o)  # (n, out)
        k = self.edge_scale[:, :, None, None] * filt[:, None]  # (n, out, 3, 3)
        w = w + torch.einsum("nohw,noi->oihw", k, ew)
        b = b + (self.edge_bias + k.sum(dim=(2, 3)) * eb).sum(dim=0)
        if self.identity:
            eye = torch.eye(o, dtype=w.dtype, device=w.device)
            w = w + F.pad(eye[:, :, None, None], (1, 1, 1, 1))
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.conv(x)
        w, b = self.fold()
        return F.conv2d(x, w, b, padding=1)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        """Branch-by-branch evaluation: the training-time graph that :meth:`fold` collapses."""
        if self.deploy:
            return self.conv(x)
        out = self.k3(x) + self.k1(x)
        out = out + self.expand_3x3(_pad_with_bias(self.expand_1x1(x), _bias(self.expand_1x1)))
        e = _pad_with_bias(self.edge_1x1(x), _bias(self.edge_1x1))
        n, o = self.edge_filters.shape[0], self.out_channels
        for i in range(n):
            ei = e[:, i * o : (i + 1) * o]
            kernel = (self.edge_scale[i, :, None, None] * self.edge_filters[i])[:, None]  # (out, 1, 3, 3)
            out = out + F.conv2d(ei, kernel, self.edge_bias[i], groups=o)
        if self.identity:
            out = out + x
        return out


class PlainSR(SRModel):
    """PlainSR (ours): ``blocks + 2`` re-parameterised 3x3 convolutions at LR resolution,
    pixel shuffle, bicubic skip. Post-upsampling framework.

    ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``. Trained on Y (``in_channels = 1``);
    ships folded (``deploy = True``): plain 3x3 convolutions and PReLU only.
    """

    name = "plainsr"
    framework = "post"
    scales = (2, 3, 4)
    channels_last = True

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        channels: int = 32,
        blocks: int = 10,
        expand: int = 2,
        deploy: bool = False,
    ) -> None:
        """Args:
        scale: upscaling factor.
        in_channels: 1 (Y) or 3 (RGB).
        channels: feature channels of every layer.
        blocks: body layers (the network has ``blocks + 2`` convolutions).
        expand: width multiplier of the 1x1 -> 3x3 training branch.
        deploy: build the folded network (one plain 3x3 convolution per layer).
        """
        super().__init__(scale=scale, in_channels=in_channels)
        self.receptive_field = blocks + 2  # type: ignore[misc]  # depth-dependent; ClassVar is the default
        layers: list[nn.Module] = [RepConv3x3(in_channels, channels, expand=expand, deploy=deploy), nn.PReLU(channels)]
        for _ in range(blocks):
            layers += [RepConv3x3(channels, channels, expand=expand, deploy=deploy), nn.PReLU(channels)]
        self.body = nn.Sequential(*layers)
        self.tail = RepConv3x3(channels, in_channels * scale * scale, expand=expand, deploy=deploy)
        self.shuffle = nn.PixelShuffle(scale)
        if not deploy:  # start near the bicubic skip: a small residual head
            with torch.no_grad():
                for p in self.tail.parameters():
                    p.mul_(0.01)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(self.body(x))) + bicubic_upsample(x, self.scale)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        """``forward_native`` evaluated branch by branch (reference for the folding test)."""
        h = x
        for layer in self.body:
            h = layer.forward_branches(h) if isinstance(layer, RepConv3x3) else layer(h)
        return self.shuffle(self.tail.forward_branches(h)) + bicubic_upsample(x, self.scale)

    def init_from(self, state: dict[str, torch.Tensor], *, partial: bool = False) -> list[str]:
        """As :meth:`SRModel.init_from`; a folded (shipped) state is first unfolded into the
        training branches: the 3x3 branch takes the folded kernel (less the identity), the
        other branches start at zero output with live gradients."""
        if not any(k.endswith(".conv.weight") for k in state):
            return super().init_from(state, partial=partial)
        if partial:
            state = self._grown(state)
        if self.hparams["deploy"]:
            return super().init_from(state, partial=partial)
        unfolded = dict(state)
        for name, mod in self.named_modules():
            if not isinstance(mod, RepConv3x3) or f"{name}.conv.weight" not in state:
                continue
            w, b = unfolded.pop(f"{name}.conv.weight"), unfolded.pop(f"{name}.conv.bias")
            if mod.identity and w.shape == mod.k3.weight.shape:
                w = w - F.pad(torch.eye(w.shape[0], dtype=w.dtype)[:, :, None, None], (1, 1, 1, 1))
            own = {k: v.clone() for k, v in mod.state_dict().items()}
            own.update({"k3.weight": w, "k3.bias": b})
            for key in ("k1.weight", "k1.bias", "expand_3x3.weight", "expand_3x3.bias", "edge_scale", "edge_bias"):
                own[key] = torch.zeros_like(own[key])
            unfolded.update({f"{name}.{k}": v for k, v in own.items()})
        return super().init_from(unfolded, partial=partial)

    def _grown(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A folded ``state`` fitted to this net where that keeps its function: a narrower file is
        widened (see :meth:`_widened`), body layers it lacks are appended as identities (centred eye
        kernel, zero bias, PReLU slope 1), and a tail of a multiple of this scale (x4 -> x2) is averaged
        over the sub-pixels each new one covers."""
        out = self._widened(state)
        c, n = self.hparams["channels"], sum(1 for k in out if k.startswith("body.") and k.endswith(".conv.weight"))
        last = out.get(f"body.{2 * (n - 1)}.conv.weight")
        if last is not None and last.shape[0] == c:
            eye = F.pad(torch.eye(c, dtype=last.dtype)[:, :, None, None], (1, 1, 1, 1))
            for i in range(n, self.hparams["blocks"] + 1):
                out.update({f"body.{2 * i}.conv.weight": eye.clone(), f"body.{2 * i}.conv.bias": torch.zeros(c),
                            f"body.{2 * i + 1}.weight": torch.ones(c)})  # fmt: skip
        w, b = out.get("tail.conv.weight"), out.get("tail.conv.bias")
        new, ch = self.scale, self.in_channels
        if w is not None and b is not None and w.shape[0] != ch * new * new:
            k = round((w.shape[0] / (ch * new * new)) ** 0.5)
            if k > 1 and ch * (new * k) ** 2 == w.shape[0]:  # channel index (c, i, j) with i = a * k + di
                out["tail.conv.weight"] = w.reshape(ch, new, k, new, k, *w.shape[1:]).mean(dim=(2, 4)).flatten(0, 2)
                out["tail.conv.bias"] = b.reshape(ch, new, k, new, k).mean(dim=(2, 4)).flatten()
        return out

    def _widened(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A folded ``state`` of fewer feature channels and the same image channels, made this net's
        width with its function kept (Net2Net-style, Chen et al., ICLR 2016): each old channel keeps
        its kernels and ignores the new channels (zero weights from them), each new channel starts as
        a centred identity of itself plus a small random kernel over all inputs (zero bias, PReLU
        slope 0.25), so the zero weights get gradients at the first step. The tail keeps its rows
        (sub-pixel outputs: another scale's are fitted by :meth:`_grown` or left new)."""
        head = state.get("body.0.conv.weight")
        c = self.hparams["channels"]
        if head is None or head.dim() != 4 or head.shape[0] >= c or head.shape[1] != self.in_channels:
            return dict(state)
        old = head.shape[0]
        own = PlainSR(**{**self.hparams, "deploy": True}).state_dict()  # the folded shapes
        out = dict(state)
        for key, src in state.items():
            dst = own.get(key)
            if dst is None or dst.dim() != src.dim() or key == "tail.conv.bias":
                continue
            if src.dim() == 1:  # a feature channel's bias (0) or PReLU slope (0.25)
                if src.shape[0] != old:
                    continue
                new = torch.full((c,), 0.0 if key.endswith(".conv.bias") else 0.25, dtype=src.dtype)
                new[:old] = src
            else:  # (out, in, 3, 3): new rows random, old rows blind to the new inputs
                if src.shape[1] not in (old, self.in_channels):
                    continue
                rows = src.shape[0] if key == "tail.conv.weight" else dst.shape[0]
                bound = (dst.shape[1] * 9) ** -0.5 * 0.1
                new = (torch.rand(rows, dst.shape[1], 3, 3, dtype=src.dtype) * 2 - 1) * bound
                new[: src.shape[0]] = 0
                new[: src.shape[0], : src.shape[1]] = src
                if src.shape[0] < rows and dst.shape[0] == dst.shape[1]:  # body: the new channels carry themselves
                    new[old:, old:, 1, 1] += torch.eye(rows - old, dtype=src.dtype)
            out[key] = new
        return out

    def for_inference(self) -> SRModel:
        return self if self.hparams.get("deploy") else self.reparameterize()

    @torch.no_grad()
    def reparameterize(self) -> PlainSR:
        """The folded copy (``deploy=True``): same outputs, plain 3x3 convolutions."""
        hp = {**self.hparams, "deploy": True}
        ref = next(self.parameters())
        folded = PlainSR(**hp).to(device=ref.device, dtype=ref.dtype)
        targets = dict(folded.named_modules())
        for name, src in self.named_modules():
            dst = targets.get(name)
            if isinstance(src, RepConv3x3) and isinstance(dst, RepConv3x3):
                w, b = src.fold()
                dst.conv.weight.copy_(w)
                _bias(dst.conv).copy_(b)
            elif isinstance(src, nn.PReLU) and isinstance(dst, nn.PReLU):
                dst.weight.copy_(src.weight)
        return folded.eval() if not self.training else folded
