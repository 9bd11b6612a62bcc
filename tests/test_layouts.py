"""Datasets as users have them: COCO, Pascal VOC, any folder pair, and the ignore label.

Every test makes its own tiny data in the layout's native form and reads (or trains on) it
with no conversion step."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from pycocotools import mask as mask_utils

from runtime.errors import ArgumentError, DataError
from trainer.cli import main
from trainer.config import IGNORE_INDEX, LOSSES
from trainer.data import DataSource, load_sample, resolve_source, resolve_splits
from trainer.losses import build_loss
from trainer.metrics import SegmentationMetrics

H, W = 24, 32
TRAIN = ["fit", "--img-size", "32", "--width", "4", "--epochs", "1", "--batch-size", "2"]


def _photo(path: Path, seed: int, size: tuple[int, int] = (H, W)) -> Path:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def _fit(args: list[str], out: Path):
    result = CliRunner().invoke(main, [*TRAIN, *args, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "summary.json").read_text())


# --- COCO -----------------------------------------------------------------------------------

SQUARE = [[4.0, 4.0, 14.0, 4.0, 14.0, 12.0, 4.0, 12.0]]  # x, y pairs: rows 4-11, cols 4-13


def _compressed_rle(top: int, left: int) -> dict:
    box = np.zeros((H, W), np.uint8, order="F")
    box[top : top + 5, left : left + 6] = 1
    rle = mask_utils.encode(np.asfortranarray(box))
    return {"size": rle["size"], "counts": rle["counts"].decode()}  # as COCO files store it


def _uncompressed_rle() -> dict:
    """A crowd region: rows 18-21 of the last 4 columns, as column-major run lengths."""
    flat = np.zeros((H, W), np.uint8)
    flat[18:22, W - 4 :] = 1
    runs, current, count = [], 0, 0
    for value in flat.flatten(order="F"):
        if value == current:
            count += 1
        else:
            runs.append(count)
            current, count = value, 1
    runs.append(count)
    return {"size": [H, W], "counts": runs}


def _coco_file(path: Path, image_names: list[str]) -> Path:
    images, annotations = [], []
    for index, name in enumerate(image_names, start=1):
        images.append({"id": index, "file_name": name, "height": H, "width": W})
        annotations += [
            {"id": 10 * index, "image_id": index, "category_id": 1, "iscrowd": 0,
             "segmentation": SQUARE},
            {"id": 10 * index + 1, "image_id": index, "category_id": 2, "iscrowd": 0,
             "segmentation": _compressed_rle(14, 20)},
            {"id": 10 * index + 2, "image_id": index, "category_id": 1, "iscrowd": 1,
             "segmentation": _uncompressed_rle()},
        ]  # fmt: skip
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def coco(tmp_path) -> Path:
    root = tmp_path / "coco"
    for split, count in (("train2017", 4), ("val2017", 2)):
        names = [f"{split}_{i:03d}.jpg" for i in range(count)]
        for i, name in enumerate(names):
            _photo(root / split / name, seed=i)
        _coco_file(root / "annotations" / f"instances_{split}.json", names)
    return root


def test_coco_polygons_rle_and_crowd_regions_are_drawn(coco):
    splits, problems = resolve_splits(coco)
    assert (splits.layout, len(splits["train"]), len(splits["val"])) == ("COCO", 4, 2)
    assert splits.val_source == "instances_val2017.json" and not problems
    _, binary = load_sample(splits["train"][0])
    expected = np.zeros((H, W), np.uint8)
    expected[4:12, 4:14] = 1  # polygon
    expected[14:19, 20:26] = 1  # compressed RLE
    expected[18:22, W - 4 :] = 1  # crowd region, uncompressed RLE
    np.testing.assert_array_equal(binary, expected)
    _, classes = load_sample(splits["train"][0], {"dog": 1})  # persons become background
    assert set(np.unique(classes)) == {0, 1} and classes[16, 22] == 1 and classes[6, 6] == 0


def test_coco_unknown_class_is_refused(coco):
    sample = resolve_splits(coco)[0]["train"][0]
    with pytest.raises(ArgumentError, match="--classes: cat not among the categories"):
        load_sample(sample, {"cat": 1})


def test_coco_trains_from_its_native_layout_and_from_a_file(coco, tmp_path):
    result, summary = _fit(["--data", str(coco), "--classes", "person,dog"], tmp_path / "run")
    assert "data: COCO layout, 4 training and 2 validation samples" in result.output
    assert (summary["layout"], summary["train_samples"], summary["val_samples"]) == ("COCO", 4, 2)
    args = ["--coco", str(coco / "annotations" / "instances_train2017.json")]
    _, summary = _fit([*args, "--images", str(coco / "train2017")], tmp_path / "file")
    assert summary["train_samples"] + summary["val_samples"] == 4


# --- Pascal VOC -----------------------------------------------------------------------------


def _palette_png(path: Path, ids: np.ndarray) -> None:
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    palette = [0] * 768
    palette[3 * 15 : 3 * 15 + 3] = [192, 128, 128]  # VOC's colours do not matter, ids do
    image.putpalette(palette)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _voc_ids() -> np.ndarray:
    """Person (15) and dog (12) blobs, each outlined by a 2-px void (255) border."""
    ids = np.zeros((H, W), np.uint8)
    ids[4:12, 4:14] = 255
    ids[6:10, 6:12] = 15
    ids[14:22, 18:30] = 255
    ids[16:20, 20:28] = 12
    return ids


@pytest.fixture
def voc(tmp_path) -> Path:
    root = tmp_path / "VOCdevkit" / "VOC2012"
    stems = [f"2007_{i:06d}" for i in range(6)]
    for i, stem in enumerate(stems):
        _photo(root / "JPEGImages" / f"{stem}.jpg", seed=i)
        _palette_png(root / "SegmentationClass" / f"{stem}.png", _voc_ids())
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("\n".join(stems[:4]) + "\n")
    (sets / "val.txt").write_text("\n".join(stems[4:]) + "\n")
    return tmp_path / "VOCdevkit"


def test_voc_void_is_ignored_and_classes_map_by_name(voc):
    splits, problems = resolve_splits(voc)  # the VOCdevkit parent is recognized
    assert (splits.layout, len(splits["train"]), len(splits["val"])) == ("Pascal VOC", 4, 2)
    assert not problems
    _, binary = load_sample(splits["train"][0])
    ids = _voc_ids()
    assert (binary[ids == 255] == IGNORE_INDEX).all()
    assert (binary[(ids == 15) | (ids == 12)] == 1).all() and (binary[ids == 0] == 0).all()
    _, classes = load_sample(splits["train"][0], {"person": 1, "dog": 2})
    assert (classes[ids == 15] == 1).all() and (classes[ids == 12] == 2).all()
    _, only_dogs = load_sample(splits["train"][0], {"dog": 1})
    assert (only_dogs[ids == 15] == 0).all() and (only_dogs[ids == 255] == IGNORE_INDEX).all()
    with pytest.raises(ArgumentError, match="'cat dog' is not a Pascal VOC class"):
        load_sample(splits["train"][0], {"cat dog": 1})


def test_voc_trains_from_its_native_layout(voc, tmp_path):
    result, summary = _fit(
        ["--data", str(voc / "VOC2012"), "--classes", "person,dog"], tmp_path / "r"
    )
    assert summary["layout"] == "Pascal VOC" and summary["val_samples"] == 2
    assert "validation: ImageSets/Segmentation/val.txt" in result.output


# --- any folder pair ------------------------------------------------------------------------


@pytest.fixture
def pedestrians(tmp_path) -> Path:
    """PennFudan's layout: PNGImages/ + PedMasks/ with <stem>_mask.png instance ids; one JPEG
    mask (0/255 with compression noise) and one mask at half the image's scale."""
    root = tmp_path / "PennFudanPed"
    for i in range(6):
        stem = f"FudanPed{i:05d}"
        _photo(root / "PNGImages" / f"{stem}.png", seed=i, size=(2 * H, 2 * W))
        mask = np.zeros((2 * H, 2 * W), np.uint8)
        mask[10:30, 8:20], mask[20:40, 36:50] = 1, 2  # two pedestrians: instance ids
        if i == 4:
            cv2.imwrite(str(root / "PedMasks" / f"{stem}_mask.jpg"), mask.astype(bool) * 255)
        elif i == 5:
            half = cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(str(root / "PedMasks" / f"{stem}_mask.png"), half)
        else:
            (root / "PedMasks").mkdir(exist_ok=True)
            cv2.imwrite(str(root / "PedMasks" / f"{stem}_mask.png"), mask)
    return root


