"""Pixels of any supported layout and type -> one HxWx3 uint8 RGB array, for files and arrays.

Both the image-file reader (`runtime.images`) and what `predict` accepts (`runtime.inputs`)
go through `to_rgb_uint8`, so the two cannot convert differently:

- layouts: HxW or HxWx1 grayscale -> 3 channels; HxWx2 gray + alpha and HxWx4 colour + alpha
  -> the colour channels (alpha is dropped, not composited); HxWx3 colour;
- `bgr=True`: 3- and 4-channel pixels are in OpenCV's BGR(A) order (decoded files, frames);
- types: uint8 as is; uint16 -> the top byte (`>> 8`, so a 16-bit image keeps its brightness
  relative to the full range); floats only with `floats=True`, scaled from 0..1 (values
  outside [0, 1] or NaN are refused rather than guessed at: a 0..255 float image and a dark
  0..1 one cannot be told apart).

Errors are `error(name, problem)`: `ImageError` for a file, `InputError` for an array.
"""

from __future__ import annotations

import cv2
import numpy as np

from runtime.errors import InputError

_TO_RGB = {  # (channels, bgr) -> the cv2 conversion of the colour channels
    (3, True): cv2.COLOR_BGR2RGB,
    (4, True): cv2.COLOR_BGRA2RGB,
    (4, False): cv2.COLOR_RGBA2RGB,
}


def to_rgb_uint8(
    array: np.ndarray,
    name: str,
    *,
    bgr: bool = False,
    floats: bool = True,
    error: type[InputError] = InputError,
) -> np.ndarray:
    """`array` (see the module docstring) as a contiguous HxWx3 uint8 RGB array."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise error(
            name,
            "expected an H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA) image, "
            f"got shape {array.shape}",
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise error(name, f"empty image (shape {array.shape})")
    array = _to_uint8(array, name, floats, error)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    channels = array.shape[2]
    if channels == 2:  # gray + alpha
        return cv2.cvtColor(np.ascontiguousarray(array[:, :, 0]), cv2.COLOR_GRAY2RGB)
    conversion = _TO_RGB.get((channels, bgr))
    if conversion is None:
        return np.ascontiguousarray(array)
    return cv2.cvtColor(array, conversion)


def _to_uint8(array: np.ndarray, name: str, floats: bool, error: type[InputError]) -> np.ndarray:
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if array.dtype.kind == "f":
        if not floats:
            raise error(name, f"floating-point image ({array.dtype}) is not supported; save 8-bit")
        low, high = float(np.min(array)), float(np.max(array))
        if not (0.0 <= low and high <= 1.0):  # also refuses NaN
            raise error(
                name,
                f"float images must hold values in 0..1, got {low:g}..{high:g} "
                "(divide by 255, or pass uint8)",
            )
        return np.rint(array * 255.0).astype(np.uint8)
    expected = "uint8, uint16 or float in 0..1" if floats else "8- or 16-bit"
    raise error(name, f"unsupported pixel type {array.dtype}; expected {expected}")
