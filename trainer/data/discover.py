"""Finding (image, annotation) samples and the train/val splits of a dataset, in every layout.

Layouts of a `--data` folder, tried in this order:
- Pascal VOC: `VOC2012/` (or its parent `VOCdevkit/`), see `trainer.data.voc`;
- COCO: `annotations/instances_<split>.json` with the image folders they name, see
  `trainer.data.coco`;
- labelme: images with a same-stem `.json` beside them, or in a separate `annotations`
  folder (looked up there first);
- mask folders: `images/` and `masks/` inside the folder, matched by stem (see
  `trainer.data.pairs`).
The last two may sit in `train/` and `val/` (or `test/`) subfolders. Any other pair of
folders is given explicitly (`DataSource`, `--images DIR --masks DIR`), as is a COCO file
(`--coco FILE.json --images DIR`).

When a folder matches no layout, the error lists the layouts looked for and what the folder
holds, with the options to use when that can be guessed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from runtime.errors import ArgumentError, DataError
from runtime.images import is_image_file
from trainer.data.pairs import MASK_SUFFIXES, guess_pair, image_files, mask_pairer

MISSING_MODES = ("skip", "error")
VAL_FOLDERS = ("val", "test")  # preferred order for the validation split
LAYOUTS_LOOKED_FOR = (
    "labelme (images with same-stem .json files)",
    "images/ + masks/ folders",
    "Pascal VOC (JPEGImages/ + SegmentationClass/)",
    "COCO (annotations/instances_*.json)",
    "train/ + val/ (or test/) subfolders of those",
)

Problem = tuple[Path, str]
Kind = Literal["labelme", "mask", "voc", "coco"]

__all__ = ["MASK_SUFFIXES", "Sample", "Splits", "find_samples", "resolve_splits"]


@dataclass
class Sample:
    """One training pair: an image and where its mask comes from.

    `kind` names the reader (`trainer.data.dataset.MASK_READERS`). `ignore_index` is the
    stored mask value that marks pixels to leave out of training and scoring (None: none);
    `resize_mask` lets a mask at another scale than its image (same aspect ratio) be resized
    to it; `extra` holds what a layout needs besides the file (COCO: the image's objects).
    """

    image: Path
    annotation: Path
    kind: Kind
    ignore_index: int | None = None
    resize_mask: bool = False
    extra: Any = None


class Splits(dict):
    """{"train": [...], "val": [...]}; `val_source` says where the validation samples came from
    and `layout` which layout the dataset has."""

    val_source: str = ""
    layout: str = ""

    @classmethod
    def of(cls, train: list[Sample], val: list[Sample], val_source: str, layout: str) -> Splits:
        splits = cls(train=train, val=val)
        splits.val_source, splits.layout = val_source, layout
        return splits


def layout_of(samples: list[Sample]) -> str:
    kinds = {s.kind for s in samples}
    names = {"labelme": "labelme", "mask": "mask folders", "voc": "Pascal VOC", "coco": "COCO"}
    return " + ".join(names[k] for k in sorted(kinds)) or "empty"


def find_samples(
    folder: str | Path,
    annotations: str | Path | None = None,
    on_missing: str = "skip",
    *,
    ignore_index: int | None = None,
    resize_masks: bool = False,
) -> tuple[list[Sample], list[Problem]]:
    """The labelme or mask-folder samples in `folder` in sorted order, and the images that
    could not be paired.

    `annotations` is a folder of labelme JSON files (labelme layout only). With
    on_missing="error" an unpaired image raises DataError instead of being reported.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "dataset folder not found")
    if annotations is not None and not Path(annotations).is_dir():
        raise DataError(Path(annotations), "annotations folder not found")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return pair_folders(
            folder / "images", folder / "masks", on_missing,
            ignore_index=ignore_index, resize_masks=resize_masks,
        )  # fmt: skip
    if not any(is_image_file(p) for p in folder.iterdir()):
        raise DataError(folder, no_layout_problem(folder))
    pair = _labelme_pairer(folder, annotations)
    return _pair_all(image_files(folder), pair, on_missing)


def pair_folders(
    images: Path,
    masks: Path,
    on_missing: str = "skip",
    *,
    ignore_index: int | None = None,
    resize_masks: bool = False,
) -> tuple[list[Sample], list[Problem]]:
    """The samples of an image folder and a mask folder matched by stem."""
    find_mask = mask_pairer(Path(masks))

    def pair(image: Path) -> Sample | str:
        mask = find_mask(image)
        if isinstance(mask, str):
            return mask
        return Sample(image, mask, "mask", ignore_index=ignore_index, resize_mask=resize_masks)

    return _pair_all(image_files(Path(images)), pair, on_missing)


