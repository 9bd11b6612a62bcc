"""labelme JSON -> HxW uint8 mask (0 = background), with strict validation.

Conventions:
- Coordinates are continuous image coordinates as labelme's canvas records them: pixel
  (row j, column i) covers [i, i+1) x [j, j+1). A pixel is inside a shape when its centre
  (i + 0.5, j + 0.5) is (even-odd rule), computed exactly from the float points; so the
  rectangle [[0, 0], [10, 10]] covers 10 x 10 pixels.
- Points may lie up to COORD_TOLERANCE px outside the image (rounding in annotation tools);
  the parts of a shape outside the image are cut off. Points further out are an error.
- Binary by default (any label -> 1). With `class_map`, a label maps to its id and a label
  missing from the map is an error (never silently background).
- Shapes are drawn in file order; later shapes overwrite earlier ones.
- `line`, `linestrip`, `point` and `points` shapes are not areas and unknown shape types
  cannot be drawn: both are skipped with a warning naming the file. Every other problem is
  a DataError naming the file, so a parsing problem never yields an empty mask.
- `imagePath` is ignored: images are matched to annotations by file stem.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from runtime.errors import DataError
from runtime.images import read_bytes

AREA_SHAPES = ("polygon", "rectangle", "circle", "mask")
NON_AREA_SHAPES = ("line", "linestrip", "point", "points")
COORD_TOLERANCE = 1.0
MAX_CLASS_ID = 255
MAX_PIXELS = 1 << 28  # a stated image size beyond this is taken as corrupt

# Errors that malformed (or adversarial) JSON can provoke deeper down; all become DataError.
_MALFORMED = (RecursionError, TypeError, KeyError, IndexError, ValueError, OverflowError)


def load_labelme(
    json_path: str | Path,
    image_shape: tuple[int, int] | None = None,
    class_map: dict[str, int] | None = None,
) -> np.ndarray:
    """The HxW uint8 mask of a labelme file; `image_shape` is the real (h, w) of its image.

    Without `image_shape` the size comes from the file's imageHeight/imageWidth.
    """
    path = Path(json_path)
    _check_class_map(class_map)
    doc = read_labelme_json(path)
    try:
        height, width = _mask_size(path, doc, image_shape)
        mask = np.zeros((height, width), np.uint8)
        for index, shape in enumerate(doc["shapes"]):
            _draw_shape(path, index, shape, mask, class_map)
        return mask
    except DataError:
        raise
    except _MALFORMED as err:
        raise DataError(path, f"malformed annotation ({type(err).__name__}: {err})") from None


def read_labelme_json(path: Path) -> dict[str, Any]:
    """The parsed file, checked to be an object with a `shapes` list."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text (invalid byte at offset {err.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            path, f"invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except RecursionError:
        raise DataError(path, "invalid JSON: nested too deeply") from None
    except ValueError as err:  # e.g. an integer literal with too many digits
        raise DataError(path, f"invalid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise DataError(path, f"top level is a JSON {_json_type(doc)}, not an object")
    if "shapes" not in doc:
        raise DataError(path, "no 'shapes' list (is this a labelme file?)")
    if not isinstance(doc["shapes"], list):
        raise DataError(path, f"'shapes' is a JSON {_json_type(doc['shapes'])}, not a list")
    return doc


def fill_polygon(mask: np.ndarray, points: np.ndarray, value: int) -> int:
    """Set to `value` the pixels of `mask` whose centre is inside the polygon; returns their count.

    `points` is an (N, 2) float array of (x, y) in continuous coordinates (see module doc).
    """
    height, width = mask.shape
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    # Edge e crosses the centre line of row j when min(y) <= j + 0.5 < max(y) (half-open).
    first = np.clip(np.ceil(np.minimum(y0, y1) - 0.5), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(np.maximum(y0, y1) - 0.5), 0, height).astype(np.int64)
    counts = np.maximum(stop - first, 0)
    total = int(counts.sum())
    if total == 0:
        return 0
    edge = np.repeat(np.arange(len(x0)), counts)
    rows = first[edge] + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    centre_y = rows + 0.5
    xs = x0[edge] + (centre_y - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    order = np.lexsort((xs, rows))
    rows, xs = rows[order][0::2], xs[order]
    # Pixel i is inside a span [a, b) when a <= i + 0.5 < b.
    starts = np.clip(np.ceil(xs[0::2] - 0.5), 0, width).astype(np.int64)
    ends = np.clip(np.ceil(xs[1::2] - 0.5), 0, width).astype(np.int64)
    top = int(rows.min())
    changes = np.zeros((int(rows.max()) - top + 1, width + 1), np.int32)
    np.add.at(changes, (rows - top, starts), 1)
    np.add.at(changes, (rows - top, ends), -1)
    inside = np.cumsum(changes[:, :width], axis=1) > 0
    mask[top : top + inside.shape[0]][inside] = value
    return int(inside.sum())


def circle_polygon(centre: np.ndarray, radius: float) -> np.ndarray:
    """A polygon close enough to the circle that no pixel centre tells them apart."""
    n = max(32, math.ceil(2 * math.pi * radius))
    angles = np.arange(n) * (2 * math.pi / n)
    # Vertices on a slightly larger circle so the polygon's area equals the circle's.
    scale = math.sqrt(2 * math.pi / (n * math.sin(2 * math.pi / n)))
    return centre + radius * scale * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _draw_shape(
    path: Path, index: int, shape: Any, mask: np.ndarray, class_map: dict[str, int] | None
) -> None:
    if not isinstance(shape, dict):
        raise DataError(path, f"shape {index} is a JSON {_json_type(shape)}, not an object")
    kind = shape.get("shape_type") or "polygon"  # old labelme files have no shape_type
    if not isinstance(kind, str):
        raise DataError(
            path, f"shape {index}: shape_type is a JSON {_json_type(kind)}, not a string"
        )
    if kind in NON_AREA_SHAPES:
        warnings.warn(f"{path}: shape {index} is a {kind}, not an area; skipped", stacklevel=3)
        return
    if kind not in AREA_SHAPES:
        warnings.warn(
            f"{path}: shape {index} has unknown shape_type {kind!r}; skipped", stacklevel=3
        )
        return
    value = _class_value(path, index, shape, class_map)
    points = _points(path, index, shape, mask.shape)
    where = f"shape {index} ({kind})"
    if kind == "mask":
        drawn = _paste_mask(path, where, shape, points, mask, value)
    else:
        drawn = fill_polygon(mask, _outline(path, where, kind, points), value)
    if drawn == 0:
        warnings.warn(f"{path}: {where} covers no pixel centre; it leaves no mark", stacklevel=3)


def _outline(path: Path, where: str, kind: str, points: np.ndarray) -> np.ndarray:
    """The polygon of a polygon, rectangle or circle shape."""
    if kind == "polygon":
        if len(points) < 3:
            raise DataError(path, f"{where} has {len(points)} point(s); a polygon needs at least 3")
        x, y = points[:, 0], points[:, 1]
        area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        if area < 1e-6:
            raise DataError(path, f"{where} is degenerate (zero area)")
        return points
    if len(points) != 2:
        raise DataError(path, f"{where} has {len(points)} point(s); it needs exactly 2")
    (xa, ya), (xb, yb) = points
    if kind == "rectangle":
        if xa == xb or ya == yb:
            raise DataError(path, f"{where} is degenerate (zero width or height)")
        return np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]])
    radius = math.hypot(xb - xa, yb - ya)
    if radius == 0:
        raise DataError(path, f"{where} is degenerate (zero radius)")
    return circle_polygon(points[0], radius)


