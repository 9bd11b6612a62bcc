"""COCO instance annotations, read from their own layout (pycocotools rasterizes them).

    DATASET/annotations/instances_train2017.json    one file per split
            annotations/instances_val2017.json
            train2017/000000000009.jpg              the image folder each file names
            val2017/...

A split named like `train*` trains, one named `val*` (else `test*`) validates; with a single
file the images are split at random. `--coco FILE.json --images DIR` reads one file whose
images lie in DIR. Every object's segmentation is drawn: polygons, RLE and uncompressed RLE,
crowd regions included. Category names map to classes as labelme labels do: any object is
foreground unless `--classes a,b` names the categories to train (ids 1, 2, ...); objects of
other categories are then background. Objects are drawn in file order, later ones on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import ArgumentError, DataError
from trainer.data.discover import Problem, Sample, Splits, random_split, sorted_samples

LAYOUT = "COCO"
PREFIX = "instances_"


@dataclass(frozen=True)
class CocoImage:
    """What a sample needs of its COCO file: the stated size and its objects, in order."""

    height: int
    width: int
    objects: tuple[tuple[str, Any], ...]  # (category name, segmentation)
    categories: tuple[str, ...]  # every category name of the file


def annotation_files(folder: Path) -> list[Path]:
    """`folder/annotations/instances_*.json`, sorted."""
    return sorted((folder / "annotations").glob(f"{PREFIX}*.json"))


def find_coco(folder: Path, val_fraction: float, seed: int) -> tuple[Splits, list[Problem]]:
    """The splits of a COCO dataset folder (see the module docstring)."""
    files = {path.stem[len(PREFIX) :]: path for path in annotation_files(folder)}
    train = [name for name in files if name.startswith("train")]
    val = [name for name in files if name.startswith("val")] or [
        name for name in files if name.startswith("test")
    ]
    if train and val:
        train_samples, train_problems = read_coco(files[train[0]], _image_folder(folder, train[0]))
        val_samples, val_problems = read_coco(files[val[0]], _image_folder(folder, val[0]))
        source = f"{files[val[0]].name}"
        return Splits.of(train_samples, val_samples, source, LAYOUT), train_problems + val_problems
    if len(files) != 1:
        raise DataError(
            folder / "annotations",
            f"found {', '.join(p.name for p in files.values())}: expected one instances_train* "
            "and one instances_val* (or instances_test*) file, or a single file to split",
        )
    ((name, path),) = files.items()
    samples, problems = read_coco(path, _image_folder(folder, name))
    train_samples, val_samples, source = random_split(samples, val_fraction, seed, folder)
    return Splits.of(train_samples, val_samples, source, LAYOUT), problems


def read_coco(json_path: Path, images: Path) -> tuple[list[Sample], list[Problem]]:
    """One sample per image of the file that lies in `images`; the others as problems."""
    doc = _read_json(json_path)
    try:
        names = {int(c["id"]): str(c["name"]) for c in doc.get("categories", [])}
        objects: dict[int, list[tuple[str, Any]]] = {}
        for ann in doc.get("annotations", []):
            name = names.get(int(ann["category_id"]), str(ann["category_id"]))
            objects.setdefault(int(ann["image_id"]), []).append((name, ann["segmentation"]))
        entries = [
            (int(i["id"]), str(i["file_name"]), int(i["height"]), int(i["width"]))
            for i in doc["images"]
        ]
    except (KeyError, TypeError, ValueError) as err:
        problem = f"not a COCO instances file ({type(err).__name__}: {err})"
        raise DataError(json_path, problem) from None
    categories = tuple(names.values())
    samples, problems = [], []
    for image_id, file_name, height, width in entries:
        image = images / file_name
        if not image.is_file():
            problems.append((image, f"listed in {json_path.name} but not found"))
            continue
        info = CocoImage(height, width, tuple(objects.get(image_id, [])), categories)
        samples.append(Sample(image, json_path, "coco", extra=info))
    return sorted_samples(samples), problems


def read_coco_mask(
    sample: Sample, image_shape: tuple[int, int], class_map: dict[str, int] | None
) -> np.ndarray:
    """The sample's HxW uint8 class ids (see the module docstring)."""
    from pycocotools import mask as mask_utils

    info: CocoImage = sample.extra
    if (info.height, info.width) != tuple(image_shape):
        raise DataError(
            sample.image,
            f"{sample.annotation.name} states {info.height}x{info.width} but the image is "
            f"{image_shape[0]}x{image_shape[1]}",
        )
    if class_map is not None:
        unknown = [name for name in class_map if name not in info.categories]
        if unknown:
            raise ArgumentError(
                "--classes",
                f"{', '.join(unknown)} not among the categories of {sample.annotation} "
                f"({', '.join(info.categories)})",
            )
    mask = np.zeros((info.height, info.width), np.uint8)
    for name, segmentation in info.objects:
        value = 1 if class_map is None else class_map.get(name, 0)
        if value == 0:
            continue
        try:
            rle = _rle(mask_utils, segmentation, info.height, info.width)
            drawn = mask_utils.decode(rle)
        except (TypeError, ValueError, KeyError, IndexError) as err:
            raise DataError(
                sample.annotation, f"bad segmentation of {sample.image.name}: {err}"
            ) from None
        if drawn.ndim == 3:
            drawn = drawn.max(axis=2)
        mask[drawn > 0] = value
    return mask


def _rle(mask_utils, segmentation: Any, height: int, width: int) -> dict:
    """One RLE of a COCO segmentation: polygons, uncompressed RLE or compressed RLE."""
    if isinstance(segmentation, list):  # polygons [[x1, y1, x2, y2, ...], ...]
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return mask_utils.encode(np.zeros((height, width, 1), np.uint8, order="F"))[0]
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    counts = segmentation["counts"]
    if isinstance(counts, list):  # uncompressed RLE (crowd regions)
        return mask_utils.frPyObjects(segmentation, height, width)
    return {
        "size": segmentation["size"],
        "counts": counts.encode() if isinstance(counts, str) else counts,
    }


def _image_folder(folder: Path, split: str) -> Path:
    for candidate in (folder / split, folder / "images" / split, folder / "images"):
        if candidate.is_dir():
            return candidate
    raise DataError(folder / split, f"image folder of split {split!r} not found")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(path, "COCO annotation file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, f"not a readable JSON file ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataError(path, "not a COCO instances file (no 'images' list)")
    return doc
