"""The module that is exported: images in, probabilities out, optionally float16 inside."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.models import SegmentationModel


class ProbabilityModel(nn.Module):
    """Wrap a segmentation model so its output is `probs`: sigmoid (binary) or softmax (dim 1).

    With `half=True` the network's weights and activations are float16 while the input and
    the probabilities stay float32: the input is cast to half on entry and the logits back to
    float before the sigmoid/softmax, which keeps the probabilities accurate near 0 and 1.
    The wrapped model is converted in place; export it in eval mode (UNet++ then returns only
    its final head: the deep-supervision heads are training-only).
    """

    def __init__(self, model: SegmentationModel, half: bool = False):
        super().__init__()
        self.model = model.half() if half else model.float()
        self.half = half
        self.binary = model.num_classes == 1

    def forward(self, images: Tensor) -> Tensor:
        logits = self.model(images.half() if self.half else images)
        logits = logits.float()
        return torch.sigmoid(logits) if self.binary else torch.softmax(logits, dim=1)