def _paste_mask(
    path: Path, where: str, shape: dict, points: np.ndarray, mask: np.ndarray, value: int
) -> int:
    """Place a `mask` shape's bitmap (base64 PNG of its box) at the box's top-left pixel."""
    if len(points) != 2:
        raise DataError(path, f"{where} has {len(points)} point(s); it needs 2 (its box corners)")
    encoded = shape.get("mask")
    if not isinstance(encoded, str) or not encoded:
        raise DataError(path, f"{where} has no base64 'mask' string")
    try:
        png = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(path, f"{where}: 'mask' is not valid base64") from None
    bitmap = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) if png else None
    if bitmap is None:
        raise DataError(path, f"{where}: 'mask' does not decode as an image")
    inside = bitmap > 0 if bitmap.ndim == 2 else (bitmap > 0).any(axis=2)
    left, top = (int(v) for v in np.floor(points.min(axis=0)))
    span_x, span_y = np.floor(points.max(axis=0)) - np.floor(points.min(axis=0)) + 1
    if abs(inside.shape[0] - span_y) > 1 or abs(inside.shape[1] - span_x) > 1:
        raise DataError(
            path,
            f"{where}: the mask bitmap is {inside.shape[0]}x{inside.shape[1]} but its points "
            f"span {int(span_y)}x{int(span_x)} pixels",
        )
    height, width = mask.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + inside.shape[0], height), min(left + inside.shape[1], width)
    if y1 <= y0 or x1 <= x0:
        return 0
    region = inside[y0 - top : y1 - top, x0 - left : x1 - left]
    mask[y0:y1, x0:x1][region] = value
    return int(region.sum())


