"""Attention U-Net (Oktay et al. 2018): U-Net with additive attention gates on every skip."""

from __future__ import annotations

from trainer.models.registry import register_model
from trainer.models.unet import UNet


@register_model(attention_gates=True)
def attention_unet(*, in_channels: int = 3, num_classes: int = 1, width: int = 64) -> UNet:
    """U-Net whose skip features are weighted by attention gates driven by the decoder."""
    return UNet(in_channels, num_classes, width, attention=True)
