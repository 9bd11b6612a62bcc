"""Data layer: image/labelme/mask reading, discovery, splits, the Dataset and the sample data."""

from __future__ import annotations

import base64
import json
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from trainer.data import (
    DataError,
    Sample,
    SegmentationDataset,
    build_transform,
    default_sample_dir,
    find_samples,
    image_size,
    load_labelme,
    load_mask,
    make_sample_dataset,
    read_image,
    resolve_splits,
)
from trainer.data.sample import render_sample

H, W = 32, 40


def write_image(path: Path, array: np.ndarray) -> Path:
    """Write an array with OpenCV (BGR order for colour), any path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix, array)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def labelme(shapes: list, height: int = H, width: int = W) -> dict:
    return {
        "shapes": shapes,
        "imageHeight": height,
        "imageWidth": width,
        "imagePath": "x.png",
        "imageData": None,
    }


def shape(points, kind: str = "polygon", label: str = "obj", **extra) -> dict:
    return {"label": label, "points": points, "shape_type": kind, "flags": {}, **extra}


SQUARE = [[4, 4], [14, 4], [14, 14], [4, 14]]


def labelme_pair(folder: Path, stem: str, shapes: list | None = None, size=(H, W)) -> Sample:
    image = write_image(folder / f"{stem}.png", np.full((*size, 3), 90, np.uint8))
    annotation = write_json(folder / f"{stem}.json", labelme(shapes or [shape(SQUARE)], *size))
    return Sample(image, annotation, "labelme")


def png_b64(bitmap: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".png", bitmap)[1].tobytes()).decode()


# --- images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "array"),
    [
        (
            "colour.png",
            np.dstack([np.full((H, W), 10), np.full((H, W), 20), np.full((H, W), 30)]).astype(
                np.uint8
            ),
        ),
        ("gray.png", np.full((H, W), 77, np.uint8)),
        ("rgba.png", np.dstack([np.full((H, W, 3), 50), np.zeros((H, W))]).astype(np.uint8)),
        ("deep16.png", np.full((H, W, 3), 0x1234, np.uint16)),
        ("photo.JPG", np.full((H, W, 3), 128, np.uint8)),
        ("bitmap.bmp", np.full((H, W, 3), 5, np.uint8)),
        ("scan.tiff", np.full((H, W), 200, np.uint8)),
        ("with space (1) é.png", np.full((H, W, 3), 1, np.uint8)),
    ],
)
def test_read_image_gives_hw3_uint8_rgb(tmp_path, name, array):
    path = write_image(tmp_path / name, array)
    image = read_image(path)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert image_size(path) == (H, W)
    if name == "colour.png":  # written as BGR (10, 20, 30)
        assert tuple(image[0, 0]) == (30, 20, 10)
    if name == "deep16.png":
        assert tuple(image[0, 0]) == (0x12, 0x12, 0x12)
    if name == "gray.png":
        assert tuple(image[0, 0]) == (77, 77, 77)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes())
    assert read_image(path).shape == (30, 10, 3)
    assert image_size(path) == (30, 10)


def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _truncated_png(path: Path) -> Path:
    data = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8))[1]
    return _file(path, data.tobytes()[: len(data) // 2])


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing.png", "not found"),
        (lambda d: _file(d / "empty.png", b""), "empty"),
        (lambda d: _truncated_png(d / "half.png"), "truncated"),
        (lambda d: _file(d / "text.png", b"hello"), "cannot decode"),
        (
            lambda d: write_image(d / "float.tiff", np.full((H, W), 0.5, np.float32)),
            "floating-point",
        ),
        (lambda d: _folder(d / "folder.png"), "folder"),
    ],
)
def test_read_image_errors_name_the_file(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(DataError, match=problem) as err:
        read_image(path)
    assert path.name in str(err.value)


# --- labelme ----------------------------------------------------------------------------


def _mask_of(tmp_path: Path, shapes: list, class_map=None, size=(H, W)) -> np.ndarray:
    return load_labelme(write_json(tmp_path / "a.json", labelme(shapes, *size)), size, class_map)


def test_polygon_rectangle_circle_areas(tmp_path):
    assert _mask_of(tmp_path, [shape(SQUARE)]).sum() == 100
    assert (
        _mask_of(tmp_path, [shape([[4.3, 4.3], [14.3, 4.3], [14.3, 14.3], [4.3, 14.3]])]).sum()
        == 100
    )
    triangle = int(_mask_of(tmp_path, [shape([[0, 0], [30, 0], [0, 30]])]).sum())
    assert abs(triangle - 450) / 450 < 0.05
    for corners in ([[4, 4], [14, 14]], [[14, 14], [4, 4]], [[4, 14], [14, 4]]):
        rect = _mask_of(tmp_path, [shape(corners, "rectangle")])
        assert rect.sum() == 100 and rect[4:14, 4:14].all()
    circle = _mask_of(tmp_path, [shape([[20, 16], [30, 16]], "circle")])
    assert abs(int(circle.sum()) - math.pi * 100) / (math.pi * 100) < 0.03
    assert circle[16, 20] == 1 and circle[16, 31] == 0


def test_mask_shape_is_placed_at_its_box(tmp_path):
    bitmap = np.zeros((6, 8), np.uint8)
    bitmap[1:5, 2:7] = 1
    mask = _mask_of(tmp_path, [shape([[10, 5], [17, 10]], "mask", mask=png_b64(bitmap))])
    expected = np.zeros((H, W), np.uint8)
    expected[5:11, 10:18] = bitmap
    np.testing.assert_array_equal(mask, expected)


def test_class_map_and_later_shapes_overwrite(tmp_path):
    shapes = [shape(SQUARE, label="cat"), shape([[10, 10], [20, 20]], "rectangle", label="dog")]
    mask = _mask_of(tmp_path, shapes, class_map={"cat": 1, "dog": 2})
    assert mask[5, 5] == 1 and mask[12, 12] == 2 and mask[25, 25] == 0
    assert set(np.unique(_mask_of(tmp_path, shapes))) == {0, 1}  # binary by default
    with pytest.raises(DataError, match="'dog' is not one of the classes") as err:
        _mask_of(tmp_path, shapes, class_map={"cat": 1})
    assert "a.json" in str(err.value)


def test_non_area_and_unknown_shapes_are_skipped_with_a_warning(tmp_path):
    shapes = [
        shape([[1, 1], [5, 5]], "line"),
        shape([[2, 2]], "point"),
        shape([[1, 1], [9, 9]], "blob"),
    ]
    with pytest.warns(UserWarning, match="a.json") as record:
        mask = _mask_of(tmp_path, [*shapes, shape(SQUARE)])
    assert len(record) == 3 and mask.sum() == 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _mask_of(tmp_path, []).sum() == 0  # an image without objects is valid


def test_missing_shape_type_means_polygon_and_small_overshoot_is_clipped(tmp_path):
    mask = _mask_of(
        tmp_path,
        [{"label": "x", "points": [[-0.8, -0.8], [W + 0.8, -0.8], [W + 0.8, 10], [-0.8, 10]]}],
    )
    assert mask[:10].all() and mask.sum() == 10 * W


def test_size_comes_from_the_json_without_image_shape(tmp_path):
    path = write_json(tmp_path / "a.json", labelme([shape(SQUARE)], 20, 30))
    assert load_labelme(path).shape == (20, 30)


def _labelme_with_points(points) -> dict:
    return labelme([shape(points)])


BAD_LABELME = {
    "not_json": (b"{not json", "invalid JSON"),
    "not_utf8": (b'{"shapes": [], "x": "\xff\xfe"}', "UTF-8"),
    "empty": (b"", "empty"),
    "top_list": ([], "not an object"),
    "no_shapes": ({"imageHeight": H}, "no 'shapes'"),
    "shapes_dict": ({"shapes": {}}, "not a list"),
    "shape_number": (labelme([3]), "shape 0"),
    "points_string": (labelme([shape("abc")]), "'points'"),
    "point_triple": (_labelme_with_points([[1, 2, 3], [4, 5], [6, 7]]), r"\[x, y\]"),
    "point_bool": (_labelme_with_points([[True, 2], [4, 5], [6, 7]]), r"\[x, y\]"),
    "point_nested": (_labelme_with_points([[[1], 2], [4, 5], [6, 7]]), r"\[x, y\]"),
    "two_points": (_labelme_with_points([[1, 2], [4, 5]]), "at least 3"),
    "collinear": (_labelme_with_points([[1, 1], [5, 5], [9, 9]]), "degenerate"),
    "nan": (b'{"shapes": [{"points": [[NaN, 1], [4, 5], [6, 7]]}]}', "non-finite"),
    "inf": (b'{"shapes": [{"points": [[1e400, 1], [4, 5], [6, 7]]}]}', "non-finite"),
    "huge_int": (
        b'{"shapes": [{"points": [[1' + b"0" * 400 + b", 1], [4, 5], [6, 7]]}]}",
        "too large",
    ),
    "far_outside": (_labelme_with_points([[1, 1], [80, 5], [6, 7]]), "outside"),
    "negative": (_labelme_with_points([[-1.5, 1], [8, 5], [6, 7]]), "outside"),
    "size_mismatch": (labelme([shape(SQUARE)], H + 1, W), "imageHeight/imageWidth"),
    "size_not_int": (labelme([shape(SQUARE)], "32", W), "imageHeight"),
    "rect_three": (labelme([shape([[1, 1], [5, 5], [6, 6]], "rectangle")]), "exactly 2"),
    "rect_flat": (labelme([shape([[1, 1], [5, 1]], "rectangle")]), "degenerate"),
    "circle_zero": (labelme([shape([[5, 5], [5, 5]], "circle")]), "zero radius"),
    "mask_b64": (labelme([shape([[1, 1], [5, 5]], "mask", mask="%%%")]), "base64"),
    "mask_not_png": (
        labelme([shape([[1, 1], [5, 5]], "mask", mask="aGVsbG8=")]),
        "does not decode",
    ),
    "mask_missing": (labelme([shape([[1, 1], [5, 5]], "mask")]), "'mask'"),
    "mask_wrong_size": (
        labelme([shape([[1, 1], [20, 20]], "mask", mask=png_b64(np.ones((3, 3), np.uint8)))]),
        "span",
    ),
    "shape_type_number": (labelme([{"points": SQUARE, "shape_type": 7}]), "shape_type"),
    "deep_nesting": (b'{"shapes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
}


@pytest.mark.parametrize("case", sorted(BAD_LABELME))
def test_labelme_errors_name_the_file(tmp_path, case):
    content, problem = BAD_LABELME[case]
    path = tmp_path / f"{case}.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(DataError, match=problem) as err:
        load_labelme(path, (H, W))
    assert path.name in str(err.value)


def test_labelme_without_size_anywhere_is_an_error(tmp_path):
    path = write_json(tmp_path / "nosize.json", {"shapes": []})
    with pytest.raises(DataError, match="imageHeight") as err:
        load_labelme(path)
    assert "nosize.json" in str(err.value)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
_shapes = st.fixed_dictionaries(
    {
        "points": _json_values
        | st.lists(st.lists(st.floats() | st.integers(), max_size=3), max_size=6)
    },
    optional={
        "shape_type": st.sampled_from(["polygon", "rectangle", "circle", "mask", "line", "x"])
        | _json_values,
        "label": _json_values,
        "mask": _json_values,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    doc=st.fixed_dictionaries(
        {"shapes": st.lists(_shapes | _json_values, max_size=3)},
        optional={"imageHeight": _json_values, "imageWidth": _json_values},
    ),
    multiclass=st.booleans(),
)
def test_labelme_fuzz_only_raises_data_error(tmp_path, doc, multiclass):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mask = load_labelme(path, (16, 16), {"a": 1} if multiclass else None)
        except DataError as err:
            assert "fuzz.json" in str(err)
        else:
            assert mask.shape == (16, 16) and mask.dtype == np.uint8


# --- mask images --------------------------------------------------------------------------


def _palette_png(path: Path, indices: np.ndarray) -> Path:
    img = Image.fromarray(indices.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    img.save(path)
    return path


def test_load_mask_formats(tmp_path):
    ids = np.zeros((H, W), np.uint8)
    ids[2:10, 3:12], ids[15:20, 20:30] = 1, 2
    expected = (ids > 0).astype(np.uint8)
    cases = {
        "m255.png": write_image(tmp_path / "m255.png", expected * 255),
        "m01.png": write_image(tmp_path / "m01.png", expected),
        "instances16.png": write_image(tmp_path / "instances16.png", ids.astype(np.uint16) * 1000),
        "palette.png": _palette_png(tmp_path / "palette.png", ids),
        "colour.png": write_image(
            tmp_path / "colour.png", np.dstack([ids * 0, ids * 0, expected * 200])
        ),
    }
    for name, path in cases.items():
        mask = load_mask(path)
        assert mask.dtype == np.uint8 and mask.shape == (H, W), name
        np.testing.assert_array_equal(mask, expected, err_msg=name)
    np.testing.assert_array_equal(load_mask(cases["palette.png"], binary=False), ids)
    np.testing.assert_array_equal(
        load_mask(write_image(tmp_path / "ids.png", ids), binary=False), ids
    )
    with pytest.raises(DataError, match="coloured RGB") as err:
        load_mask(cases["colour.png"], binary=False)
    assert "colour.png" in str(err.value)
    with pytest.raises(DataError, match="class id") as err:
        load_mask(cases["instances16.png"], binary=False)
    assert "instances16.png" in str(err.value)


# --- discovery and splits ---------------------------------------------------------------


def test_find_samples_labelme_layout(tmp_path):
    for stem in ("b", "a", "c"):
        labelme_pair(tmp_path, stem)
    write_image(tmp_path / "orphan.png", np.zeros((H, W, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    samples, problems = find_samples(tmp_path)
    assert [s.image.name for s in samples] == ["a.png", "b.png", "c.png"]
    assert all(
        s.kind == "labelme" and s.annotation == s.image.with_suffix(".json") for s in samples
    )
    assert [(p.name, "missing annotation" in why) for p, why in problems] == [("orphan.png", True)]
    with pytest.raises(DataError, match="missing annotation") as err:
        find_samples(tmp_path, on_missing="error")
    assert "orphan.png" in str(err.value)


def test_find_samples_separate_annotations_folder(tmp_path):
    write_image(tmp_path / "imgs" / "a.png", np.zeros((H, W, 3), np.uint8))
    write_json(tmp_path / "ann" / "a.json", labelme([shape(SQUARE)]))
    samples, problems = find_samples(tmp_path / "imgs", annotations=tmp_path / "ann")
    assert samples == [Sample(tmp_path / "imgs" / "a.png", tmp_path / "ann" / "a.json", "labelme")]
    assert problems == []


def test_find_samples_mask_layout_with_suffixes(tmp_path):
    mask = np.zeros((H, W), np.uint8)
    for stem, mask_name in [
        ("a", "a_mask.png"),
        ("b", "b.png"),
        ("c", "c_gt.bmp"),
        ("FudanPed00001", "FudanPed00001_mask.png"),
        ("d", None),
    ]:
        write_image(tmp_path / "images" / f"{stem}.png", np.zeros((H, W, 3), np.uint8))
        if mask_name:
            write_image(tmp_path / "masks" / mask_name, mask)
    samples, problems = find_samples(tmp_path)
    assert {s.image.stem: s.annotation.name for s in samples} == {
        "a": "a_mask.png",
        "b": "b.png",
        "c": "c_gt.bmp",
        "FudanPed00001": "FudanPed00001_mask.png",
    }
    assert all(s.kind == "mask" for s in samples)
    assert [p.name for p, _ in problems] == ["d.png"]


def test_find_samples_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images") as err:
        find_samples(tmp_path / "empty")
    assert "empty" in str(err.value)
    with pytest.raises(DataError, match="not found") as err:
        find_samples(tmp_path / "nowhere")
    assert "nowhere" in str(err.value)


def test_resolve_splits_uses_subfolders(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for i in range(count):
            labelme_pair(tmp_path / split, f"{split}{i}")
    splits, problems = resolve_splits(tmp_path)
    assert (len(splits["train"]), len(splits["val"]), splits.val_source, problems) == (
        3,
        2,
        "test/",
        [],
    )
    labelme_pair(tmp_path / "val", "v0")
    splits, _ = resolve_splits(tmp_path)
    assert splits.val_source == "val/" and [s.image.name for s in splits["val"]] == ["v0.png"]


def test_resolve_splits_single_folder_is_seeded(tmp_path):
    for i in range(10):
        labelme_pair(tmp_path, f"s{i}")
    first, _ = resolve_splits(tmp_path, val_fraction=0.2, seed=1)
    again, _ = resolve_splits(tmp_path, val_fraction=0.2, seed=1)
    assert first == again and len(first["val"]) == 2 and len(first["train"]) == 8
    names = {s.image.name for s in first["train"]} | {s.image.name for s in first["val"]}
    assert len(names) == 10
    others = [resolve_splits(tmp_path, seed=seed)[0]["val"] for seed in range(2, 6)]
    assert any(other != first["val"] for other in others)
    with pytest.raises(DataError, match="not found") as err:
        resolve_splits(tmp_path / "absent")
    assert "absent" in str(err.value)


# --- dataset ------------------------------------------------------------------------------


def _mixed_samples(folder: Path) -> list[Sample]:
    good = [labelme_pair(folder, f"good{i}") for i in range(3)]
    broken = labelme_pair(folder, "broken")
    broken.annotation.write_text("{oops")
    wrong_size = labelme_pair(folder, "wrong_size", size=(H + 4, W))
    write_json(wrong_size.annotation, labelme([shape(SQUARE)], H, W))
    image = write_image(folder / "masked.png", np.zeros((H, W, 3), np.uint8))
    mask = write_image(folder / "masked_mask.png", np.zeros((H + 1, W), np.uint8))
    return [*good, broken, wrong_size, Sample(image, mask, "mask")]


def test_dataset_skips_bad_samples_with_one_warning_each(tmp_path):
    samples = _mixed_samples(tmp_path)
    with pytest.warns(UserWarning) as record:
        dataset = SegmentationDataset(samples, build_transform("plain", 16, train=False))
    assert len(dataset) == 3 and len(dataset.skipped) == 3 and len(record) == 3
    assert [Path(f).name for f, _ in dataset.skipped] == [
        "broken.json",
        "wrong_size.json",
        "masked_mask.png",
    ]
    assert "invalid JSON" in dataset.skipped[0][1] and "imageHeight" in dataset.skipped[1][1]
    with pytest.raises(DataError, match="invalid JSON") as err:
        SegmentationDataset(
            samples, build_transform("plain", 16, train=False), on_bad_sample="error"
        )
    assert "broken.json" in str(err.value)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no usable samples"):
        SegmentationDataset(samples[3:], build_transform("plain", 16, train=False))


def test_dataset_items_and_cache(tmp_path):
    samples = [labelme_pair(tmp_path, f"s{i}") for i in range(2)]
    plain = build_transform("plain", (16, 20), train=False)
    cached = SegmentationDataset(samples, plain)
    uncached = SegmentationDataset(samples, plain, cache=False)
    image, mask = cached[1]
    assert image.shape == (3, 16, 20) and image.dtype == torch.float32
    assert (
        mask.shape == (16, 20)
        and mask.dtype == torch.int64
        and set(mask.unique().tolist()) == {0, 1}
    )
    expected = (90 / 255 - 0.485) / 0.229
    assert torch.allclose(image[0], torch.full((16, 20), expected), atol=1e-5)
    for a, b in zip(cached[0], uncached[0], strict=True):
        assert torch.equal(a, b)
    batch = next(iter(torch.utils.data.DataLoader(cached, batch_size=2)))
    assert batch[0].shape == (2, 3, 16, 20) and batch[1].shape == (2, 16, 20)


def test_dataset_multiclass_labelme(tmp_path):
    shapes = [shape(SQUARE, label="cat"), shape([[20, 20], [30, 30]], "rectangle", label="dog")]
    sample = labelme_pair(tmp_path, "pets", shapes)
    dataset = SegmentationDataset(
        [sample], build_transform("plain", (H, W), False), {"cat": 1, "dog": 2}
    )
    assert set(dataset[0][1].unique().tolist()) == {0, 1, 2}


# --- sample data ----------------------------------------------------------------------------


def test_sample_dataset_is_deterministic_idempotent_and_loads(tmp_path):
    root = make_sample_dataset(tmp_path / "a", n_train=4, n_test=2, size=48, seed=3)
    twin = make_sample_dataset(tmp_path / "b", n_train=4, n_test=2, size=48, seed=3)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert len(files) == 13  # 6 images, 6 JSON files, the marker
    assert all((root / f).read_bytes() == (twin / f).read_bytes() for f in files)
    other = make_sample_dataset(tmp_path / "c", n_train=4, n_test=2, size=48, seed=4)
    assert (root / files[-1]).read_bytes() != (other / files[-1]).read_bytes()
    stamp = (root / ".complete").stat().st_mtime_ns
    assert make_sample_dataset(root, n_train=4, n_test=2, size=48, seed=3) == root
    assert (root / ".complete").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temporary leftovers
    with pytest.raises(DataError, match="made with"):
        make_sample_dataset(root, n_train=5, n_test=2, size=48, seed=3)
    samples, problems = find_samples(root / "train")
    assert len(samples) == 4 and problems == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = SegmentationDataset(samples, build_transform("standard", 32, train=True))
    assert dataset.skipped == [] and dataset[0][0].shape == (3, 32, 32)


def test_sample_dataset_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(DataError, match="not a complete sample dataset") as err:
        make_sample_dataset(tmp_path / "mine", n_train=1, n_test=1, size=32)
    assert "mine" in str(err.value)


def test_sample_annotations_match_rendered_shapes(tmp_path):
    rendered, loaded = [], []
    for seed in range(30):
        image, shapes, truth = render_sample(np.random.default_rng(seed), 96)
        path = write_json(tmp_path / "s.json", labelme(shapes, 96, 96))
        rendered.append(truth > 0)
        loaded.append(load_labelme(path, image.shape[:2]) > 0)
        iou = (rendered[-1] & loaded[-1]).sum() / (rendered[-1] | loaded[-1]).sum()
        assert iou > 0.95, seed
    kinds = {
        s["shape_type"]
        for seed in range(30)
        for s in render_sample(np.random.default_rng(seed), 96)[1]
    }
    assert kinds == {"polygon", "rectangle", "circle"}


def test_default_sample_dir_follows_segkit_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path))
    assert default_sample_dir() == tmp_path / "sample-v1"
    monkeypatch.delenv("SEGKIT_CACHE")
    assert default_sample_dir() == Path.home() / ".cache" / "segkit" / "sample-v1"


@pytest.mark.dataset
def test_butterfly_test_images_load_without_skips(butterfly):
    splits, problems = resolve_splits(butterfly)
    assert splits.val_source == "test/" and problems == []
    assert len(splits["val"]) == 100
    dataset = SegmentationDataset(splits["val"], build_transform("plain", 64, train=False))
    assert len(dataset) == 100 and dataset.skipped == []
    assert all(dataset[i][1].any() for i in range(len(dataset)))