def resolve_splits(
    data_dir: str | Path,
    val_fraction: float = 0.2,
    seed: int = 0,
    annotations: str | Path | None = None,
    on_missing: str = "skip",
    *,
    ignore_index: int | None = None,
    resize_masks: bool = False,
) -> tuple[Splits, list[Problem]]:
    """Train and validation samples of a dataset folder, and the problems found on the way.

    VOC and COCO folders use their own split files; a folder with `train/` and `val/` or
    `test/` subfolders uses them (val/ first); any other folder (or a lone `train/`) is split:
    a random.Random(seed) shuffle of the sorted samples, `val_fraction` of them (at least one)
    for validation.
    """
    check_split_options(val_fraction, on_missing)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "dataset folder not found")
    from trainer.data import coco, voc  # they build on this module

    root = voc.voc_root(data_dir)
    if root is not None:
        return voc.find_voc(root, val_fraction, seed)
    if coco.annotation_files(data_dir):
        return coco.find_coco(data_dir, val_fraction, seed)
    options = {"ignore_index": ignore_index, "resize_masks": resize_masks}
    train_dir = data_dir / "train"
    val_dir = next((data_dir / n for n in VAL_FOLDERS if (data_dir / n).is_dir()), None)
    if train_dir.is_dir() and val_dir is not None:
        train, train_problems = find_samples(
            train_dir, _sub(annotations, "train"), on_missing, **options
        )
        val, val_problems = find_samples(
            val_dir, _sub(annotations, val_dir.name), on_missing, **options
        )
        splits = Splits.of(train, val, f"{val_dir.name}/", layout_of(train + val))
        return splits, train_problems + val_problems
    folder = train_dir if train_dir.is_dir() else data_dir
    samples, problems = find_samples(folder, annotations, on_missing, **options)
    train, val, source = random_split(samples, val_fraction, seed, folder)
    return Splits.of(train, val, source, layout_of(samples)), problems


def random_split(
    samples: list[Sample], val_fraction: float, seed: int, folder: Path
) -> tuple[list[Sample], list[Sample], str]:
    """(train, val, description): a seeded shuffle, `val_fraction` (at least one) for val."""
    if len(samples) < 2:
        raise DataError(folder, f"{len(samples)} usable sample(s); at least 2 are needed to split")
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)
    n_val = min(max(1, round(len(shuffled) * val_fraction)), len(shuffled) - 1)
    source = f"random {n_val} of {len(shuffled)} in {folder.name}/ (seed {seed})"
    return sorted_samples(shuffled[n_val:]), sorted_samples(shuffled[:n_val]), source


def check_split_options(val_fraction: float, on_missing: str) -> None:
    if not 0 < val_fraction < 1:
        raise ArgumentError(
            "--val-fraction", f"expected a number between 0 and 1, got {val_fraction!r}"
        )
    if on_missing not in MISSING_MODES:
        raise ValueError(f"on_missing: expected one of {MISSING_MODES}, got {on_missing!r}")


def sorted_samples(samples: list[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: str(s.image))


def no_layout_problem(folder: Path) -> str:
    """Why `folder` is no dataset: the layouts looked for, what it holds, what to pass."""
    subfolders = sorted(p.name + "/" for p in folder.iterdir() if p.is_dir())
    held = f"found {', '.join(subfolders)}" if subfolders else "found no images and no subfolders"
    guess = guess_pair(folder)
    if guess is not None:
        images, masks = guess
        held = (
            f"found {images.name}/ and {masks.name}/: pass "
            f"--images {folder / images.name} --masks {folder / masks.name}"
        )
    return f"no images in this folder and no known layout ({held}); looked for " + "; ".join(
        LAYOUTS_LOOKED_FOR
    )


def _pair_all(images, pair, on_missing: str) -> tuple[list[Sample], list[Problem]]:
    check_split_options(0.5, on_missing)
    samples, problems = [], []
    for image, duplicates in images:
        if duplicates:
            problems.append((image, f"several images share its stem ({', '.join(duplicates)})"))
            continue
        found = pair(image)
        if isinstance(found, Sample):
            samples.append(found)
        else:
            problems.append((image, found))
    if on_missing == "error" and problems:
        raise DataError(*problems[0])
    return samples, problems


def _sub(annotations: str | Path | None, split: str) -> Path | None:
    """The split's own subfolder of `annotations` when there is one, else `annotations`."""
    if annotations is None:
        return None
    sub = Path(annotations) / split
    return sub if sub.is_dir() else Path(annotations)


def _labelme_pairer(folder: Path, annotations: str | Path | None):
    places = ([Path(annotations)] if annotations is not None else []) + [folder]

    def pair(image: Path) -> Sample | str:
        for place in places:
            candidate = place / f"{image.stem}.json"
            if candidate.is_file():
                return Sample(image, candidate, "labelme")
        where = " or ".join(str(p) for p in places)
        return f"missing annotation ({image.stem}.json not in {where})"

    return pair
