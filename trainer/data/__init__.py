"""Data layer: reading images and annotations, dataset layouts, splits, the Dataset, transforms.

The names below are imported on first use, so the torch-free parts (`trainer.data.options`,
`trainer.data.source`, the layout readers) can be imported by a command line without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DataError": "runtime.errors",
    "IMAGE_EXTENSIONS": "runtime.images",
    "image_size": "runtime.images",
    "read_image": "runtime.images",
    "IMAGENET_MEAN": "runtime.metadata",
    "IMAGENET_STD": "runtime.metadata",
    "SegmentationDataset": "trainer.data.dataset",
    "load_sample": "trainer.data.dataset",
    "MASK_SUFFIXES": "trainer.data.pairs",
    "Sample": "trainer.data.discover",
    "Splits": "trainer.data.discover",
    "find_samples": "trainer.data.discover",
    "pair_folders": "trainer.data.discover",
    "resolve_splits": "trainer.data.discover",
    "DataSource": "trainer.data.source",
    "resolve_source": "trainer.data.source",
    "load_labelme": "trainer.data.labelme",
    "load_mask": "trainer.data.masks",
    "default_sample_dir": "trainer.data.sample",
    "make_sample_dataset": "trainer.data.sample",
    "PRESETS": "trainer.data.transforms",
    "build_transform": "trainer.data.transforms",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainer.data' has no attribute {name!r}")
