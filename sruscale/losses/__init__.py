"""Training losses: pixel, perceptual/style on frozen ImageNet backbones, TV, SSIM, amplitude spectrum (fft),
GAN; discriminators.

Every loss is a plain function plus a thin ``nn.Module`` that stores its configuration;
:func:`parse_losses` types a recipe's ``[[loss]]`` tables; :func:`build_loss` assembles their weighted sum
(:class:`CombinedLoss`).
"""

from __future__ import annotations

from ..metrics.features import (
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
from ._reduce import Reduction, reduce
from ._terms import (
    LOSS_TYPES,
    AdversarialTerm,
    CharbonnierTerm,
    FeatureTerm,
    HuberTerm,
    LossTerm,
    PixelTerm,
    SmoothL1Term,
    SSIMTerm,
    TVTerm,
    parse_losses,
)
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
from .combined import CombinedLoss, build_loss
from .discriminators import (
    DISCRIMINATORS,
    FeatureDiscriminator,
    UNetDiscriminatorSN,
    VGGStyleDiscriminator,
    build_discriminator,
)
from .frequency import FrequencyLoss, frequency_loss
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
    "AdversarialTerm",
    "CharbonnierLoss",
    "CharbonnierTerm",
    "CombinedLoss",
    "DiscriminatorLoss",
    "FeatureDiscriminator",
    "FeatureExtractor",
    "FeatureTerm",
    "FrequencyLoss",
    "GANKind",
    "HuberLoss",
    "HuberTerm",
    "L1Loss",
    "LossTerm",
    "MSELoss",
    "MSSSIMLoss",
    "PerceptualLoss",
    "PixelTerm",
    "Reduction",
    "ResNetFeatures",
    "SSIMLoss",
    "SSIMTerm",
    "SmoothL1Loss",
    "SmoothL1Term",
    "StyleLoss",
    "TVLoss",
    "TVTerm",
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
    "frequency_loss",
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
    "parse_losses",
    "perceptual_loss",
    "read_state_dict",
    "reduce",
    "smooth_l1_loss",
    "ssim_loss",
    "style_loss",
    "tv_loss",
]
