"""Data layer: reading images and annotations, finding samples, splits, the Dataset, transforms."""

from runtime.errors import DataError
from runtime.images import IMAGE_EXTENSIONS, image_size, read_image
from trainer.data.dataset import SegmentationDataset, load_sample
from trainer.data.discover import MASK_SUFFIXES, Sample, Splits, find_samples, resolve_splits
from trainer.data.labelme import load_labelme
from trainer.data.masks import load_mask
from trainer.data.sample import default_sample_dir, make_sample_dataset
from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PRESETS, build_transform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "MASK_SUFFIXES",
    "PRESETS",
    "DataError",
    "Sample",
    "SegmentationDataset",
    "Splits",
    "build_transform",
    "default_sample_dir",
    "find_samples",
    "image_size",
    "load_labelme",
    "load_mask",
    "load_sample",
    "make_sample_dataset",
    "read_image",
    "resolve_splits",
]
