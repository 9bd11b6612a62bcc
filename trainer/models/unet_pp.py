"""UNet++ (Zhou et al. 2018): nested, densely connected skip pathways and deep supervision.

Node X^{i,j} (level i, column j) is a double conv over the concatenation of X^{i,0..j-1} and
the upsampled X^{i+1,j-1}. Upsampling inside the nested nodes is bilinear (x2, no weights).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.models.base import SegmentationModel, check_positive
from trainer.models.blocks import DoubleConv
from trainer.models.registry import register_model
from trainer.models.unet import level_channels


class UNetPlusPlus(SegmentationModel):
    """UNet++ with a backbone of depth 4 (columns X^{0,0..4}).

    With `deep_supervision`, a 1x1 head sits on each of X^{0,1..4}; in training mode
    `forward` returns the four logits maps (the last is the final output), in eval mode only
    the final one. Without it, a single head sits on X^{0,4}.
    """

    stride = 16

    def __init__(self, in_channels: int, num_classes: int, width: int, deep_supervision: bool):
        super().__init__(in_channels, num_classes)
        check_positive(width=width)
        if not isinstance(deep_supervision, bool):
            raise ValueError(f"deep_supervision must be a bool, got {deep_supervision!r}")
        channels = level_channels(width)
        depth = len(channels) - 1
        self.deep_supervision = deep_supervision
        inputs = [in_channels, *channels[:-1]]
        pairs = zip(inputs, channels, strict=True)
        self.backbone = nn.ModuleList(DoubleConv(i, o) for i, o in pairs)
        # nested[i][j - 1] builds X^{i,j}: j earlier nodes of level i plus one from level i + 1.
        self.nested = nn.ModuleList(
            nn.ModuleList(
                DoubleConv(j * channels[level] + channels[level + 1], channels[level])
                for j in range(1, depth - level + 1)
            )
            for level in range(depth)
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        n_heads = depth if deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(channels[0], num_classes, 1) for _ in range(n_heads))

    def forward_features(self, x: Tensor) -> Tensor | list[Tensor]:
        grid: list[list[Tensor]] = []
        for level, block in enumerate(self.backbone):
            grid.append([block(x if level == 0 else self.pool(grid[-1][0]))])
            # With X^{level,0} known, the diagonal X^{level-k,k} (k = 1..level) can be computed.
            for column in range(1, level + 1):
                row = level - column
                up = self.up(grid[row + 1][column - 1])
                node = self.nested[row][column - 1]
                grid[row].append(node(torch.cat([*grid[row], up], dim=1)))
        if self.deep_supervision and self.training:
            return [head(features) for head, features in zip(self.heads, grid[0][1:], strict=True)]
        return self.heads[-1](grid[0][-1])


@register_model(deep_supervision=True)
def unet_pp(
    *,
    in_channels: int = 3,
    num_classes: int = 1,
    width: int = 64,
    deep_supervision: bool = False,
) -> UNetPlusPlus:
    """UNet++ with bilinear upsampling in the nested nodes."""
    return UNetPlusPlus(in_channels, num_classes, width, deep_supervision)
