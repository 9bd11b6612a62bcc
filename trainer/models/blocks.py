"""Building blocks shared by the U-Net family: conv blocks, recurrent blocks, attention gates."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

# A block factory maps (in_channels, out_channels) to a module keeping the spatial size.
BlockFactory = Callable[[int, int], nn.Module]


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (same padding), BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU layers: the U-Net block."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels)
        )


class RecurrentConv(nn.Module):
    """Recurrent convolutional layer (Alom et al. 2018): one conv-BN-ReLU unrolled `t` steps.

    h_0 = f(x), h_k = f(x + h_{k-1}) for k = 1..t, with the same weights at every step.
    """

    def __init__(self, channels: int, t: int):
        super().__init__()
        self.t = t
        self.conv = ConvBNReLU(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)
        for _ in range(self.t):
            h = self.conv(x + h)
        return h


class RRCNNBlock(nn.Module):
    """Recurrent residual block: 1x1 conv to `out_channels`, two recurrent layers, residual add."""

    def __init__(self, in_channels: int, out_channels: int, t: int = 2):
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, 1)
        self.recurrent = nn.Sequential(
            RecurrentConv(out_channels, t), RecurrentConv(out_channels, t)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.project(x)
        return x + self.recurrent(x)


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018) on a skip connection.

    The gate signal is the decoder feature map already upsampled to the skip's resolution.
    Coefficients alpha = sigmoid(psi(relu(W_x skip + W_g gate))) in [0, 1] multiply the skip
    features; the last map (N, 1, h, w), detached, is kept in `last_attention` for
    visualisation (it is not updated while the model is being compiled or exported).
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int):
        super().__init__()
        self.skip_proj = _conv1x1_bn(skip_channels, inter_channels)
        self.gate_proj = _conv1x1_bn(gate_channels, inter_channels)
        self.psi = nn.Sequential(_conv1x1_bn(inter_channels, 1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)
        self.last_attention: Tensor | None = None

    def forward(self, skip: Tensor, gate: Tensor) -> Tensor:
        alpha = self.psi(self.relu(self.skip_proj(skip) + self.gate_proj(gate)))
        if not torch.compiler.is_compiling():
            self.last_attention = alpha.detach()
        return skip * alpha


class DecoderStage(nn.Module):
    """Upsample by 2 (2x2 transposed conv), optionally gate the skip, concatenate, conv block."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        make_block: BlockFactory,
        attention: bool,
    ):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        inter = max(min(skip_channels, out_channels) // 2, 1)
        self.gate = AttentionGate(skip_channels, out_channels, inter) if attention else None
        self.block = make_block(skip_channels + out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)
        if self.gate is not None:
            skip = self.gate(skip, x)
        return self.block(torch.cat([skip, x], dim=1))


def _conv1x1_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
