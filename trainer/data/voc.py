"""Pascal VOC segmentation, read from its own layout.

    VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg
                     SegmentationClass/2007_000032.png     palette PNG of class ids
                     ImageSets/Segmentation/train.txt      one image id per line (val.txt too)

`--data` may be the `VOC2012/` (or any `VOC*/`) folder or its parent `VOCdevkit/`. The split
files give the training and validation images; without them the images are split at random.
Class ids are the palette indices (0 background, 1-20 the VOC classes); 255 marks the "void"
outlines and hard pixels, which are ignored: left out of the loss and every metric, never
foreground. Binary training (no `--classes`) makes every VOC class foreground; `--classes
person,dog` trains those classes (ids 1, 2) and makes the other VOC classes background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.errors import ArgumentError, DataError
from trainer.config import IGNORE_INDEX
from trainer.data.discover import Problem, Sample, Splits, random_split, sorted_samples
from trainer.data.masks import load_mask

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOID = 255
LAYOUT = "Pascal VOC"


def voc_root(folder: Path) -> Path | None:
    """The VOC folder (with JPEGImages/ and SegmentationClass/) at or just below `folder`."""
    candidates = [folder, *sorted(p for p in folder.glob("VOC*") if p.is_dir())]
    for candidate in candidates:
        if (candidate / "JPEGImages").is_dir() and (candidate / "SegmentationClass").is_dir():
            return candidate
    return None


def find_voc(root: Path, val_fraction: float, seed: int) -> tuple[Splits, list[Problem]]:
    """The splits of the VOC folder `root`: from ImageSets/Segmentation, else at random."""
    masks = root / "SegmentationClass"
    images = {p.stem: p for p in (root / "JPEGImages").iterdir() if p.is_file()}
    sets = root / "ImageSets" / "Segmentation"
    problems: list[Problem] = []

    def samples(ids: list[str], listed_in: Path | None) -> list[Sample]:
        found = []
        for stem in ids:
            mask = masks / f"{stem}.png"
            if stem not in images or not mask.is_file():
                where = f" (listed in {listed_in.name})" if listed_in else ""
                missing = "image" if stem not in images else "SegmentationClass mask"
                problems.append((root / stem, f"missing {missing}{where}"))
                continue
            found.append(Sample(images[stem], mask, "voc", ignore_index=VOID))
        return found

    if (sets / "train.txt").is_file() and (sets / "val.txt").is_file():
        train = samples(_ids(sets / "train.txt"), sets / "train.txt")
        val = samples(_ids(sets / "val.txt"), sets / "val.txt")
        return Splits.of(train, val, "ImageSets/Segmentation/val.txt", LAYOUT), problems
    annotated = sorted(p.stem for p in masks.glob("*.png"))
    if not annotated:
        raise DataError(masks, "no .png masks in this folder")
    everything = samples(annotated, None)
    train, val, source = random_split(sorted_samples(everything), val_fraction, seed, root)
    return Splits.of(train, val, source, LAYOUT), problems


def read_voc_mask(
    sample: Sample, image_shape: tuple[int, int], class_map: dict[str, int] | None
) -> np.ndarray:
    """The sample's class ids for training: see the module docstring."""
    ids = load_mask(sample.annotation, binary=False)
    void = ids == VOID
    if class_map is None:
        mask = (ids > 0).astype(np.uint8)
    else:
        mask = np.zeros_like(ids)
        for name, class_id in class_map.items():
            mask[ids == voc_class_id(name)] = class_id
    mask[void] = IGNORE_INDEX
    return mask


def voc_class_id(name: str) -> int:
    """The VOC palette index of class `name`; ArgumentError for a name VOC does not have."""
    if name not in VOC_CLASSES[1:]:
        raise ArgumentError(
            "--classes",
            f"{name!r} is not a Pascal VOC class; they are {', '.join(VOC_CLASSES[1:])}",
        )
    return VOC_CLASSES.index(name)


def _ids(path: Path) -> list[str]:
    return [line.strip().split()[0] for line in path.read_text().splitlines() if line.strip()]