def _points(path: Path, index: int, shape: dict, image_shape: tuple[int, int]) -> np.ndarray:
    """The shape's points as an (N, 2) float array, checked to be finite and near the image."""
    raw = shape.get("points")
    if not isinstance(raw, list):
        raise DataError(path, f"shape {index}: 'points' is a JSON {_json_type(raw)}, not a list")
    coords = []
    for point in raw:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
        ):
            raise DataError(
                path, f"shape {index}: point {_preview(point)} is not an [x, y] pair of numbers"
            )
        try:
            coords.append((float(point[0]), float(point[1])))
        except OverflowError:
            raise DataError(
                path, f"shape {index}: coordinate too large in {_preview(point)}"
            ) from None
    points = np.array(coords, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise DataError(path, f"shape {index}: non-finite coordinate (NaN or infinity)")
    height, width = image_shape
    low, high = -COORD_TOLERANCE, np.array([width, height]) + COORD_TOLERANCE
    outside = ((points < low) | (points > high)).any(axis=1)
    if outside.any():
        x, y = points[np.argmax(outside)]
        raise DataError(
            path,
            f"shape {index}: point ({x:g}, {y:g}) lies outside the {width}x{height} (WxH) image",
        )
    return points


def _class_value(path: Path, index: int, shape: dict, class_map: dict[str, int] | None) -> int:
    if class_map is None:
        return 1
    label = shape.get("label")
    if not isinstance(label, str):
        raise DataError(path, f"shape {index}: label is a JSON {_json_type(label)}, not a string")
    if label not in class_map:
        known = ", ".join(sorted(class_map))
        raise DataError(path, f"shape {index}: label {label!r} is not one of the classes ({known})")
    return class_map[label]


def _mask_size(path: Path, doc: dict, image_shape: tuple[int, int] | None) -> tuple[int, int]:
    stated = _stated_size(path, doc)
    if image_shape is None:
        if stated is None:
            raise DataError(path, "no imageHeight/imageWidth in the file and no image size given")
        return stated
    height, width = (int(v) for v in image_shape)
    if stated is not None and stated != (height, width):
        raise DataError(
            path,
            f"imageHeight/imageWidth say {stated[0]}x{stated[1]} but the image is {height}x{width}",
        )
    return height, width


def _stated_size(path: Path, doc: dict) -> tuple[int, int] | None:
    """(imageHeight, imageWidth) when the file states both, else None."""
    values = doc.get("imageHeight"), doc.get("imageWidth")
    if values[0] is None or values[1] is None:
        return None
    for name, value in zip(("imageHeight", "imageWidth"), values, strict=True):
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole or value <= 0:
            raise DataError(path, f"{name} is {_preview(value)}, not a positive integer")
    height, width = int(values[0]), int(values[1])
    if height * width > MAX_PIXELS:
        raise DataError(path, f"imageHeight x imageWidth = {height}x{width} is implausibly large")
    return height, width


def _check_class_map(class_map: dict[str, int] | None) -> None:
    if class_map is None:
        return
    if not isinstance(class_map, dict) or not class_map:
        raise ValueError(f"class_map: expected a non-empty dict of label -> id, got {class_map!r}")
    for label, value in class_map.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_CLASS_ID:
            raise ValueError(
                f"class_map: id of {label!r} must be an integer 0..{MAX_CLASS_ID}, got {value!r}"
            )


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _preview(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # deeply nested, or an int too long to print
        text = f"<{_json_type(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
