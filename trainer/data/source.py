"""Where a dataset is and how to read it: the data options, in one record, and their splits.

`DataSource` holds the data options that `segtrain fit`, `segtrain evaluate`, `segtrain plot`
and `segexport evaluate` share (`trainer.data.options.dataset_options` adds them to a click
command); `resolve_source` turns them into train and validation samples:

- `--data DIR`: a dataset folder in any layout `trainer.data.discover` recognizes;
- `--images DIR --masks DIR` (and `--val-images DIR --val-masks DIR`): any pair of folders,
  matched by stem; without a validation pair the samples are split at random;
- `--coco FILE.json --images DIR`: one COCO instances file, split at random.
`--resize-masks` and `--ignore-index` apply to mask folders.
"""

from __future__ import annotations

from pathlib import Path

from runtime.errors import ArgumentError
from trainer.config import DataSource
from trainer.data.discover import (
    Problem,
    Splits,
    check_split_options,
    pair_folders,
    random_split,
    resolve_splits,
)

FOLDER_PAIRS = "folder pairs"

__all__ = ["DataSource", "resolve_source"]


def resolve_source(
    source: DataSource, val_fraction: float = 0.2, seed: int = 0, on_missing: str = "skip"
) -> tuple[Splits, list[Problem]]:
    """Train and validation samples of `source`, and the problems found on the way."""
    check_split_options(val_fraction, on_missing)
    _check_combination(source)
    mask_options = {"ignore_index": source.ignore_index, "resize_masks": source.resize_masks}
    if source.coco is not None:
        from trainer.data.coco import LAYOUT, read_coco

        samples, problems = read_coco(Path(source.coco), Path(source.images))
        train, val, described = random_split(samples, val_fraction, seed, Path(source.images))
        return Splits.of(train, val, described, LAYOUT), problems
    if source.images is not None:
        samples, problems = pair_folders(
            Path(source.images), Path(source.masks), on_missing, **mask_options
        )
        if source.val_images is None:
            train, val, described = random_split(samples, val_fraction, seed, Path(source.images))
            return Splits.of(train, val, described, FOLDER_PAIRS), problems
        val, val_problems = pair_folders(
            Path(source.val_images), Path(source.val_masks), on_missing, **mask_options
        )
        described = f"{Path(source.val_images).name}/ + {Path(source.val_masks).name}/"
        return Splits.of(samples, val, described, FOLDER_PAIRS), problems + val_problems
    return resolve_splits(
        source.data, val_fraction, seed, source.annotations, on_missing, **mask_options
    )


def _check_combination(source: DataSource) -> None:
    def refuse(subject: str, problem: str) -> None:
        raise ArgumentError(subject, problem)

    if source.data is not None and (source.images or source.coco):
        refuse("--data", "give either --data DIR or --images/--masks (or --coco), not both")
    if source.coco is not None and source.images is None:
        refuse("--coco", "needs --images DIR, the folder of the images the file names")
    if source.coco is not None and (source.masks or source.val_images):
        refuse("--coco", "takes --images only (its masks are in the file)")
    if source.coco is None and (source.images is None) != (source.masks is None):
        refuse("--images/--masks", "give both --images DIR and --masks DIR")
    if (source.val_images is None) != (source.val_masks is None):
        refuse("--val-images/--val-masks", "give both --val-images DIR and --val-masks DIR")
    if source.val_images is not None and source.images is None:
        refuse("--val-images", "needs --images and --masks for the training pairs")
    if source.data is None and source.images is None and source.coco is None:
        refuse("--data", "give a dataset: --data DIR, --images DIR --masks DIR, or --coco FILE")
    if source.ignore_index is not None and not 0 <= source.ignore_index <= 255:
        refuse("--ignore-index", f"expected a mask value 0..255, got {source.ignore_index}")
