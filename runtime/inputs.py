"""What `Segmenter.predict` accepts, turned into HxWx3 uint8 RGB arrays.

- a path (str or os.PathLike): read with `runtime.images.read_image` (always RGB; EXIF
  orientation applied);
- a numpy image: HxW or HxWx1 grayscale, HxWx3 RGB, HxWx4 RGBA (alpha dropped), or HxWx2
  gray + alpha; with `bgr=True` 3- and 4-channel arrays are BGR / BGRA (OpenCV frames;
  `bgr` applies to arrays only, files are always decoded to RGB);
- pixels: uint8; uint16 (reduced to 8 bits by `>> 8`, as image files are); float16/32/64
  scaled to 0..1 (the one rule for floats: values outside [0, 1] or NaN are refused rather
  than guessed at, since a 0..255 float image and a dark 0..1 one cannot be told apart);
- a list or tuple of any of these (sizes may differ), or an NxHxWxC array (a batch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.errors import ImageTooLarge, InputError
from runtime.images import read_image, too_many_pixels
from runtime.pixels import to_rgb_uint8

SINGLE, LIST, ARRAY = "single", "list", "array"


@dataclass(frozen=True)
class Inputs:
    """The inputs of one call, and how its results are returned (`kind`)."""

    items: Sequence[Any]
    kind: str  # SINGLE: one result; LIST: a list; ARRAY: a stacked array (NxHxW...)

    def pack(self, results: list[Any]) -> Any:
        """Results in the caller's shape: one result, a list, or a stacked array."""
        if self.kind == SINGLE:
            return results[0]
        if self.kind == ARRAY:
            return np.stack(results)
        return results


def as_inputs(images: Any) -> Inputs:
    """Classify what the caller passed (see the module docstring)."""
    if isinstance(images, (str, os.PathLike)):
        return Inputs([images], SINGLE)
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return Inputs(images, ARRAY)
        return Inputs([images], SINGLE)
    if isinstance(images, (list, tuple)):
        return Inputs(images, LIST)
    raise InputError(
        "images",
        f"expected a path, a numpy array, or a list of them, got {type(images).__name__}"
        + (" (use np.asarray(image))" if hasattr(images, "__array__") else ""),
    )


def load_image(
    item: Any, name: str, bgr: bool = False, max_pixels: int | None = None
) -> np.ndarray:
    """One input as a contiguous HxWx3 uint8 RGB array; `name` labels it in errors.

    An image of more than `max_pixels` pixels is refused (a file before it is decoded)."""
    if isinstance(item, (str, os.PathLike)):
        return read_image(item, max_pixels)
    if not isinstance(item, np.ndarray):
        raise InputError(name, f"expected a path or a numpy array, got {type(item).__name__}")
    if max_pixels is not None and item.ndim >= 2 and item.shape[0] * item.shape[1] > max_pixels:
        raise ImageTooLarge(name, too_many_pixels(item.shape[0] * item.shape[1], max_pixels))
    return to_rgb(item, name, bgr)


def to_rgb(array: np.ndarray, name: str, bgr: bool = False) -> np.ndarray:
    """A numpy image (see the module docstring) as a contiguous HxWx3 uint8 RGB array."""
    return to_rgb_uint8(array, name, bgr=bgr, floats=True, error=InputError)