def test_unknown_layout_says_what_was_found_and_what_to_pass(pedestrians):
    with pytest.raises(DataError) as err:
        resolve_splits(pedestrians)
    message = str(err.value)
    assert "found PNGImages/ and PedMasks/: pass --images" in message
    assert f"--masks {pedestrians / 'PedMasks'}" in message and "Pascal VOC" in message


def test_folder_pairs_match_by_stem_threshold_jpeg_and_resize_on_request(pedestrians):
    source = DataSource(images=str(pedestrians / "PNGImages"), masks=str(pedestrians / "PedMasks"))
    splits, _ = resolve_source(source, val_fraction=0.5)
    samples = sorted(splits["train"] + splits["val"], key=lambda s: s.image.name)
    assert splits.layout == "folder pairs" and len(samples) == 6
    _, reference = load_sample(samples[0])
    _, from_jpeg = load_sample(samples[4])
    np.testing.assert_array_equal(from_jpeg, reference)  # JPEG noise thresholded away
    with pytest.raises(
        DataError, match=r"mask is 24x32 but its image .* is 48x64 .*--resize-masks"
    ):
        load_sample(samples[5])
    resized = resolve_source(source.replace(resize_masks=True), val_fraction=0.5)[0]
    half = next(s for s in resized["train"] + resized["val"] if s.image.stem.endswith("5"))
    np.testing.assert_array_equal(load_sample(half)[1], reference)


