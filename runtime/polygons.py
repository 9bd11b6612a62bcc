"""Masks as polygons (OpenCV contours) and as labelme annotations."""

from __future__ import annotations

import os

import cv2
import numpy as np

from runtime.errors import ArgumentError

LABELME_VERSION = "5.5.0"


def mask_to_polygons(mask: np.ndarray, epsilon: float = 0.0) -> list[np.ndarray]:
    """Outer contours of the mask's non-zero pixels, as (K, 2) int32 arrays of (x, y) points.

    `epsilon` > 0 simplifies each contour with Douglas-Peucker (`cv2.approxPolyDP`): no point
    of the polygon is further than `epsilon` pixels from the contour. Holes are not returned
    (labelme polygons cannot hold them); polygons with fewer than 3 points are dropped.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        shape = getattr(mask, "shape", type(mask).__name__)
        raise ArgumentError("mask", f"expected an H x W array, got {shape}")
    if epsilon < 0:
        raise ArgumentError("epsilon", f"expected >= 0, got {epsilon}")
    binary = (mask != 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if epsilon > 0:
            contour = cv2.approxPolyDP(contour, epsilon, True)
        if len(contour) >= 3:
            polygons.append(contour.reshape(-1, 2).astype(np.int32))
    return polygons


def mask_to_labelme(
    mask: np.ndarray,
    image_path: str | os.PathLike,
    class_names: list[str],
    epsilon: float = 1.0,
) -> dict:
    """A labelme annotation (JSON-ready dict) with one polygon per region of each class.

    Pixel value k (k >= 1) is labelled `class_names[k]` (`classes` of the model's metadata,
    where index 0 is the background), or `class_<k>` beyond the list. `image_path` is written
    as given: labelme resolves it relative to the JSON file's folder. `imageData` is null.
    """
    height, width = mask.shape[:2]
    shapes = []
    for value in np.unique(mask).astype(int).tolist():
        if value == 0:
            continue
        label = class_names[value] if value < len(class_names) else f"class_{value}"
        for polygon in mask_to_polygons(mask == value, epsilon):
            shapes.append(
                {
                    "label": label,
                    "points": polygon.astype(float).tolist(),
                    "group_id": None,
                    "description": "",
                    "shape_type": "polygon",
                    "flags": {},
                }
            )
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": os.fspath(image_path),
        "imageData": None,
        "imageHeight": int(height),
        "imageWidth": int(width),
    }
