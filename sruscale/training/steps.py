"""One training step: forward, loss, backward, optional clip, optimizer step (then the discriminator's).

:func:`_train_step` takes everything it needs in a :class:`_Parts` (built once by
:func:`sruscale.training.fit`) and returns plain floats for the logs; nothing is passed
between calls through attributes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..models import SRModel
from ..resize import imresize
from .config import GANConfig, ProgressiveConfig


@dataclass
class _Parts:
    """Everything one training step needs (built once by :func:`fit`)."""

    model: nn.Module  # possibly DDP-wrapped
    loss: Any  # CombinedLoss
    plain_loss: Any  # CombinedLoss without the adversarial term (or None)
    optimizer: torch.optim.Optimizer
    scaler: Any
    autocast: Callable[[], Any]
    grad_clip: float
    progressive: ProgressiveConfig | None
    levels: int = 1
    disc: nn.Module | None = None
    disc_optimizer: torch.optim.Optimizer | None = None
    gan: GANConfig | None = None
    distributed: bool = False


def _curriculum(p: ProgressiveConfig, iteration: int, levels: int) -> tuple[int, float]:
    """Active pyramid levels at ``iteration`` and the blend weight of the newest one."""
    active = min(levels, 1 + sum(iteration >= c for c in p.curriculum))
    if active == 1 or p.blend <= 0:
        return active, 1.0
    since = iteration - p.curriculum[active - 2]
    return active, min(1.0, (since + 1) / p.blend)


def _loss_terms(parts: _Parts, sr: torch.Tensor | list[torch.Tensor], hr: torch.Tensor, iteration: int) -> tuple[
    torch.Tensor, dict[str, torch.Tensor], bool
]:
    """Total loss, its weighted components, and whether the adversarial term was used.

    For a pyramid (list of levels, coarsest first) every active level is compared with the
    HR resized to its size (MATLAB bicubic), weighted by ``progressive.level_weights``.
    """
    if isinstance(sr, list):
        p = parts.progressive or ProgressiveConfig()
        active, _ = _curriculum(p, iteration, parts.levels)
        total, terms = hr.new_zeros((), dtype=torch.float32), {}
        for level, out in enumerate(sr[:active]):
            target = hr if out.shape[-2:] == hr.shape[-2:] else imresize(hr, size=tuple(out.shape[-2:]))
            lw = p.level_weights[level] if level < len(p.level_weights) else 1.0
            t, level_terms = parts.loss(out.float(), target)
            total = total + lw * t
            terms.update({f"{k}@{level + 1}": lw * v for k, v in level_terms.items()})
        return total, terms, False
    gan_on = parts.disc is not None and parts.gan is not None and iteration >= parts.gan.start
    if parts.disc is not None and not gan_on:
        total, terms = parts.plain_loss(sr.float(), hr)
        return total, terms, False
    if gan_on:
        assert parts.disc is not None
        parts.disc.requires_grad_(False)
    total, terms = parts.loss(sr.float(), hr, disc=parts.disc)
    return total, terms, gan_on


def _train_step(parts: _Parts, lr: torch.Tensor, hr: torch.Tensor, iteration: int) -> dict[str, float]:
    """Forward, loss, backward, optional clip, step (then the discriminator step for GANs).

    Returns the weighted loss components (floats), ``loss`` (their sum), ``grad_norm`` and
    ``skipped`` (1.0 when the NaN/Inf guard dropped the step).
    """
    opt = parts.optimizer
    with parts.autocast():
        if parts.progressive is not None:  # a list of pyramid levels
            sr = parts.model(lr, *_curriculum(parts.progressive, iteration, parts.levels))
        else:
            sr = parts.model(lr)
        loss, terms, gan_on = _loss_terms(parts, sr, hr, iteration)
    opt.zero_grad(set_to_none=True)
    stats = {k: float(v) for k, v in terms.items()}
    stats["loss"] = float(loss.detach())
    if not math.isfinite(stats["loss"]):
        stats["skipped"] = 1.0
        return stats
    parts.scaler.scale(loss).backward() if parts.scaler is not None else loss.backward()
    if parts.scaler is not None:
        parts.scaler.unscale_(opt)
    params = [p for g in opt.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, parts.grad_clip if parts.grad_clip > 0 else float("inf"))
    if parts.scaler is None and not torch.isfinite(norm):
        opt.zero_grad(set_to_none=True)
        stats["skipped"] = 1.0
        return stats
    if parts.scaler is not None:
        parts.scaler.step(opt)
        parts.scaler.update()
    else:
        opt.step()
    stats["grad_norm"] = float(norm)
    stats["skipped"] = 0.0
    if gan_on:
        final = sr[-1] if isinstance(sr, list) else sr
        stats.update(_discriminator_step(parts, final.detach().float(), hr))
    return stats


def _discriminator_step(parts: _Parts, fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """One discriminator update on ``real`` HR and detached ``fake`` SR; skipped when non-finite."""
    assert parts.disc is not None and parts.disc_optimizer is not None
    parts.disc.requires_grad_(True)
    with parts.autocast():
        d_loss = parts.loss.discriminator_loss(parts.disc, real, fake)
    parts.disc_optimizer.zero_grad(set_to_none=True)
    value = float(d_loss.detach())
    if not math.isfinite(value):
        return {"d_loss": value, "d_skipped": 1.0}
    d_loss.backward()
    if parts.distributed:  # the discriminator is not DDP-wrapped: average its gradients by hand
        world = torch.distributed.get_world_size()
        for p in parts.disc.parameters():
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad.div_(world)
    parts.disc_optimizer.step()
    return {"d_loss": value}


# --------------------------------------------------------------------------- model wrappers


class _Pyramid(nn.Module):
    """Makes ``forward_pyramid`` the ``forward`` of a module, so DDP hooks see it.

    Models that declare :attr:`SRModel.pyramid_curriculum` (ProSR: ``forward_pyramid`` takes
    ``max_level`` / ``blend``) run only the active levels, the newest faded in; others (LapSRN)
    run every level.
    """

    def __init__(self, model: SRModel) -> None:
        super().__init__()
        self.model = model
        self.curriculum_aware = model.pyramid_curriculum

    def forward(self, x: torch.Tensor, level: int, blend: float) -> list[torch.Tensor]:
        if self.curriculum_aware:
            return self.model.forward_pyramid(x, max_level=level, blend=blend)  # type: ignore[operator]  # progressive models only; fit() checks
        return self.model.forward_pyramid(x)  # type: ignore[operator]  # progressive models only; fit() checks


class _EMA:
    """Exponential moving average of a model's parameters (buffers are copied).

    The decay after iteration ``step`` (0-based) is ``min(decay, (1 + step) / (10 + step))``: early
    averages forget the initial weights quickly, so a short run's EMA is not mostly its starting point
    (with 0.999 alone, 13% of the EMA after 2,000 steps would still be the initialisation).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, *, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), weight)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)
