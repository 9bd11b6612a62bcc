"""Pretrained encoders: torchvision ResNets returning one feature map per stride, and their weights.

Contract: `encoder(x)` returns the list of feature maps at strides (2, 4, 8, 16, 32), and
`encoder.out_channels` gives their channel counts. Parameter names are torchvision's
(`conv1.weight`, `layer1.0.bn1.weight`, ...), so torchvision state dicts load directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn

from runtime.errors import ArgumentError, NotFoundError, SegkitError

RESNET_ENCODERS = ("resnet18", "resnet34", "resnet50")


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its classifier; `in_channels` other than 3 gets a new conv1."""

    def __init__(self, name: str, in_channels: int = 3):
        super().__init__()
        if name not in RESNET_ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(RESNET_ENCODERS)}, got {name!r}")
        resnet = getattr(torchvision.models, name)(weights=None)
        if in_channels != 3:
            resnet.conv1 = nn.Conv2d(
                in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False
            )
        self.name = name
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        expansion = resnet.layer1[0].expansion
        self.out_channels: tuple[int, ...] = (64, *(c * expansion for c in (64, 128, 256, 512)))

    def forward(self, x: Tensor) -> list[Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        features = [stem]
        x = self.maxpool(stem)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


class DownloadError(SegkitError, RuntimeError):
    """Pretrained weights could not be downloaded (offline, or the server refused)."""


def load_encoder_weights(encoder: ResNetEncoder, weights: str) -> None:
    """Load `weights` ("none", "imagenet" or a file path) into `encoder`.

    "none" touches neither the network nor the disk. A file may hold a torchvision ResNet
    state dict (the classifier's `fc.*` keys are ignored) or a dict with it under "state_dict"
    or "model".
    """
    if weights == "none":
        return
    if weights == "imagenet":
        state, source = download_imagenet_weights(encoder.name), f"ImageNet {encoder.name}"
    else:
        state, source = read_state_dict(Path(weights)), str(weights)
    state = {key: value for key, value in state.items() if not key.startswith("fc.")}
    if "conv1.weight" in state:
        state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], encoder.conv1.in_channels)
    try:
        result = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ArgumentError(source, f"weights do not fit encoder {encoder.name}: {err}") from err
    missing = [key for key in result.missing_keys if not key.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ArgumentError(
            source,
            f"weights do not fit encoder {encoder.name}: "
            f"missing keys {_some(missing)}, unexpected keys {_some(result.unexpected_keys)}",
        )


def download_imagenet_weights(name: str) -> dict[str, Tensor]:
    """torchvision's IMAGENET1K_V1 weights for `name`, from the torch hub cache or the web."""
    url = torchvision.models.get_model_weights(name).IMAGENET1K_V1.url
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=False, check_hash=True, weights_only=True
        )
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        raise DownloadError(
            "--encoder-weights",
            f"ImageNet weights for {name} could not be downloaded from {url} ({err}). "
            f"Download that file on a machine with internet access and pass it with "
            f"--encoder-weights PATH (or copy it to {cached}), "
            f"or train from scratch with --encoder-weights none.",
        ) from err


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from `path`: plain, or nested under a "state_dict" or "model" key."""
    if not path.is_file():
        raise NotFoundError(
            path, "encoder weights file not found (expected 'none', 'imagenet' or a file)"
        )
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for a bad file
        raise ArgumentError(path, f"cannot read encoder weights: {err}") from err
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise ArgumentError(path, f"expected a state dict of tensors, got {type(data).__name__}")
    return data


def adapt_first_conv(weight: Tensor, in_channels: int) -> Tensor:
    """Fit RGB conv1 weights (out, 3, k, k) to `in_channels` inputs, keeping the response scale.

    One channel sums the RGB filters; more channels cycle them, scaled by 3 / in_channels.
    """
    if weight.shape[1] == in_channels or weight.shape[1] != 3:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / 3)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (3 / in_channels)


def _some(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit]) or "none"
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")
