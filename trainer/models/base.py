"""The base class every segmentation model derives from, and the input padding it relies on."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def pad_to_multiple(x: Tensor, stride: int) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Pad `x` (N, C, H, W) on the bottom/right so H and W are multiples of `stride`.

    Returns the padded tensor and the `F.pad` amounts (left, right, top, bottom). Inputs whose
    sides are at least `stride` are padded by reflection, smaller ones by replicating the border.

    Written for `torch.export` with dynamic H and W (`Dim.DYNAMIC`, which `torch.onnx.export`
    uses for named axes): the padded size is `stride * blocks`, so later layers see a multiple
    of the stride, and the mode test is a plain bound, so the exported graph accepts any
    H, W >= stride (when the example input is at least that large).
    """
    height, width = x.shape[-2:]
    padded_height = stride * ((height + stride - 1) // stride)
    padded_width = stride * ((width + stride - 1) // stride)
    padding = (0, padded_width - width, 0, padded_height - height)
    if height >= stride and width >= stride:
        return F.pad(x, padding, mode="reflect"), padding
    return F.pad(x, padding, mode="replicate"), padding


def remove_padding(y: Tensor, padding: tuple[int, int, int, int]) -> Tensor:
    """Crop the padding added by `pad_to_multiple` from `y` (same H and W as the padded input).

    A negative constant pad rather than slicing: with symbolic shapes, slicing guards on
    whether the padding is empty and so specialises an exported graph.
    """
    return F.pad(y, [-amount for amount in padding])


def check_positive(**values: int) -> None:
    """Raise `ValueError` naming the first argument that is not an integer >= 1."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class SegmentationModel(nn.Module):
    """A network mapping images (N, in_channels, H, W) to logits (N, num_classes, H, W).

    Subclasses build their layers and implement `forward_features`, which only ever sees inputs
    whose H and W are multiples of `stride`. `forward` accepts any H and W: it pads, runs
    `forward_features` and crops the logits back to the input size.

    `arch` (the registry name) and `config` (the factory's keyword arguments, defaults
    included) are set by the registered factory, so `create_model(m.arch, **m.config)`
    rebuilds the same architecture.
    """

    arch: str
    config: dict
    stride: int  # set by each subclass

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        check_positive(in_channels=in_channels, num_classes=num_classes)
        self.in_channels = in_channels
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> Tensor | list[Tensor]:
        """Logits for an input whose H and W are multiples of `stride`."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_features")

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        padded, padding = pad_to_multiple(x, self.stride)
        out = self.forward_features(padded)
        if isinstance(out, Tensor):
            return remove_padding(out, padding)
        return [remove_padding(logits, padding) for logits in out]

    def parameter_groups(self, lr: float, encoder_lr: float | None = None) -> list[dict]:
        """Optimizer parameter groups; `encoder_lr` only matters for pretrained encoders."""
        return [{"name": "all", "params": list(self.parameters()), "lr": lr}]
