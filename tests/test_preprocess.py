"""runtime.preprocess matches training's evaluation transform without torch."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.preprocess import preprocess, resize_bilinear
from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, SegmentationTransform

GREY_LEVEL = 1 / 255 / min(IMAGENET_STD)  # one uint8 step after normalization


def smooth_image(rng, height: int, width: int) -> np.ndarray:
    """Smooth random content, like photographs (white noise would exaggerate rounding)."""
    coarse = rng.integers(0, 256, (height // 6 + 2, width // 6 + 2, 3), dtype=np.uint8)
    return resize_bilinear(coarse, (height, width))


@pytest.mark.parametrize(
    ("source", "target"),
    [((100, 150), (64, 64)), ((230, 170), (96, 128)), ((40, 40), (64, 64)), ((64, 48), (64, 48))],
)
def test_matches_training_transform(source, target):
    image = smooth_image(np.random.default_rng(0), *source)
    expected, _ = SegmentationTransform(target)(image, np.zeros(source, np.uint8))
    batch = preprocess([image], target, IMAGENET_MEAN, IMAGENET_STD)
    assert batch.shape == (1, 3, *target) and batch.dtype == np.float32
    diff = np.abs(batch[0] - expected.numpy())
    assert diff.max() <= 2.01 * GREY_LEVEL  # torchvision rounds its fixed-point weights
    assert (diff > 1e-5).mean() < 0.1


def test_batches_in_order():
    rng = np.random.default_rng(1)
    images = [smooth_image(rng, 30 + i, 40) for i in range(3)]
    batch = preprocess(images, (32, 32), IMAGENET_MEAN, IMAGENET_STD)
    for image, row in zip(images, batch, strict=True):
        np.testing.assert_array_equal(
            row, preprocess([image], (32, 32), IMAGENET_MEAN, IMAGENET_STD)[0]
        )


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8), np.uint8), "image 0: expected an H x W x 3 array"),
        (np.zeros((8, 8, 4), np.uint8), "image 0: expected an H x W x 3 array"),
        (np.zeros((8, 8, 3), np.float32), "image 0: expected uint8"),
    ],
)
def test_bad_images_are_refused(image, message):
    with pytest.raises(ValueError, match=message):
        preprocess([image], (8, 8), IMAGENET_MEAN, IMAGENET_STD)
