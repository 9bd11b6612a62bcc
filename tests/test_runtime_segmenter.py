"""runtime.Segmenter: accepted inputs, result shapes, thresholds, batching, multi-class."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from runtime_models import exported_model, scene

from runtime import ModelError, Segmenter
from runtime.backends import auto_backend
from runtime.preprocess import preprocess


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return exported_model(tmp_path_factory, gain=50.0)


@pytest.fixture(scope="module")
def seg(binary):
    with Segmenter(binary, threads=1) as segmenter:
        yield segmenter


def write_png(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_metadata_and_defaults(seg):
    assert seg.metadata.arch == "unet" and seg.classes == ["background", "foreground"]
    assert seg.backend.name == auto_backend(seg.backend.path) and seg.backend.device == "cpu"
    assert seg.input_size == (32, 32) and seg.threshold == 0.5
    assert f"backend={seg.backend.name!r}" in repr(seg) and "precision=" in repr(seg)


def test_one_input_gives_one_mask_a_list_a_list(seg, tmp_path):
    image = scene(0, 45, 70)
    path = write_png(tmp_path / "a b.png", image)
    mask = seg.predict(image)
    assert mask.shape == (45, 70) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(seg.predict(path), mask)
    np.testing.assert_array_equal(seg.predict(str(path)), mask)
    sizes = [(45, 70), (32, 32), (100, 20), (7, 9)]
    masks = seg.predict([scene(i, *size) for i, size in enumerate(sizes)])
    assert isinstance(masks, list) and [m.shape for m in masks] == sizes
    assert seg.predict([]) == [] and seg.predict(()) == []


def test_batch_array_gives_stacked_masks(seg):
    batch = np.stack([scene(i, 40, 50) for i in range(3)])
    masks = seg.predict(batch)
    assert masks.shape == (3, 40, 50) and masks.dtype == np.uint8
    np.testing.assert_array_equal(masks[1], seg.predict(batch[1]))
    assert seg.predict(np.zeros((0, 40, 50, 3), np.uint8)).shape == (0, 40, 50)
    assert seg.predict_proba(np.zeros((0, 40, 50, 3), np.uint8)).shape == (0, 40, 50)


def test_colour_layouts_give_the_same_mask(seg):
    rgb = scene(1, 40, 60)
    expected = seg.predict(rgb)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    np.testing.assert_array_equal(seg.predict(bgr, bgr=True), expected)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(seg.predict(rgba), expected)
    bgra = np.dstack([bgr, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(seg.predict(bgra, bgr=True), expected)
    gray = rgb[:, :, 1]
    np.testing.assert_array_equal(seg.predict(gray), seg.predict(np.dstack([gray] * 3)))
    np.testing.assert_array_equal(seg.predict(gray[:, :, None]), seg.predict(gray))
    np.testing.assert_array_equal(seg.predict(rgb[::-1].copy()[::-1]), expected)  # strided view


def test_float_images_are_0_to_1_and_uint16_is_reduced(seg):
    rgb = scene(2, 40, 60)
    expected = seg.predict(rgb)
    for dtype in (np.float16, np.float32, np.float64):
        np.testing.assert_array_equal(seg.predict((rgb / 255.0).astype(dtype)), expected)
    np.testing.assert_array_equal(seg.predict(rgb.astype(np.uint16) << 8), expected)


def test_threshold_default_and_per_call(binary, seg):
    image = scene(3, 40, 60)
    probs = seg.predict_proba(image)
    assert probs.shape == (40, 60) and probs.dtype == np.float32
    assert 0.0 < probs.min() < 0.5 < probs.max() < 1.0  # the gain spreads the probabilities
    np.testing.assert_array_equal(seg.predict(image), probs >= 0.5)
    cutoff = float(np.median(probs))
    np.testing.assert_array_equal(seg.predict(image, threshold=cutoff), probs >= cutoff)
    assert seg.predict(image, threshold=0.0).all() and not seg.predict(image, threshold=1.0).any()
    with Segmenter(binary, threshold=cutoff) as other:
        np.testing.assert_array_equal(other.predict(image), probs >= cutoff)


def test_input_at_model_size_is_run_as_is(seg):
    image = scene(4, 32, 32)
    meta = seg.metadata
    direct = seg.backend.run(preprocess([image], (32, 32), meta.mean, meta.std))[0, 0]
    np.testing.assert_array_equal(seg.predict_proba(image), direct)


def test_batch_size_does_not_change_results(binary, seg):
    images = [scene(i, 30 + 3 * i, 50) for i in range(5)]
    with Segmenter(binary, batch_size=2, threads=1) as small:
        for a, b in zip(small.predict_proba(images), seg.predict_proba(images), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_fixed_batch_model_pads_the_last_chunk(tmp_path_factory, seg):
    fixed = exported_model(tmp_path_factory, gain=50.0, batch=2)
    images = [scene(i, 40, 40) for i in range(3)]
    with Segmenter(fixed, batch_size=8) as other:
        assert other.backend.min_batch == other.backend.max_batch == 2
        for a, b in zip(other.predict_proba(images), seg.predict_proba(images), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_multiclass_returns_class_ids(tmp_path_factory):
    path = exported_model(tmp_path_factory, num_classes=3, gain=50.0)
    with Segmenter(path) as seg:
        image = scene(5, 50, 40)
        probs = seg.predict_proba(image)
        assert probs.shape == (50, 40, 3)
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
        mask = seg.predict(image)
        assert mask.dtype == np.uint8 and mask.shape == (50, 40)
        np.testing.assert_array_equal(mask, probs.argmax(axis=-1))
        assert seg.predict(np.zeros((0, 8, 9, 3), np.uint8)).shape == (0, 8, 9)
        assert seg.predict_proba(np.zeros((0, 8, 9, 3), np.uint8)).shape == (0, 8, 9, 3)


def test_dynamic_model_runs_at_the_metadata_size_unless_told(tmp_path_factory):
    path = exported_model(tmp_path_factory, dynamic_hw=True, gain=50.0)
    image = scene(6, 48, 64)
    with Segmenter(path) as default, Segmenter(path, input_size=(48, 64)) as native:
        assert default.input_size == (32, 32) and native.input_size == (48, 64)
        meta = native.metadata
        direct = native.backend.run(preprocess([image], (48, 64), meta.mean, meta.std))[0, 0]
        np.testing.assert_array_equal(native.predict_proba(image), direct)
        assert default.predict(image).shape == native.predict(image).shape == (48, 64)


def test_closed_segmenter_refuses_to_run(binary):
    seg = Segmenter(binary)
    seg.close()
    seg.close()
    with pytest.raises(ModelError, match="was closed"):
        seg.predict(scene(0, 10, 10))
