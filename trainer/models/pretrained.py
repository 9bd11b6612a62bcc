"""Attention R2U-Net decoder on a pretrained ResNet encoder."""

from __future__ import annotations

import functools

from torch import Tensor, nn

from trainer.models.base import SegmentationModel, check_positive
from trainer.models.blocks import DecoderStage, RRCNNBlock
from trainer.models.encoders import ResNetEncoder, load_encoder_weights
from trainer.models.registry import register_model
from trainer.models.unet import level_channels


class PretrainedAttentionR2UNet(SegmentationModel):
    """ResNet encoder (strides 2..32), RRCNN bottleneck, attention-gated RRCNN decoder.

    Decoder channels are [w, 2w, 4w, 8w] at strides 2..16 and 16w in the stride-32 bottleneck;
    a last transposed conv and RRCNN block bring the features back to full resolution.
    """

    stride = 32

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int,
        t: int,
        encoder: str,
        encoder_weights: str,
    ):
        super().__init__(in_channels, num_classes)
        check_positive(width=width, t=t)
        self.encoder = ResNetEncoder(encoder, in_channels)
        load_encoder_weights(self.encoder, encoder_weights)
        make_block = functools.partial(RRCNNBlock, t=t)
        skips = self.encoder.out_channels
        channels = level_channels(width)
        self.bottleneck = make_block(skips[-1], channels[-1])
        self.up_stages = nn.ModuleList(
            DecoderStage(channels[i + 1], skips[i], channels[i], make_block, attention=True)
            for i in reversed(range(len(skips) - 1))
        )
        self.final_up = nn.Sequential(
            nn.ConvTranspose2d(channels[0], channels[0], 2, stride=2),
            make_block(channels[0], channels[0]),
        )
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward_features(self, x: Tensor) -> Tensor:
        features = self.encoder(x)
        x = self.bottleneck(features.pop())
        for stage in self.up_stages:
            x = stage(x, features.pop())
        return self.head(self.final_up(x))

    def parameter_groups(self, lr: float, encoder_lr: float | None = None) -> list[dict]:
        """The encoder at `encoder_lr` (default `lr / 10`), everything else at `lr`."""
        encoder_params = list(self.encoder.parameters())
        in_encoder = {id(p) for p in encoder_params}
        others = [p for p in self.parameters() if id(p) not in in_encoder]
        encoder_lr = lr / 10 if encoder_lr is None else encoder_lr
        return [
            {"name": "encoder", "params": encoder_params, "lr": encoder_lr},
            {"name": "decoder", "params": others, "lr": lr},
        ]


@register_model(pretrained_encoder=True, attention_gates=True)
def pretrained_attention_r2unet(
    *,
    in_channels: int = 3,
    num_classes: int = 1,
    width: int = 64,
    t: int = 2,
    encoder: str = "resnet34",
    encoder_weights: str = "none",
) -> PretrainedAttentionR2UNet:
    """Attention R2U-Net decoder on a ResNet encoder; `encoder_weights`: none|imagenet|PATH."""
    return PretrainedAttentionR2UNet(in_channels, num_classes, width, t, encoder, encoder_weights)
