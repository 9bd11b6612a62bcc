"""Paired image/mask transforms on torchvision.transforms.v2.

The image and the mask travel together as `tv_tensors.Image` / `tv_tensors.Mask`, so every
geometric step moves both the same way; masks are resampled with nearest-neighbour only,
so they keep their original class values. Every random choice comes from torch's global
RNG: seeding torch makes the augmentation reproducible.

Presets:
- plain: resize, scale to [0, 1], normalize.
- standard: resize, horizontal flip (p=0.5), vertical flip (p=0.3), rotation +-10 deg (fill
  0), colour jitter (image only), normalize, and random erasing of the image (never the
  mask) with probability `erasing` (`segtrain fit --erasing`; 0, off, by default: on the
  butterflies it cost Dice, see EXPERIMENTS.md; the original study's was 0.25).
- crop: a random crop of 0.5-1.0 of each side that contains the foreground's bounding box
  (enlarged as needed to contain it), then as `standard`.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from runtime.errors import ArgumentError
from runtime.metadata import IMAGENET_MEAN, IMAGENET_STD
from trainer.config import AUG_PRESETS, IGNORE_INDEX

PRESETS = AUG_PRESETS
CROP_SCALE = (0.5, 1.0)


class SegmentationTransform:
    """(HxWx3 uint8 image, HxW mask) -> (normalized float 3xHxW tensor, long HxW tensor)."""

    def __init__(
        self,
        size: tuple[int, int],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        object_crop: bool = False,
        augment: v2.Transform | None = None,
        erasing: v2.RandomErasing | None = None,
    ):
        self.size = list(size)
        self.mean, self.std = list(mean), list(std)
        self.object_crop = object_crop
        self.augment = augment
        self.erasing = erasing

    def cache_size(self) -> tuple[int, int]:
        """The largest (height, width) of an image this transform can use in full: a cached
        copy need not be larger. The object crop keeps down to `CROP_SCALE[0]` of each side
        before resizing, so it can use that much more."""
        scale = 1 / CROP_SCALE[0] if self.object_crop else 1
        return math.ceil(self.size[0] * scale), math.ceil(self.size[1] * scale)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.object_crop:
            # Crop the arrays before wrapping them: resizing a cropped tensor view takes a
            # slow strided path (~40x slower than a contiguous HWC buffer).
            top, left, height, width = object_crop_box(torch.from_numpy(mask))
            image = image[top : top + height, left : left + width]
            mask = mask[top : top + height, left : left + width]
        img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
        msk = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask)))
        img = F.resize(img, self.size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        msk = F.resize(msk, self.size, interpolation=InterpolationMode.NEAREST_EXACT)
        if self.augment is not None:
            img, msk = self.augment(img, msk)
        x = F.normalize(F.to_dtype(img, torch.float32, scale=True), self.mean, self.std)
        x = x.as_subclass(torch.Tensor)
        if self.erasing is not None:
            x = self.erasing(x)  # a plain tensor: the mask is never erased
        return x, msk.as_subclass(torch.Tensor).long()


def build_transform(
    preset: str,
    img_size: int | tuple[int, int],
    train: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    erasing: float = 0.0,
) -> SegmentationTransform:
    """The transform of `preset` at `img_size` ((h, w) or square); `train=False` gives plain.
    `erasing` is the probability of random erasing in the augmented presets."""
    if preset not in PRESETS:
        close = difflib.get_close_matches(preset, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ArgumentError(
            "--aug", f"unknown preset {preset!r}.{hint} Available: {', '.join(PRESETS)}"
        )
    size = _check_size(img_size)
    if not train or preset == "plain":
        return SegmentationTransform(size, mean, std)
    augment = v2.Compose(
        [
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomVerticalFlip(p=0.3),
            v2.RandomRotation(10, interpolation=InterpolationMode.BILINEAR, fill=0),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
        ]
    )
    if not 0 <= erasing <= 1:
        raise ArgumentError("--erasing", f"a probability in [0, 1] is needed, got {erasing}")
    eraser = v2.RandomErasing(p=erasing, value=0) if erasing > 0 else None
    return SegmentationTransform(size, mean, std, preset == "crop", augment, eraser)


def object_crop_box(
    mask: torch.Tensor, scale: tuple[float, float] = CROP_SCALE
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop containing the mask's foreground box.

    Each side is a random `scale` share of the image, enlarged to the foreground box when
    smaller; without foreground the crop lies anywhere.
    """
    height, width = mask.shape[-2:]
    share = scale[0] + (scale[1] - scale[0]) * float(torch.rand(()))
    crop_h, crop_w = max(1, round(share * height)), max(1, round(share * width))
    ids = mask.reshape(height, width)
    foreground = (ids > 0) & (ids != IGNORE_INDEX)
    if foreground.any():
        rows = torch.nonzero(foreground.any(dim=1))
        cols = torch.nonzero(foreground.any(dim=0))
        y0, y1 = int(rows.min()), int(rows.max()) + 1
        x0, x1 = int(cols.min()), int(cols.max()) + 1
        crop_h, crop_w = min(height, max(crop_h, y1 - y0)), min(width, max(crop_w, x1 - x0))
        top = _randint(max(0, y1 - crop_h), min(y0, height - crop_h))
        left = _randint(max(0, x1 - crop_w), min(x0, width - crop_w))
    else:
        top, left = _randint(0, height - crop_h), _randint(0, width - crop_w)
    return top, left, crop_h, crop_w


def _randint(low: int, high: int) -> int:
    """A uniform integer in [low, high] from torch's RNG."""
    return low + int(torch.randint(high - low + 1, ()))


def _check_size(img_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (img_size, img_size) if isinstance(img_size, numbers.Integral) else img_size
    valid = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in size)
    )
    if not valid:
        raise ValueError(f"img_size: expected a positive int or (height, width), got {img_size!r}")
    return int(size[0]), int(size[1])
