"""Training losses: pixel, perceptual/style on frozen ImageNet backbones, TV, SSIM, GAN; discriminators.

Every loss is a plain function plus a thin ``nn.Module`` that stores its configuration;
:func:`build_loss` assembles a recipe's weighted sum (:class:`CombinedLoss`).
"""

from __future__ import annotations

from ._reduce import Reduction, reduce
from .adversarial import (
    GAN_KINDS,
    AdversarialLoss,
    DiscriminatorLoss,
    GANKind,
    discriminator_adversarial_loss,
    gan_discriminator_loss,
    gan_generator_loss,
    generator_adversarial_loss,
    gradient_penalty,
)
from .combined import LOSS_TYPES, CombinedLoss, build_loss
from .discriminators import (
    DISCRIMINATORS,
    FeatureDiscriminator,
    UNetDiscriminatorSN,
    VGGStyleDiscriminator,
    build_discriminator,
)
from .features import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TORCHVISION_FILES,
    FeatureExtractor,
    ResNetFeatures,
    VGG19Features,
    backbone_channels,
    backbone_layers,
    create_backbone,
    find_backbone_weights,
    load_backbone,
    read_state_dict,
)
from .perceptual import PerceptualLoss, StyleLoss, gram_matrix, perceptual_loss, style_loss
from .pixel import (
    CharbonnierLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    SmoothL1Loss,
    YChannelLoss,
    charbonnier_loss,
    huber_loss,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)
from .ssim import MSSSIMLoss, SSIMLoss, ms_ssim_loss, ssim_loss
from .tv import TVLoss, tv_loss

__all__ = [
    "BACKBONES",
    "DISCRIMINATORS",
    "GAN_KINDS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOSS_TYPES",
    "TORCHVISION_FILES",
    "AdversarialLoss",
    "CharbonnierLoss",
    "CombinedLoss",
    "DiscriminatorLoss",
    "FeatureDiscriminator",
    "FeatureExtractor",
    "GANKind",
    "HuberLoss",
    "L1Loss",
    "MSELoss",
    "MSSSIMLoss",
    "PerceptualLoss",
    "Reduction",
    "ResNetFeatures",
    "SSIMLoss",
    "SmoothL1Loss",
    "StyleLoss",
    "TVLoss",
    "UNetDiscriminatorSN",
    "VGG19Features",
    "VGGStyleDiscriminator",
    "YChannelLoss",
    "backbone_channels",
    "backbone_layers",
    "build_discriminator",
    "build_loss",
    "charbonnier_loss",
    "create_backbone",
    "discriminator_adversarial_loss",
    "find_backbone_weights",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "generator_adversarial_loss",
    "gradient_penalty",
    "gram_matrix",
    "huber_loss",
    "l1_loss",
    "load_backbone",
    "ms_ssim_loss",
    "mse_loss",
    "perceptual_loss",
    "read_state_dict",
    "reduce",
    "smooth_l1_loss",
    "ssim_loss",
    "style_loss",
    "tv_loss",
]
