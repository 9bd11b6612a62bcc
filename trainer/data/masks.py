"""Reading mask images (mask-folder layout) as HxW uint8 arrays.

Binary (default): foreground is any non-zero value in any channel, which covers 0/255, 0/1,
instance ids, palette PNGs and coloured RGB masks. JPEG masks are lossy, so there the
threshold is 128 instead of 0 (compression noise around a 0/255 mask is not foreground).
Multi-class (`binary=False`): the stored values are the class ids; palette PNGs give their
palette indices (read with PIL), single-channel images their values, and RGB images whose
three channels agree the common channel. Coloured RGB masks and ids above 255 are refused.

A stored value given as `ignore_index` (`--ignore-index`) marks pixels to ignore: they become
`IGNORE_INDEX` and count neither as foreground nor in any loss or metric. A mask at another
scale than its image but with the same aspect ratio is scaled to it (nearest neighbour) when
the sample allows it (`--resize-masks`); otherwise the sample is refused, with that hint.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import DataError
from runtime.images import JPEG_EXTENSIONS, decode_unchanged, read_bytes
from trainer.config import IGNORE_INDEX
from trainer.data.discover import Sample

MAX_CLASS_ID = 255
_JPEG_THRESHOLD = 127
ASPECT_TOLERANCE = 0.02  # relative: masks at another scale must keep their image's shape


def read_folder_mask(
    sample: Sample, image_shape: tuple[int, int], class_map: dict[str, int] | None
) -> np.ndarray:
    """A mask-folder sample's mask at its image's size, with its ignore value marked."""
    path = sample.annotation
    mask = load_mask(path, binary=class_map is None, ignore_index=sample.ignore_index)
    if mask.shape != tuple(image_shape):
        mask = _fit_to_image(sample, mask, image_shape)
    return mask


def _fit_to_image(sample: Sample, mask: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    (mh, mw), (ih, iw) = mask.shape, image_shape
    same_aspect = abs((mh / mw) / (ih / iw) - 1) <= ASPECT_TOLERANCE
    if sample.resize_mask and same_aspect:
        return cv2.resize(mask, (iw, ih), interpolation=cv2.INTER_NEAREST)
    hint = ""
    if same_aspect:
        hint = " (the same aspect ratio: pass --resize-masks to scale the masks to their images)"
    raise DataError(
        sample.annotation,
        f"mask is {mh}x{mw} but its image {sample.image.name} is {ih}x{iw}{hint}",
    )


def load_mask(path: str | Path, binary: bool = True, ignore_index: int | None = None) -> np.ndarray:
    """The mask at `path` as HxW uint8: 0/1 when `binary`, else the stored class ids.

    Pixels whose stored value is `ignore_index` become `IGNORE_INDEX` (never foreground).
    """
    path = Path(path)
    data = read_bytes(path)
    values = _palette_indices(data)
    if values is None:
        values = decode_unchanged(path, data)
    if values.dtype.kind == "f":
        raise DataError(path, f"floating-point mask ({values.dtype}); save integer class ids")
    if values.ndim == 3:
        values = _single_channel(path, values, binary)
    ignored = None if ignore_index is None else values == ignore_index
    mask = _class_values(path, values, binary)
    if ignored is not None:
        mask[ignored] = IGNORE_INDEX
    return mask


def _class_values(path: Path, values: np.ndarray, binary: bool) -> np.ndarray:
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
