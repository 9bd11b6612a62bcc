"""Reading image files as HxWx3 uint8 RGB arrays (no torch), with errors that name the file.

Conversions are `runtime.pixels.to_rgb_uint8`'s (grayscale and alpha layouts, 16-bit); float
images are refused. JPEGs are
turned upright according to their EXIF orientation, as labelme does before annotating.
Files are read with `np.fromfile`-style bytes + `cv2.imdecode`, so any path (spaces,
non-ASCII) works. Training reads images with the same code.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import ImageError, ImageTooLarge
from runtime.pixels import to_rgb_uint8

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
JPEG_EXTENSIONS = (".jpg", ".jpeg")
EXIF_ORIENTATION = 0x0112
TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_SIGNATURE = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"


def is_image_file(path: Path) -> bool:
    """True for a visible file with one of IMAGE_EXTENSIONS (any letter case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; ImageError when it is missing, unreadable or empty."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not a file") from None
    except OSError as err:
        raise ImageError(path, f"cannot read file ({err.strerror or err})") from None
    if not data:
        raise ImageError(path, "empty file (0 bytes)")
    return data


def decode_unchanged(path: str | Path, data: bytes) -> np.ndarray:
    """cv2.imdecode(IMREAD_UNCHANGED) of `data`; ImageError when it cannot be decoded."""
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise ImageError(path, f"cannot decode image: {_decode_failure(data)}")
    return array


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """The image at `path` as an HxWx3 uint8 RGB array (see the module docstring).

    With `max_pixels`, an image whose header states more pixels is refused before it is
    decoded (`ImageTooLarge`), so a small file cannot expand into gigabytes."""
    path = Path(path)
    data = read_bytes(path)
    if max_pixels is not None:
        check_pixels(data, max_pixels, path)
    return decode_image(data, path)


def decode_image(data: bytes, path: str | Path = "image") -> np.ndarray:
    """Encoded bytes (PNG, JPEG, ...) as an HxWx3 uint8 RGB array; `path` names it."""
    path = Path(path)
    array = decode_unchanged(path, data)
    rgb = to_rgb_uint8(array, str(path), bgr=True, floats=False, error=ImageError)
    if path.suffix.lower() in JPEG_EXTENSIONS:
        rgb = apply_orientation(rgb, exif_orientation(data))
    return np.ascontiguousarray(rgb)


def header_pixels(data: bytes) -> int | None:
    """The pixel count stated by an encoded image's header, read without decoding its pixels
    (Pillow); None when Pillow cannot read the header."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: judged here
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError as err:  # past twice Pillow's own limit
        numbers = re.findall(r"\d+", str(err))
        return int(numbers[0]) if numbers else None
    except Exception:  # noqa: BLE001 - not a header Pillow knows: OpenCV's decode decides
        return None
    return height * width


def check_pixels(data: bytes, max_pixels: int, name: str | Path = "image") -> None:
    """`ImageTooLarge` when the header states more than `max_pixels` pixels."""
    pixels = header_pixels(data)
    if pixels is not None and pixels > max_pixels:
        raise ImageTooLarge(name, too_many_pixels(pixels, max_pixels))


def too_many_pixels(pixels: int, max_pixels: int) -> str:
    return f"{pixels:,} pixels is more than the limit of {max_pixels:,} (max_pixels=None lifts it)"


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of the image as `read_image` would return it, from the header if possible."""
    path = Path(path)
    try:
        from PIL import Image

        with Image.open(path) as img:
            width, height = img.size
            transposed = (
                path.suffix.lower() in JPEG_EXTENSIONS
                and img.getexif().get(EXIF_ORIENTATION) in TRANSPOSED_ORIENTATIONS
            )
        return (width, height) if transposed else (height, width)
    except Exception:  # noqa: BLE001 - any header problem: fall back to a full, checked read
        return read_image(path).shape[:2]


def _decode_failure(data: bytes) -> str:
    if data.startswith(_PNG_SIGNATURE) and not data.rstrip(b"\x00").endswith(_PNG_END):
        return "truncated PNG (no end chunk)"
    if data.startswith(_JPEG_SIGNATURE) and _JPEG_END not in data[-64:]:
        return "truncated JPEG (no end marker)"
    return "corrupt, truncated or not a supported image format"


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of an encoded image; 1 ("as stored") when there is none."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return int(img.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF (or no Pillow) means "as stored"
        return 1


def apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image stored with EXIF `orientation` (1-8) upright (as PIL's exif_transpose)."""
    if orientation == 2:
        return rgb[:, ::-1]
    if orientation == 3:
        return rgb[::-1, ::-1]
    if orientation == 4:
        return rgb[::-1]
    if orientation == 5:
        return rgb.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(rgb, -1)
    if orientation == 7:
        return rgb[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(rgb, 1)
    return rgb
