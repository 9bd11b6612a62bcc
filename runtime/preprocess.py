"""Image preprocessing identical to training's evaluation transform, in numpy (no torch).

Training resizes uint8 images with torchvision's bilinear `resize(..., antialias=True)`, scales
to [0, 1] and normalizes with the model's mean and std. `resize_bilinear` reimplements that
resize (a separable triangle filter whose support widens with the downscaling factor, rows of
weights summing to 1, the horizontal pass rounded to uint8 before the vertical one), which
matches torchvision to within one or two grey levels.

Why hand-written rather than a library: measured against torchvision's resize on the 400
butterfly photos (about 100-430 px) at 128x128 and 256x256, the hand-written resize differs on
0.25% of the pixel values (mean abs 0.0025 levels, max 2); Pillow's antialiased BILINEAR on
0.40% (mean 0.0040, max 1), so it reproduces training less closely, although it is about 2x
faster (1.3 against 0.6 ms per image, a fraction of a percent of model time); OpenCV has no
antialiased bilinear (INTER_LINEAR differs on 43% of values by up to 140 levels, INTER_AREA on
44% by up to 201). `tests/test_preprocess.py` keeps the property (within 2 levels of
torchvision).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def preprocess(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """Turn H x W x 3 uint8 RGB images into one normalized float32 batch (N, 3, h, w).

    `size` is (height, width). Images already at that size are not resampled.
    """
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"size must be (height, width) >= 1, got {tuple(size)}")
    channels = len(mean)
    resized = np.empty((len(images), height, width, channels), dtype=np.uint8)
    for index, image in enumerate(images):
        _check_image(image, index, channels)
        resized[index] = resize_bilinear(image, (height, width))
    return normalize(resized, mean, std)


def normalize(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, C, H, W) float32 `(pixel / 255 - mean) / std`, in one pass."""
    scale = (1.0 / (255.0 * np.asarray(std, dtype=np.float64))).astype(np.float32)
    offset = (np.asarray(mean, dtype=np.float64) / np.asarray(std, dtype=np.float64)).astype(
        np.float32
    )
    out = batch.transpose(0, 3, 1, 2).astype(np.float32)
    out *= scale[None, :, None, None]
    out -= offset[None, :, None, None]
    return out


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of an H x W x C uint8 image to `size` = (height, width)."""
    height, width = size
    out = image
    if out.shape[1] != width:
        out = _resample_axis(out, width, axis=1)
    if out.shape[0] != height:
        out = _resample_axis(out, height, axis=0)
    return out


def _resample_axis(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Resample one axis of a uint8 image with the antialiased triangle filter; round to uint8."""
    indices, weights = _filter_taps(image.shape[axis], size)
    shape = [1] * image.ndim
    shape[axis] = size
    resampled = np.zeros(image.shape[:axis] + (size,) + image.shape[axis + 1 :], dtype=np.float32)
    for tap in range(indices.shape[1]):  # one pass per tap keeps memory at one output image
        resampled += np.take(image, indices[:, tap], axis=axis) * weights[:, tap].reshape(shape)
    return np.clip(np.rint(resampled), 0, 255).astype(np.uint8)


def _filter_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, the input indices and normalized weights of the triangle filter.

    Same construction as PIL / torchvision's antialiased bilinear: centre `scale * (i + 0.5)`,
    support `max(scale, 1)`, tent weights evaluated at `(j - centre + 0.5) / max(scale, 1)`.
    Rows are padded to a common number of taps with zero weights.
    """
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = scale * (np.arange(out_size) + 0.5)
    starts = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    stops = np.minimum((centres + support + 0.5).astype(np.int64), in_size)
    taps = int((stops - starts).max())
    indices = starts[:, None] + np.arange(taps)[None, :]
    valid = indices < stops[:, None]
    distance = (indices - centres[:, None] + 0.5) / support
    weights = np.where(valid, np.clip(1.0 - np.abs(distance), 0.0, None), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.minimum(indices, in_size - 1), weights.astype(np.float32)


def _check_image(image: np.ndarray, index: int, channels: int) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != channels:
        shape = getattr(image, "shape", None)
        raise ValueError(f"image {index}: expected an H x W x {channels} array, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image {index}: expected uint8 pixels, got {image.dtype}")
