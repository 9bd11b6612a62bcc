"""`segpredict MODEL IMAGES... --out DIR`: masks (PNG), overlays and labelme JSON for images.

IMAGES are files or folders (searched recursively for .jpg .jpeg .png .bmp .tif .tiff).
For each image it writes `DIR/<name>.png`, the mask (0/255 for binary models so it is
visible, class ids for multi-class ones), with `--overlay` `DIR/<name>_overlay.jpg`, and with
`--polygons` `DIR/<name>.json` (labelme; its imagePath points back at the image). `<name>` is
the image's path inside a folder argument (so same-named files in subfolders do not clash)
or its stem for a file argument.

Exit codes: 0 when every image was written; 1 when some could not be read or written (the
others are written, the failures listed at the end); 2 for bad arguments (unknown backend,
missing model or image path, a model without segkit metadata, clashing output names).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np
from tqdm import tqdm

from runtime.backends import BACKENDS, DEVICES
from runtime.cli_errors import SegkitCommand
from runtime.errors import EXIT_FAILED, ArgumentError, SegkitError
from runtime.images import is_image_file, read_image
from runtime.io import atomic_write, atomic_write_text
from runtime.overlay import overlay
from runtime.polygons import mask_to_labelme
from runtime.segmenter import Segmenter


@dataclass(frozen=True)
class Job:
    """One image and where its outputs go (`stem` is `DIR/<name>` without a suffix)."""

    image: Path
    stem: Path

    def output(self, suffix: str) -> Path:
        return self.stem.with_name(self.stem.name + suffix)


def collect_jobs(inputs: list[Path], out: Path) -> list[Job]:
    """The images named by `inputs` (files, or folders searched recursively), in order."""
    jobs = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and is_image_file(p))
            if not found:
                raise ArgumentError(item, "no images (.jpg .jpeg .png .bmp .tif .tiff) in folder")
            jobs += [Job(p, out / p.relative_to(item).with_suffix("")) for p in found]
        elif item.is_file():
            jobs.append(Job(item, out / item.stem))
        else:
            raise ArgumentError(item, "no such file or folder")
    return jobs


def check_outputs(jobs: list[Job]) -> None:
    """Refuse output names used twice and masks that would overwrite an input image."""
    owners: dict[Path, Path] = {}
    inputs = {job.image.resolve() for job in jobs}
    for job in jobs:
        mask = job.output(".png").resolve()
        if mask in owners:
            raise ArgumentError(
                job.image, f"its outputs would overwrite those of {owners[mask]} ({mask.name})"
            )
        if mask in inputs:
            raise ArgumentError(mask, "a mask would overwrite this input image; use another --out")
        owners[mask] = job.image


@click.command(cls=SegkitCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--overlay", "write_overlay", is_flag=True, help="Also write <name>_overlay.jpg.")
@click.option("--polygons", is_flag=True, help="Also write labelme polygons as <name>.json.")
@click.option(
    "--threshold", type=click.FloatRange(0, 1), help="Mask threshold [default: the model's]."
)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--backend", default="auto", show_default=True, type=click.Choice(["auto", *BACKENDS])
)
@click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICES))
@click.option(
    "--tile",
    default="off",
    show_default=True,
    type=click.Choice(["off", "on", "auto"]),
    help="Sliding-window inference at full resolution (auto: images > 4x the input size).",
)
@click.option(
    "--epsilon",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Polygon simplification tolerance in pixels (0: exact contours).",
)
@click.option("--threads", type=click.IntRange(min=1), help="ONNX Runtime threads.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def main(
    model, images, out, write_overlay, polygons, threshold, batch_size, backend, device, tile,
    epsilon, threads, quiet,
) -> None:  # fmt: skip
    """Segment IMAGES (files or folders) with MODEL (.onnx or .engine) and write masks to --out."""
    jobs = collect_jobs(list(images), out)
    check_outputs(jobs)
    tile_mode = {"off": False, "on": True, "auto": "auto"}[tile]
    failures: list[tuple[Path, str]] = []
    with Segmenter(
        model,
        backend=backend,
        device=device,
        batch_size=batch_size,
        threads=threads,
        threshold=threshold,
    ) as seg:
        write = functools.partial(
            _write_outputs,
            classes=seg.classes,
            binary=seg.metadata.num_classes == 1,
            write_overlay=write_overlay,
            polygons=polygons,
            epsilon=epsilon,
        )
        with tqdm(total=len(jobs), unit="img", disable=quiet, file=sys.stderr) as bar:
            for start in range(0, len(jobs), batch_size):
                chunk = jobs[start : start + batch_size]
                failures += _segment_chunk(seg, chunk, tile_mode, write)
                bar.update(len(chunk))
    click.echo(f"wrote the masks of {len(jobs) - len(failures)} of {len(jobs)} images to {out}")
    if failures:
        click.echo(f"{len(failures)} failed:", err=True)
        for path, problem in failures:
            click.echo(f"  {path}: {problem}", err=True)
        sys.exit(EXIT_FAILED)


def _segment_chunk(
    seg: Segmenter, chunk: list[Job], tile: bool | str, write: Callable[..., None]
) -> list[tuple[Path, str]]:
    """Read, segment and write one chunk of images; the (image, problem) of each failure."""
    failures, loaded = [], []
    for job in chunk:
        try:
            loaded.append((job, read_image(job.image)))
        except SegkitError as err:
            failures.append((job.image, err.problem))
    masks = seg.predict([image for _, image in loaded], tile=tile)
    for (job, image), mask in zip(loaded, masks, strict=True):
        try:
            write(job, image, mask)
        except OSError as err:
            failures.append((job.image, f"cannot write outputs ({err})"))
    return failures


def _write_outputs(
    job: Job,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    classes: list[str],
    binary: bool,
    write_overlay: bool,
    polygons: bool,
    epsilon: float,
) -> None:
    job.stem.parent.mkdir(parents=True, exist_ok=True)
    _write_image(job.output(".png"), mask * 255 if binary else mask)
    if write_overlay:
        tinted = cv2.cvtColor(overlay(image, mask), cv2.COLOR_RGB2BGR)
        _write_image(job.output("_overlay.jpg"), tinted)
    if polygons:
        json_path = job.output(".json")
        image_path = os.path.relpath(job.image.resolve(), json_path.parent.resolve())
        annotation = mask_to_labelme(mask, image_path, classes, epsilon)
        atomic_write_text(json_path, json.dumps(annotation, indent=2))


def _write_image(path: Path, array: np.ndarray) -> None:
    """cv2.imencode + an atomic write, so any path (spaces, non-ASCII) works and a killed run
    never leaves half a file."""
    ok, encoded = cv2.imencode(path.suffix, array)
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name}")
    atomic_write(path, lambda handle: handle.write(encoded.tobytes()))