def test_the_new_user_case_trains_with_images_and_masks(pedestrians, tmp_path):
    folders = ["--images", str(pedestrians / "PNGImages"), "--masks", str(pedestrians / "PedMasks")]
    result = CliRunner().invoke(main, [*TRAIN, "--data", str(pedestrians), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "pass --images" in result.output
    result, summary = _fit([*folders, "--resize-masks"], tmp_path / "run")
    assert summary["layout"] == "folder pairs" and summary["skipped_samples"] == []
    assert summary["train_samples"] + summary["val_samples"] == 6


def test_validation_folders_and_option_conflicts(pedestrians, tmp_path):
    images, masks = str(pedestrians / "PNGImages"), str(pedestrians / "PedMasks")
    source = DataSource(images=images, masks=masks, val_images=images, val_masks=masks)
    splits, _ = resolve_source(source)
    assert len(splits["train"]) == len(splits["val"]) == 6
    assert splits.val_source == "PNGImages/ + PedMasks/"
    with pytest.raises(ArgumentError, match="--images/--masks: give both"):
        resolve_source(DataSource(images=images))
    with pytest.raises(ArgumentError, match="--data: give either --data DIR or --images"):
        resolve_source(DataSource(data=images, images=images, masks=masks))


def test_ignore_index_marks_a_mask_folders_pixels(tmp_path):
    (tmp_path / "masks").mkdir()
    for i in range(2):
        _photo(tmp_path / "images" / f"a{i}.png", seed=i)
        mask = np.zeros((H, W), np.uint8)
        mask[5:15, 5:15], mask[0:2, :] = 1, 128
        assert cv2.imwrite(str(tmp_path / "masks" / f"a{i}.png"), mask)
    plain = resolve_splits(tmp_path)[0]["train"][0]
    assert (load_sample(plain)[1][0:2] == 1).all()  # without the option 128 is foreground
    marked = resolve_splits(tmp_path, ignore_index=128)[0]["train"][0]
    _, mask = load_sample(marked)
    assert (mask[0:2] == IGNORE_INDEX).all() and mask[5:15, 5:15].all() and mask[20, 20] == 0


# --- the ignore label in losses and metrics -------------------------------------------------


def _band_case(num_classes: int):
    """Targets with and without a void top band, right logits, and logits that are wrong
    (random) only inside that band."""
    torch.manual_seed(0)
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, 6:12, 4:12] = 1
    if num_classes == 1:
        logits = torch.where(target == 1, 4.0, -4.0).unsqueeze(1)
    else:
        logits = torch.full((2, num_classes, 16, 16), -4.0)
        for class_id in range(2):
            logits[:, class_id][target == class_id] = 4.0
    void = target.clone()
    void[:, 0:4] = IGNORE_INDEX
    wrong = logits.clone()
    wrong[:, :, 0:4] = torch.randn(2, num_classes, 4, 16) * 5
    return target, void, logits, wrong


@pytest.mark.parametrize("num_classes", [1, 3])
def test_ignored_pixels_change_no_metric(num_classes):
    target, void, logits, wrong = _band_case(num_classes)
    scored = {}
    for name, (lg, tg) in {
        "clean": (logits, target),
        "void": (wrong, void),
        "bad": (wrong, target),
    }.items():
        metrics = SegmentationMetrics(num_classes=num_classes)
        metrics.update(lg, tg)
        scored[name] = metrics.compute()
    masked = SegmentationMetrics(num_classes=num_classes)
    masked.update(logits[:, :, 4:], target[:, 4:])  # the same images without the band
    for key in ("acc", "dice", "iou", "map"):
        assert scored["void"][key] == pytest.approx(masked.compute()[key], abs=1e-9), key
    assert scored["bad"]["dice"] < scored["void"]["dice"] - 0.05  # the band would change Dice
    foreground = void.clone()
    foreground[foreground == IGNORE_INDEX] = 1  # 255 counted as foreground, as it used to be
    metrics = SegmentationMetrics(num_classes=1)
    metrics.update(logits[:, :1], foreground)
    if num_classes == 1:
        assert metrics.compute()["dice"] < scored["void"]["dice"] - 0.05


@pytest.mark.parametrize("num_classes", [1, 3])
@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_add_nothing_to_any_loss(name, num_classes):
    target, void, logits, wrong = _band_case(num_classes)
    loss = build_loss(name, num_classes=num_classes)
    wrong = wrong.clone().requires_grad_(True)
    value = loss(wrong, void)
    value.backward()
    assert wrong.grad[:, :, 0:4].abs().max() == 0  # no gradient from the void band
    again = loss(logits, void)  # other logits inside the band: the same loss
    assert value.item() == pytest.approx(again.item(), abs=1e-6)
    assert loss(wrong.detach(), target).item() > value.item() + 1e-3


def test_evaluate_and_pictures_take_the_same_data_options(pedestrians, tmp_path):
    folders = ["--images", str(pedestrians / "PNGImages"), "--masks", str(pedestrians / "PedMasks")]
    _fit([*folders, "--resize-masks", "--val-fraction", "0.5"], tmp_path / "run")
    ckpt = str(tmp_path / "run" / "best.pth")
    result = CliRunner().invoke(main, ["evaluate", "--ckpt", ckpt, *folders, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["images"] == 3 and report["skipped"] == 0  # the run's split and --resize-masks
    out = tmp_path / "compare.png"
    result = CliRunner().invoke(main, ["plot", "compare", ckpt, *folders, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
