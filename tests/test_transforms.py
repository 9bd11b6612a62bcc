"""Paired transforms: output types, mask alignment and values, object crop, reproducibility."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from trainer.data import IMAGENET_MEAN, IMAGENET_STD, PRESETS, build_transform
from trainer.data.transforms import object_crop_box

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def red_equals_mask(height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A mask with two objects and an image whose red channel is 255 exactly on them."""
    mask = np.zeros((height, width), np.uint8)
    mask[8:30, 10:34] = 1
    yy, xx = np.mgrid[0:height, 0:width]
    mask[(yy - 34) ** 2 + (xx - 48) ** 2 < 81] = 1
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = mask * 255
    return image, mask


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("train", [True, False])
def test_output_types_and_shapes(preset, train):
    image, mask = red_equals_mask()
    x, y = build_transform(preset, (24, 40), train=train)(image, mask)
    assert type(x) is torch.Tensor and x.dtype == torch.float32 and x.shape == (3, 24, 40)
    assert type(y) is torch.Tensor and y.dtype == torch.int64 and y.shape == (24, 40)


def test_plain_normalizes_with_imagenet_statistics():
    image = np.full((10, 10, 3), 255, np.uint8)
    x, _ = build_transform("plain", 8, train=False)(image, np.zeros((10, 10), np.uint8))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x[:, 0, 0], expected, atol=1e-5)


def test_eval_transform_is_plain_and_deterministic():
    image, mask = red_equals_mask()
    transform = build_transform("crop", 32, train=False)
    torch.manual_seed(0)
    first = transform(image, mask)
    torch.manual_seed(1)
    second = transform(image, mask)
    plain = build_transform("plain", 32, train=False)(image, mask)
    for a, b, c in zip(first, second, plain, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_unknown_preset_and_bad_size():
    with pytest.raises(ValueError, match="Did you mean 'standard'") as err:
        build_transform("standrd", 32, train=True)
    assert all(name in str(err.value) for name in PRESETS)
    for size in (0, (32,), (32, -1), 3.5):
        with pytest.raises(ValueError, match="img_size"):
            build_transform("plain", size, train=True)


@pytest.mark.parametrize("preset", ["standard", "crop"])
def test_augmented_mask_stays_on_the_bright_pixels(preset):
    image, mask = red_equals_mask()
    transform = build_transform(preset, 48, train=True)
    for seed in range(12):
        torch.manual_seed(seed)
        x, y = transform(image, mask)
        erased = (x == 0).all(dim=0)  # RandomErasing writes 0 (the mean) to every channel
        red = (x * STD + MEAN)[0]
        agree = ((red > 0.5) == (y == 1))[~erased].float().mean()
        assert agree > 0.95, (seed, float(agree))


@pytest.mark.parametrize("preset", PRESETS)
def test_masks_keep_their_class_values(preset):
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 2, 5], np.uint8), size=(50, 70))
    image = rng.integers(0, 255, (50, 70, 3), np.uint8)
    transform = build_transform(preset, 32, train=True)
    for seed in range(5):
        torch.manual_seed(seed)
        _, y = transform(image, mask)
        assert set(y.unique().tolist()) <= {0, 2, 5}


def test_erasing_never_touches_the_mask():
    image, mask = red_equals_mask()
    transform = build_transform("standard", 48, train=True, erasing=1.0)
    transform.augment = None
    x, y = transform(image, mask)
    _, plain_mask = build_transform("plain", 48, train=False)(image, mask)
    assert (x == 0).all(dim=0).any() and torch.equal(y, plain_mask)


@pytest.mark.parametrize("preset", ["standard", "crop"])
def test_erasing_is_off_by_default_and_checked(preset):
    assert build_transform(preset, 32, train=True).erasing is None
    assert build_transform(preset, 32, train=True, erasing=0.25).erasing.p == 0.25
    with pytest.raises(ValueError, match="--erasing"):
        build_transform(preset, 32, train=True, erasing=1.5)


def test_object_crop_contains_the_object():
    mask = torch.zeros(60, 80, dtype=torch.uint8)
    torch.manual_seed(0)
    for _ in range(40):
        mask.zero_()
        y, x = int(torch.randint(0, 50, ())), int(torch.randint(0, 70, ()))
        mask[y : y + 10, x : x + 10] = 1
        top, left, h, w = object_crop_box(mask)
        assert 0 <= top and top + h <= 60 and 0 <= left and left + w <= 80
        assert h >= 30 and w >= 40  # at least half of each side
        assert mask[top : top + h, left : left + w].sum() == mask.sum()


def test_object_crop_grows_for_large_objects_and_handles_empty_masks():
    large = torch.zeros(40, 40, dtype=torch.uint8)
    large[1:39, 2:37] = 1
    empty = torch.zeros(40, 40, dtype=torch.uint8)
    for seed in range(10):
        torch.manual_seed(seed)
        top, left, h, w = object_crop_box(large)
        assert large[top : top + h, left : left + w].sum() == large.sum()
        top, left, h, w = object_crop_box(empty)
        assert 0 <= top <= 40 - h and 0 <= left <= 40 - w and h >= 20


def test_crop_preset_keeps_a_small_object_visible():
    mask = np.zeros((96, 96), np.uint8)
    mask[80:88, 4:12] = 1  # 64 px in a corner
    image = np.zeros((96, 96, 3), np.uint8)
    transform = build_transform("crop", 48, train=True)
    for seed in range(10):
        torch.manual_seed(seed)
        _, y = transform(image, mask)
        assert y.sum() >= 8  # 16 px at 48/96 scale, minus rotation at the border


@pytest.mark.parametrize("preset", ["standard", "crop"])
def test_same_torch_seed_same_output_and_no_other_rng_used(preset):
    image, mask = red_equals_mask()
    image[..., 1] = np.random.default_rng(0).integers(0, 255, mask.shape)
    transform = build_transform(preset, 40, train=True)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    outputs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        outputs.append([transform(image, mask) for _ in range(3)])
    same = all(
        torch.equal(a, b)
        for pa, pb in zip(outputs[0], outputs[1], strict=True)
        for a, b in zip(pa, pb, strict=True)
    )
    differ = any(
        not torch.equal(pa[0], pc[0]) for pa, pc in zip(outputs[0], outputs[2], strict=True)
    )
    assert same and differ
    assert (np.random.get_state()[1] == np_state).all() and random.getstate() == py_state
