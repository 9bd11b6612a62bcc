"""Model outputs back to each image: probabilities resized to its size, then masks.

Probabilities (not masks) are resized, bilinearly when enlarging and by area averaging when
shrinking, so mask edges stay smooth at the image's resolution; thresholding (binary) or
argmax (multi-class) comes after.
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_probs(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) float32 -> (H, W) for one class, (H, W, C) for several; `size` = (H, W)."""
    height, width = size
    maps = probs[0] if probs.shape[0] == 1 else np.ascontiguousarray(probs.transpose(1, 2, 0))
    if maps.shape[:2] == (height, width):
        return np.array(maps, dtype=np.float32)
    shrinking = height <= maps.shape[0] and width <= maps.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(maps, (width, height), interpolation=interpolation)


def to_mask(probs: np.ndarray, threshold: float) -> np.ndarray:
    """HxW probabilities -> 0/1 uint8 (`p >= threshold`, as training's metrics count);
    HxWxC -> class ids (argmax), uint8 for up to 256 classes."""
    if probs.ndim == 2:
        return (probs >= threshold).view(np.uint8)
    dtype = np.uint8 if probs.shape[-1] <= 256 else np.uint16
    return probs.argmax(axis=-1).astype(dtype)
