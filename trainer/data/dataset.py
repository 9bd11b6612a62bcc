"""The segmentation Dataset: every sample is read and checked once, up front."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from runtime.errors import DataError
from runtime.images import read_image
from trainer.config import BAD_SAMPLE_MODES, IGNORE_INDEX
from trainer.data.coco import read_coco_mask
from trainer.data.discover import Sample
from trainer.data.labelme import load_labelme
from trainer.data.masks import read_folder_mask
from trainer.data.voc import read_voc_mask

Transform = Callable[[np.ndarray, np.ndarray], tuple[torch.Tensor, torch.Tensor]]


def _labelme_mask(sample: Sample, image_shape, class_map) -> np.ndarray:
    return load_labelme(sample.annotation, image_shape, class_map)


# Sample kind -> its mask reader: (sample, image (h, w), class_map) -> HxW uint8 class ids.
MASK_READERS: dict[str, Callable[..., np.ndarray]] = {
    "labelme": _labelme_mask,
    "mask": read_folder_mask,
    "voc": read_voc_mask,
    "coco": read_coco_mask,
}


def load_sample(
    sample: Sample, class_map: dict[str, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 uint8 RGB image, HxW uint8 mask) of a sample, checked to agree in size.

    Binary (class_map None): mask values 0/1. Multi-class: ids 0..max(class_map.values()).
    Either may hold `IGNORE_INDEX` where the layout marks pixels to ignore.
    """
    image = read_image(sample.image)
    mask = MASK_READERS[sample.kind](sample, image.shape[:2], class_map)
    top_id = max(class_map.values()) if class_map is not None else 1
    labelled = mask[mask != IGNORE_INDEX]
    if labelled.max(initial=0) > top_id:
        raise DataError(
            sample.annotation,
            f"class id {int(labelled.max())} in the mask; the classes go up to {top_id}",
        )
    return image, mask


def shrink_to(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The pair made no larger than `size` (height, width) on each side, resized as the
    transforms resize (antialiased bilinear image, nearest-neighbour mask, so class ids stay
    as they are); smaller sides stay. Where `size` is the training size, the cached image is
    exactly the one the transform would have made."""
    height, width = mask.shape[:2]
    new = [min(height, size[0]), min(width, size[1])]
    if new == [height, width]:
        return image, mask
    img = F.resize(
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), new,
        interpolation=InterpolationMode.BILINEAR, antialias=True,
    )  # fmt: skip
    msk = F.resize(
        torch.from_numpy(np.ascontiguousarray(mask))[None], new,
        interpolation=InterpolationMode.NEAREST_EXACT,
    )  # fmt: skip
    return img.permute(1, 2, 0).contiguous().numpy(), msk[0].numpy()


class SegmentationDataset(Dataset):
    """Images and masks of `samples`, loaded and validated at construction.

    on_bad_sample="skip" drops an unusable sample with a warning and records it in
    `skipped` as (file, problem); "error" raises its DataError. With `cache` each image is
    decoded once and kept in memory as uint8, shrunk to the transform's `cache_size()` (just
    above the training size, not the full photo), so augmentation works on small arrays;
    without, each item is read again from its file.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Transform,
        class_map: dict[str, int] | None = None,
        on_bad_sample: str = "skip",
        cache: bool = True,
    ):
        if on_bad_sample not in BAD_SAMPLE_MODES:
            raise ValueError(
                f"on_bad_sample: expected one of {BAD_SAMPLE_MODES}, got {on_bad_sample!r}"
            )
        self.transform = transform
        self.class_map = class_map
        self.cache = cache
        self.samples: list[Sample] = []
        self.skipped: list[tuple[str, str]] = []
        self._arrays: list[tuple[np.ndarray, np.ndarray]] = []
        for sample in samples:
            try:
                arrays = load_sample(sample, class_map)
            except DataError as err:
                if on_bad_sample == "error":
                    raise
                warnings.warn(f"skipping {err.path}: {err.problem}", stacklevel=2)
                self.skipped.append((str(err.path), err.problem))
                continue
            self.samples.append(sample)
            if cache:
                self._arrays.append(self._shrunk(*arrays))
        if not self.samples:
            given = f"{len(samples)} given, {len(self.skipped)} skipped"
            raise DataError(_source(samples), f"no usable samples in this folder ({given})")

    def _shrunk(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cache_size = getattr(self.transform, "cache_size", None)
        return shrink_to(image, mask, cache_size()) if cache_size else (image, mask)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache:
            image, mask = self._arrays[index]
        else:
            image, mask = load_sample(self.samples[index], self.class_map)
        return self.transform(image, mask)


def _source(samples: Sequence[Sample]) -> Path:
    """The folder the samples come from (their common parent), for error messages."""
    if not samples:
        return Path("(no samples)")
    return Path(os.path.commonpath([str(s.image.parent) for s in samples]))
