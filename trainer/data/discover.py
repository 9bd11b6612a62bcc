"""Finding (image, annotation) pairs in a folder, and the train/val splits of a dataset folder.

Layouts:
- labelme: images with a same-stem `.json` beside them, or in a separate `annotations`
  folder (looked up there first).
- mask folders: `folder/images/` and `folder/masks/`, matched by stem, the mask's stem
  being the image's stem plus one of MASK_SUFFIXES (`a.png` / `a_mask.png`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runtime.errors import ArgumentError, DataError
from runtime.images import IMAGE_EXTENSIONS, is_image_file

MASK_SUFFIXES = ("", "_mask", "_masks", "-mask", "_label", "_gt", "_seg")
MISSING_MODES = ("skip", "error")
VAL_FOLDERS = ("val", "test")  # preferred order for the validation split

Problem = tuple[Path, str]


@dataclass
class Sample:
    """One training pair: an image and its labelme JSON or mask image."""

    image: Path
    annotation: Path
    kind: Literal["labelme", "mask"]


class Splits(dict):
    """{"train": [...], "val": [...]}; `val_source` says where the validation samples came from."""

    val_source: str = ""


def _splits(train: list[Sample], val: list[Sample], val_source: str) -> Splits:
    splits = Splits(train=train, val=val)
    splits.val_source = val_source
    return splits


def find_samples(
    folder: str | Path,
    annotations: str | Path | None = None,
    on_missing: str = "skip",
) -> tuple[list[Sample], list[Problem]]:
    """The samples in `folder` in sorted order, and the images that could not be paired.

    `annotations` is a folder of labelme JSON files (labelme layout only). With
    on_missing="error" an unpaired image raises DataError instead of being reported.
    """
    if on_missing not in MISSING_MODES:
        raise ValueError(f"on_missing: expected one of {MISSING_MODES}, got {on_missing!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "dataset folder not found")
    if annotations is not None and not Path(annotations).is_dir():
        raise DataError(Path(annotations), "annotations folder not found")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        images, pair = _images(folder / "images"), _mask_pairer(folder / "masks")
    else:
        images, pair = _images(folder), _labelme_pairer(folder, annotations)
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


def resolve_splits(
    data_dir: str | Path,
    val_fraction: float = 0.2,
    seed: int = 0,
    annotations: str | Path | None = None,
    on_missing: str = "skip",
) -> tuple[Splits, list[Problem]]:
    """Train and validation samples of a dataset folder, and the problems found on the way.

    A folder with `train/` and `val/` or `test/` subfolders uses them (val/ first); any other
    folder (or a lone `train/`) is split: a random.Random(seed) shuffle of the sorted samples,
    `val_fraction` of them (at least one) for validation.
    """
    if not 0 < val_fraction < 1:
        raise ArgumentError(
            "--val-fraction", f"expected a number between 0 and 1, got {val_fraction!r}"
        )
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "dataset folder not found")
    train_dir = data_dir / "train"
    val_dir = next((data_dir / n for n in VAL_FOLDERS if (data_dir / n).is_dir()), None)
    if train_dir.is_dir() and val_dir is not None:
        train, train_problems = find_samples(train_dir, _sub(annotations, "train"), on_missing)
        val, val_problems = find_samples(val_dir, _sub(annotations, val_dir.name), on_missing)
        return _splits(train, val, f"{val_dir.name}/"), train_problems + val_problems
    folder = train_dir if train_dir.is_dir() else data_dir
    samples, problems = find_samples(folder, annotations, on_missing)
    if len(samples) < 2:
        raise DataError(folder, f"{len(samples)} usable sample(s); at least 2 are needed to split")
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)
    n_val = min(max(1, round(len(shuffled) * val_fraction)), len(shuffled) - 1)
    source = f"random {n_val} of {len(shuffled)} in {folder.name}/ (seed {seed})"
    return _splits(
        sorted_samples(shuffled[n_val:]), sorted_samples(shuffled[:n_val]), source
    ), problems


def sorted_samples(samples: list[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: str(s.image))


def _sub(annotations: str | Path | None, split: str) -> Path | None:
    """The split's own subfolder of `annotations` when there is one, else `annotations`."""
    if annotations is None:
        return None
    sub = Path(annotations) / split
    return sub if sub.is_dir() else Path(annotations)


def _images(folder: Path) -> list[tuple[Path, list[str]]]:
    """Sorted images of `folder`, each with the names of other images sharing its stem."""
    images = sorted((p for p in folder.iterdir() if is_image_file(p) and p.is_file()), key=str)
    if not images:
        raise DataError(folder, f"no images ({' '.join(IMAGE_EXTENSIONS)}) in this folder")
    by_stem: dict[str, list[Path]] = {}
    for image in images:
        by_stem.setdefault(image.stem, []).append(image)
    return [(p, [q.name for q in by_stem[p.stem] if q != p]) for p in images]


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


def _mask_pairer(masks_dir: Path):
    masks: dict[str, list[Path]] = {}
    for path in sorted(masks_dir.iterdir(), key=str):
        if is_image_file(path) and path.is_file():
            masks.setdefault(path.stem, []).append(path)

    def pair(image: Path) -> Sample | str:
        found = [m for suffix in MASK_SUFFIXES for m in masks.get(image.stem + suffix, [])]
        if not found:
            return f"missing annotation (no mask named {image.stem}[suffix].<ext> in {masks_dir})"
        if len(found) > 1:
            return f"several masks match: {', '.join(m.name for m in found)}"
        return Sample(image, found[0], "mask")

    return pair
