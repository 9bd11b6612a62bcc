"""R2U-Net (Alom et al. 2018) and Attention R2U-Net: recurrent residual conv blocks."""

from __future__ import annotations

import functools

from trainer.models.base import check_positive
from trainer.models.blocks import RRCNNBlock
from trainer.models.registry import register_model
from trainer.models.unet import UNet


@register_model
def r2unet(*, in_channels: int = 3, num_classes: int = 1, width: int = 64, t: int = 2) -> UNet:
    """U-Net layout with RRCNN blocks; `t` is the recurrence of each recurrent conv layer."""
    check_positive(t=t)
    return UNet(in_channels, num_classes, width, functools.partial(RRCNNBlock, t=t))


@register_model(attention_gates=True)
def attention_r2unet(
    *, in_channels: int = 3, num_classes: int = 1, width: int = 64, t: int = 2
) -> UNet:
    """R2U-Net with attention gates on the skip connections."""
    check_positive(t=t)
    return UNet(in_channels, num_classes, width, functools.partial(RRCNNBlock, t=t), attention=True)
