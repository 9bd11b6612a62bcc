"""Folder pairs: images in one folder, masks in another, matched by file stem.

A mask belongs to an image when its stem is the image's stem plus one of `MASK_SUFFIXES`
(`FudanPed00001.png` / `FudanPed00001_mask.png`), in any of the image formats (PNG masks are
exact; JPEG masks are thresholded, see `trainer.data.masks`). The folders may have any names:
`images/` + `masks/` inside a dataset folder are found on their own; any other pair is given
with `--images DIR --masks DIR`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runtime.errors import DataError
from runtime.images import IMAGE_EXTENSIONS, is_image_file

MASK_SUFFIXES = ("", "_mask", "_masks", "-mask", "_label", "_gt", "_seg")
MASK_FOLDER_HINTS = ("mask", "label", "annot", "gt", "seg", "truth")


def image_files(folder: Path) -> list[tuple[Path, list[str]]]:
    """Sorted images of `folder`, each with the names of other images sharing its stem."""
    if not folder.is_dir():
        raise DataError(folder, "image folder not found")
    images = sorted((p for p in folder.iterdir() if is_image_file(p) and p.is_file()), key=str)
    if not images:
        raise DataError(folder, f"no images ({' '.join(IMAGE_EXTENSIONS)}) in this folder")
    by_stem: dict[str, list[Path]] = {}
    for image in images:
        by_stem.setdefault(image.stem, []).append(image)
    return [(p, [q.name for q in by_stem[p.stem] if q != p]) for p in images]


def mask_pairer(masks_dir: Path) -> Callable[[Path], Path | str]:
    """A function: image path -> its mask path, or the reason it has none."""
    if not masks_dir.is_dir():
        raise DataError(masks_dir, "mask folder not found")
    masks: dict[str, list[Path]] = {}
    for path in sorted(masks_dir.iterdir(), key=str):
        if is_image_file(path) and path.is_file():
            masks.setdefault(path.stem, []).append(path)

    def pair(image: Path) -> Path | str:
        found = [m for suffix in MASK_SUFFIXES for m in masks.get(image.stem + suffix, [])]
        if not found:
            return f"missing annotation (no mask named {image.stem}[suffix].<ext> in {masks_dir})"
        if len(found) > 1:
            return f"several masks match: {', '.join(m.name for m in found)}"
        return found[0]

    return pair


def guess_pair(folder: Path) -> tuple[Path, Path] | None:
    """Two subfolders of `folder` that look like images + masks (the masks one named like
    masks, labels or ground truth), or None."""
    with_images = [
        d
        for d in sorted(folder.iterdir())
        if d.is_dir() and any(is_image_file(p) for p in d.iterdir())
    ]
    masks = [d for d in with_images if any(h in d.name.lower() for h in MASK_FOLDER_HINTS)]
    images = [d for d in with_images if d not in masks]
    if len(masks) == 1 and len(images) == 1:
        return images[0], masks[0]
    return None
