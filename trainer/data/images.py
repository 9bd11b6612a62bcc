"""Reading images as HxWx3 uint8 RGB arrays, with errors that name the file.

The decoding lives in `runtime.images` (torch-free, shared with the inference runtime, see
its docstring for the conversions); here its `ImageError` becomes the trainer's `DataError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from runtime import images as _images
from runtime.errors import ImageError
from trainer.data.errors import DataError

IMAGE_EXTENSIONS = _images.IMAGE_EXTENSIONS
JPEG_EXTENSIONS = _images.JPEG_EXTENSIONS
is_image_file = _images.is_image_file


@contextmanager
def _as_data_error() -> Iterator[None]:
    try:
        yield
    except ImageError as err:
        raise DataError(err.path, err.problem) from None


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; DataError when it is missing, unreadable or empty."""
    with _as_data_error():
        return _images.read_bytes(path)


def decode_unchanged(path: str | Path, data: bytes) -> np.ndarray:
    """cv2.imdecode(IMREAD_UNCHANGED) of `data`; DataError when it cannot be decoded."""
    with _as_data_error():
        return _images.decode_unchanged(path, data)


def read_image(path: str | Path) -> np.ndarray:
    """The image at `path` as an HxWx3 uint8 RGB array; DataError names a bad file."""
    with _as_data_error():
        return _images.read_image(path)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of the image as read_image would return it, from the header if possible."""
    path = Path(path)
    try:
        from PIL import Image

        with Image.open(path) as img:
            width, height = img.size
            transposed = (
                path.suffix.lower() in JPEG_EXTENSIONS
                and img.getexif().get(_images.EXIF_ORIENTATION) in _images.TRANSPOSED_ORIENTATIONS
            )
        return (width, height) if transposed else (height, width)
    except Exception:  # noqa: BLE001 - any header problem: fall back to a full, checked read
        return read_image(path).shape[:2]
