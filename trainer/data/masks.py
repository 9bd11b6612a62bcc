"""Reading mask images (mask-folder layout) as HxW uint8 arrays.

Binary (default): foreground is any non-zero value in any channel, which covers 0/255, 0/1,
instance ids, palette PNGs and coloured RGB masks. JPEG masks are lossy, so there the
threshold is 128 instead of 0 (compression noise around a 0/255 mask is not foreground).
Multi-class (`binary=False`): the stored values are the class ids; palette PNGs give their
palette indices (read with PIL), single-channel images their values, and RGB images whose
three channels agree the common channel. Coloured RGB masks and ids above 255 are refused.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from runtime.errors import DataError
from runtime.images import JPEG_EXTENSIONS, decode_unchanged, read_bytes

MAX_CLASS_ID = 255
_JPEG_THRESHOLD = 127


def load_mask(path: str | Path, binary: bool = True) -> np.ndarray:
    """The mask at `path` as HxW uint8: 0/1 when `binary`, else the stored class ids."""
    path = Path(path)
    data = read_bytes(path)
    values = _palette_indices(data)
    if values is None:
        values = decode_unchanged(path, data)
    if values.dtype.kind == "f":
        raise DataError(path, f"floating-point mask ({values.dtype}); save integer class ids")
    if values.ndim == 3:
        values = _single_channel(path, values, binary)
    if binary:
        threshold = _JPEG_THRESHOLD if path.suffix.lower() in JPEG_EXTENSIONS else 0
        return (values > threshold).astype(np.uint8)
    if values.max(initial=0) > MAX_CLASS_ID:
        raise DataError(
            path, f"class id {int(values.max())} in the mask; at most {MAX_CLASS_ID} supported"
        )
    return values.astype(np.uint8)


def _single_channel(path: Path, values: np.ndarray, binary: bool) -> np.ndarray:
    colour = values[:, :, :3]
    if binary:
        return colour.max(axis=2)
    if (colour == colour[:, :, :1]).all():
        return colour[:, :, 0]
    raise DataError(
        path,
        "coloured RGB mask cannot be read as class ids; save a single-channel or palette PNG",
    )


def _palette_indices(data: bytes) -> np.ndarray | None:
    """The palette indices of a palette ('P' mode) image, or None for any other image."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            if img.mode != "P":
                return None
            return np.asarray(img)
    except Exception:  # noqa: BLE001 - not readable by PIL: leave it to OpenCV's checked decode
        return None
