"""A quick-look image: the mask's classes blended in colour over the photo, outlined."""

from __future__ import annotations

import cv2
import numpy as np

from runtime.errors import ArgumentError

# RGB colours of class ids 1, 2, ... (repeated beyond the list); the background stays as is
PALETTE = np.array(
    [
        (255, 0, 0),
        (0, 200, 0),
        (0, 90, 255),
        (255, 200, 0),
        (255, 0, 255),
        (0, 220, 220),
        (255, 128, 0),
        (128, 0, 255),
    ],
    dtype=np.float32,
)


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """HxWx3 uint8 RGB `image` with each non-zero class of the HxW `mask` tinted at `alpha`
    and its border drawn in the class colour (about 1/300 of the image's shorter side wide,
    at least 1 pixel, inside the region), so regions stay visible on objects of their colour.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ArgumentError("image", f"expected an H x W x 3 RGB array, got {shape}")
    if image.dtype != np.uint8:
        raise ArgumentError("image", f"expected uint8 pixels, got {image.dtype}")
    if not isinstance(mask, np.ndarray) or mask.shape != image.shape[:2]:
        shape = getattr(mask, "shape", type(mask).__name__)
        raise ArgumentError("mask", f"expected the image's shape {image.shape[:2]}, got {shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ArgumentError("alpha", f"expected a number in [0, 1], got {alpha}")
    ids = mask.astype(np.int32)
    labelled = ids != 0
    colours = PALETTE[(ids[labelled] - 1) % len(PALETTE)]
    out = image.astype(np.float32)
    out[labelled] = (1.0 - alpha) * out[labelled] + alpha * colours
    width = 2 * max(1, min(mask.shape) // 300) + 1
    kernel = np.ones((width, width), np.uint8)
    border = labelled & (cv2.erode(ids.astype(np.float32), kernel) != ids)
    out[border] = PALETTE[(ids[border] - 1) % len(PALETTE)]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
