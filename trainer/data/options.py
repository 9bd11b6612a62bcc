"""The data options as one click decorator, shared by every command that reads a dataset.

`@dataset_options()` adds --data, --annotations, --images, --masks, --val-images,
--val-masks, --coco, --resize-masks and --ignore-index; `DataSource.from_options(kwargs)`
collects their values (see `trainer.data.source`), and `pop_source(kwargs)` also removes
them from a command's keyword arguments. Torch-free, so `--help` stays instant.
"""

from __future__ import annotations

import click

FOLDER = click.Path(file_okay=False)


def dataset_options(sample_default: bool = False):
    """The data options; `sample_default`: without any, the command uses the built-in sample."""
    fallback = " [default: built-in generated sample data]" if sample_default else ""
    options = [
        click.option(
            "--data",
            type=FOLDER,
            default=None,
            help="Dataset folder: labelme (image + same-stem .json), images/ + masks/, "
            "Pascal VOC (VOC2012/ or VOCdevkit/), COCO (annotations/instances_*.json); "
            "optionally in train/ + test/ (or val/) subfolders, else split by --seed." + fallback,
        ),
        click.option(
            "--annotations",
            type=FOLDER,
            default=None,
            help="Folder holding the labelme .json files when they are not beside the images.",
        ),
        click.option("--images", type=FOLDER, default=None, help="Image folder of any name."),
        click.option(
            "--masks",
            type=FOLDER,
            default=None,
            help="Mask folder for --images, matched by stem (a.png / a_mask.png; PNG or JPEG).",
        ),
        click.option("--val-images", type=FOLDER, default=None, help="Validation images."),
        click.option("--val-masks", type=FOLDER, default=None, help="Validation masks."),
        click.option(
            "--coco",
            type=click.Path(dir_okay=False),
            default=None,
            help="COCO instances JSON file, with --images DIR for its images.",
        ),
        click.option(
            "--resize-masks",
            is_flag=True,
            default=None,
            help="Scale masks stored at another scale than their images (same aspect ratio).",
        ),
        click.option(
            "--ignore-index",
            type=click.IntRange(0, 255),
            default=None,
            help="Mask value to ignore in the loss and every metric (Pascal VOC: 255 always).",
        ),
    ]

    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def pop_source(options: dict):
    """The data options of a command's `options` as a `DataSource`, removed from `options`."""
    import dataclasses

    from trainer.config import DataSource

    source = DataSource.from_options(options)
    for field in dataclasses.fields(DataSource):
        options.pop(field.name, None)
    return source
