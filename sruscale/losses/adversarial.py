"""GAN objectives for SR: vanilla (BCE), LSGAN, WGAN-GP, hinge and relativistic average (ESRGAN).

Two levels:

* logit level, pure functions of discriminator outputs: :func:`gan_generator_loss`,
  :func:`gan_discriminator_loss`, plus :func:`gradient_penalty` (needs the discriminator);
* image level, which call the discriminator: :func:`generator_adversarial_loss` (the
  generator's term, used by :class:`~sruscale.losses.CombinedLoss`) and
  :func:`discriminator_adversarial_loss` (the discriminator's whole objective, including
  the gradient penalty for WGAN-GP).

Kinds (``kind=``):

============  ===============================================  ==========================================
kind          discriminator loss (r = D(real), f = D(fake))      generator loss
============  ===============================================  ==========================================
``vanilla``   ``softplus(-r) + softplus(f)`` (BCE)              ``softplus(-f)`` (non-saturating BCE)
``lsgan``     ``(r - 1)^2 + f^2``                               ``(f - 1)^2``
``wgan-gp``   ``f - r`` (+ ``gp_weight`` * gradient penalty)    ``-f``
``hinge``     ``relu(1 - r) + relu(1 + f)``                     ``-f``
``ragan``     ``(BCE(r - E[f], 1) + BCE(f - E[r], 0)) / 2``     ``(BCE(r - E[f], 0) + BCE(f - E[r], 1)) / 2``
============  ===============================================  ==========================================

References: Goodfellow et al. 2014; Mao et al., LSGAN, ICCV 2017; Gulrajani et al., WGAN-GP,
NeurIPS 2017; Lim & Ye 2017 / Miyato et al. 2018 (hinge); Jolicoeur-Martineau 2018 and
Wang et al., ESRGAN, ECCVW 2018 (relativistic average).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._reduce import Reduction, check_image, check_reduction, reduce

__all__ = [
    "GAN_KINDS",
    "AdversarialLoss",
    "DiscriminatorLoss",
    "GANKind",
    "discriminator_adversarial_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "generator_adversarial_loss",
    "gradient_penalty",
]

GANKind = Literal["vanilla", "lsgan", "wgan-gp", "hinge", "ragan"]
GAN_KINDS: tuple[str, ...] = ("vanilla", "lsgan", "wgan-gp", "hinge", "ragan")


def _check_kind(kind: str) -> None:
    if kind not in GAN_KINDS:
        raise ValueError(f"GAN kind must be one of {list(GAN_KINDS)}, got {kind!r}")


def _check_logits(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor of logits, got {type(x).__name__}")
    if x.ndim < 1 or x.numel() == 0:
        raise ValueError(f"{name}: expected logits of shape (B, ...), got shape {tuple(x.shape)}")


def _f32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (autocast) are scored in float32."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_same(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake logits must have the same shape: real is {tuple(real.shape)}, fake is {tuple(fake.shape)}"
        )


def gan_generator_loss(
    fake_logits: torch.Tensor,
    real_logits: torch.Tensor | None = None,
    *,
    kind: GANKind = "vanilla",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """The generator's adversarial loss from discriminator logits (see the module table).

    Args:
        fake_logits: ``D(G(x))``, shape ``(B, ...)`` (``(B, 1)`` for VGG-style, ``(B, 1, H, W)`` for U-Net).
        real_logits: ``D(y)``, same shape; required for ``ragan`` only (treated as a constant).
        kind: ``"vanilla"``, ``"lsgan"``, ``"wgan-gp"``, ``"hinge"`` or ``"ragan"``.
        reduction: ``"none"`` (shape of the logits), ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: unknown kind/reduction, ``ragan`` without ``real_logits``, shapes differ.
    """
    _check_kind(kind)
    check_reduction(reduction)
    _check_logits(fake_logits, "fake_logits")
    f = _f32(fake_logits)
    if kind == "vanilla":
        loss = F.softplus(-f)
    elif kind == "lsgan":
        loss = (f - 1).square()
    elif kind in ("wgan-gp", "hinge"):
        loss = -f
    else:
        if real_logits is None:
            raise ValueError("kind='ragan' needs real_logits (the discriminator's output on real images)")
        _check_logits(real_logits, "real_logits")
        _check_same(real_logits, f)
        r = _f32(real_logits.detach())
        # BCE(r - E[f], 0) + BCE(f - E[r], 1)
        loss = 0.5 * (F.softplus(r - f.mean()) + F.softplus(-(f - r.mean())))
    return reduce(loss, reduction)


def gan_discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    *,
    kind: GANKind = "vanilla",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """The discriminator's adversarial loss from logits (the WGAN-GP penalty is separate).

    Args:
        real_logits: ``D(y)`` for real (HR) images, shape ``(B, ...)``.
        fake_logits: ``D(G(x))`` for generated images, same shape.
        kind: ``"vanilla"``, ``"lsgan"``, ``"wgan-gp"``, ``"hinge"`` or ``"ragan"``.
        reduction: ``"none"`` (shape of the logits; real and fake terms added element-wise),
            ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: unknown kind/reduction or different shapes.
    """
    _check_kind(kind)
    check_reduction(reduction)
    _check_logits(real_logits, "real_logits")
    _check_logits(fake_logits, "fake_logits")
    _check_same(real_logits, fake_logits)
    r, f = _f32(real_logits), _f32(fake_logits)
    if kind == "vanilla":
        loss = F.softplus(-r) + F.softplus(f)
    elif kind == "lsgan":
        loss = (r - 1).square() + f.square()
    elif kind == "wgan-gp":
        loss = f - r
    elif kind == "hinge":
        loss = F.relu(1 - r) + F.relu(1 + f)
    else:
        # BCE(r - E[f], 1) + BCE(f - E[r], 0)
        loss = 0.5 * (F.softplus(-(r - f.mean())) + F.softplus(f - r.mean()))
    return reduce(loss, reduction)


def gradient_penalty(
    disc: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """WGAN-GP penalty ``(||grad_x D(x_hat)||_2 - 1)^2`` at random interpolates ``x_hat``.

    ``x_hat = a * real + (1 - a) * fake`` with ``a ~ U(0, 1)`` per sample (global RNG).
    The graph is kept (``create_graph=True``) so the penalty trains the discriminator.

    Args:
        disc: the discriminator (any callable image -> logits).
        real, fake: ``(B, C, H, W)`` images of the same shape; ``fake`` is detached.
        reduction: ``"none"`` gives ``(B,)``; ``"mean"`` / ``"sum"`` over the batch.

    Raises:
        ValueError: shapes differ, not 4-D, or unknown reduction.
    """
    check_image(real, "real")
    check_image(fake, "fake")
    check_reduction(reduction)
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape: real is {tuple(real.shape)}, fake is {tuple(fake.shape)}"
        )
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = disc(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    penalty = (grad.flatten(1).norm(2, dim=1) - 1).square()
    return reduce(penalty, reduction)


def generator_adversarial_loss(
    disc: Callable[[torch.Tensor], torch.Tensor],
    fake: torch.Tensor,
    real: torch.Tensor | None = None,
    *,
    kind: GANKind = "vanilla",
) -> torch.Tensor:
    """The generator's adversarial term for generated images ``fake`` (scalar, batch mean).

    Gradients reach ``fake`` and also accumulate in ``disc``'s parameters: freeze the
    discriminator (``requires_grad_(False)``) for the generator step, or zero its
    gradients before its own step.

    Args:
        disc: the discriminator.
        fake: ``(B, C, H, W)`` generator output (with grad).
        real: ``(B, C, H, W)`` real images; required for ``ragan`` (evaluated without grad).
        kind: see the module table.

    Raises:
        ValueError: unknown kind, bad shapes, ``ragan`` without ``real``.
    """
    _check_kind(kind)
    check_image(fake, "fake")
    real_logits = None
    if kind == "ragan":
        if real is None:
            raise ValueError("kind='ragan' needs the real images (real=...)")
        check_image(real, "real")
        with torch.no_grad():
            real_logits = disc(real)
    return gan_generator_loss(disc(fake), real_logits, kind=kind)


def discriminator_adversarial_loss(
    disc: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    kind: GANKind = "vanilla",
    gp_weight: float = 10.0,
) -> torch.Tensor:
    """The discriminator's whole objective (scalar, batch mean); ``fake`` is detached.

    For ``wgan-gp`` it adds ``gp_weight * gradient_penalty(disc, real, fake)``.

    Args:
        disc: the discriminator (its parameters need grad).
        real: ``(B, C, H, W)`` real (HR) images.
        fake: ``(B, C, H, W)`` generator output; detached here.
        kind: see the module table.
        gp_weight: weight of the WGAN-GP gradient penalty (ignored for other kinds).

    Raises:
        ValueError: unknown kind, bad shapes.
    """
    _check_kind(kind)
    check_image(real, "real")
    check_image(fake, "fake")
    fake = fake.detach()
    loss = gan_discriminator_loss(disc(real), disc(fake), kind=kind)
    if kind == "wgan-gp" and gp_weight:
        loss = loss + gp_weight * gradient_penalty(disc, real, fake)
    return loss


class AdversarialLoss(nn.Module):
    """Module form of :func:`generator_adversarial_loss`: ``forward(disc, fake, real=None)``."""

    def __init__(self, *, kind: GANKind = "vanilla") -> None:
        super().__init__()
        _check_kind(kind)
        self.kind = kind

    def forward(
        self, disc: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor, real: torch.Tensor | None = None
    ) -> torch.Tensor:
        return generator_adversarial_loss(disc, fake, real, kind=self.kind)


class DiscriminatorLoss(nn.Module):
    """Module form of :func:`discriminator_adversarial_loss`: ``forward(disc, real, fake)``."""

    def __init__(self, *, kind: GANKind = "vanilla", gp_weight: float = 10.0) -> None:
        super().__init__()
        _check_kind(kind)
        self.kind = kind
        self.gp_weight = gp_weight

    def forward(
        self, disc: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        return discriminator_adversarial_loss(disc, real, fake, kind=self.kind, gp_weight=self.gp_weight)
