"""U-Net (Ronneberger et al. 2015) and the layout shared by its attention and R2 variants."""

from __future__ import annotations

from torch import Tensor, nn

from trainer.models.base import SegmentationModel, check_positive
from trainer.models.blocks import BlockFactory, DecoderStage, DoubleConv
from trainer.models.registry import register_model


def level_channels(width: int, depth: int = 4) -> list[int]:
    """Channels per resolution level: [w, 2w, 4w, 8w] and the 16w bottleneck for depth 4."""
    return [width * 2**level for level in range(depth + 1)]


class UNet(SegmentationModel):
    """Four max-pool downsamplings, four transposed-conv upsamplings, concatenated skips.

    `make_block(in, out)` builds every encoder/decoder block (double conv for U-Net, RRCNN for
    R2U-Net); `attention` puts an attention gate on every skip connection.
    """

    stride = 16

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int,
        make_block: BlockFactory = DoubleConv,
        attention: bool = False,
    ):
        super().__init__(in_channels, num_classes)
        check_positive(width=width)
        channels = level_channels(width)
        inputs = [in_channels, *channels[:-1]]
        pairs = zip(inputs, channels, strict=True)
        self.down_blocks = nn.ModuleList(make_block(i, o) for i, o in pairs)
        self.pool = nn.MaxPool2d(2)
        self.up_stages = nn.ModuleList(
            DecoderStage(
                channels[level + 1], channels[level], channels[level], make_block, attention
            )
            for level in reversed(range(len(channels) - 1))
        )
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward_features(self, x: Tensor) -> Tensor:
        skips = []
        for level, block in enumerate(self.down_blocks):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for stage in self.up_stages:
            x = stage(x, skips.pop())
        return self.head(x)


@register_model
def unet(*, in_channels: int = 3, num_classes: int = 1, width: int = 64) -> UNet:
    """U-Net with double 3x3 conv blocks."""
    return UNet(in_channels, num_classes, width)
