"""mask_to_polygons, mask_to_labelme and overlay."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from runtime import ArgumentError, mask_to_labelme, mask_to_polygons, overlay


def two_regions() -> np.ndarray:
    mask = np.zeros((60, 80), np.uint8)
    cv2.circle(mask, (20, 30), 12, 1, -1)
    mask[10:30, 50:75] = 2
    return mask


def test_polygons_trace_each_region():
    mask = two_regions()
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 2 and all(p.ndim == 2 and p.shape[1] == 2 for p in polygons)
    redrawn = np.zeros_like(mask)
    cv2.fillPoly(redrawn, polygons, 1)
    assert ((redrawn > 0) == (mask > 0)).mean() > 0.995
    simple = mask_to_polygons(mask, epsilon=2.0)
    assert sum(len(p) for p in simple) < sum(len(p) for p in polygons)
    assert mask_to_polygons(np.zeros((5, 5), np.uint8)) == []
    assert mask_to_polygons(np.eye(5, dtype=bool)) == []  # a 1-pixel line has no area
    with pytest.raises(ArgumentError, match="mask: expected an H x W array"):
        mask_to_polygons(np.zeros((5, 5, 3)))


def test_labelme_annotation_round_trips_through_json():
    mask = two_regions()
    data = json.loads(json.dumps(mask_to_labelme(mask, "img.png", ["background", "round"])))
    assert (data["imageHeight"], data["imageWidth"], data["imagePath"]) == (60, 80, "img.png")
    assert data["imageData"] is None
    labels = sorted(s["label"] for s in data["shapes"])
    assert labels == ["class_2", "round"]  # id 2 is beyond the class names given
    square = next(s for s in data["shapes"] if s["label"] == "class_2")
    assert square["shape_type"] == "polygon"
    points = np.array(square["points"])
    assert points[:, 0].min() == 50 and points[:, 0].max() == 74
    assert points[:, 1].min() == 10 and points[:, 1].max() == 29


def test_overlay_tints_only_labelled_pixels():
    image = np.full((60, 80, 3), 100, np.uint8)
    mask = two_regions()
    tinted = overlay(image, mask, alpha=0.5)
    assert tinted.dtype == np.uint8 and tinted.shape == image.shape
    assert (tinted[mask == 0] == 100).all()
    assert tuple(tinted[30, 20]) == (178, 50, 50)  # class 1: red at alpha 0.5
    assert not np.array_equal(tinted[20, 60], tinted[30, 20])  # class 2 has its own colour
    assert tuple(tinted[10, 60]) == (0, 200, 0) and tuple(tinted[30, 8]) == (255, 0, 0)  # outlines
    outlined = (overlay(image, mask, alpha=0.0) != image).any(axis=-1)  # outlines only
    assert (mask[outlined] != 0).all() and outlined.sum() < 0.3 * (mask != 0).sum()
    with pytest.raises(ArgumentError, match=r"mask: expected the image's shape \(60, 80\)"):
        overlay(image, mask[:10])
    with pytest.raises(ArgumentError, match="image: expected uint8"):
        overlay(image.astype(np.float32), mask)
