"""`segpredict MODEL INPUTS... --out DIR`: masks (PNG), overlays and labelme JSON for images
and videos.

INPUTS are image files, video files (.mp4 .avi .mov .mkv .webm ...), RTSP/HTTP stream URLs
or folders (searched recursively for images and videos), mixed in any order.
- Each image gives `DIR/<name>.png`, the mask (0/255 for binary models so it is visible,
  class ids for multi-class ones), with `--overlay` `DIR/<name>_overlay.jpg`, and with
  `--polygons` `DIR/<name>.json` (labelme; its imagePath points back at the image).
- Each video gives `DIR/<name>/<frame:06d>.png` per kept frame (`--every N`: every N-th
  frame, numbered by its index in the video) and with `--overlay` `DIR/<name>_overlay.mp4`
  at the source's size and frame rate (divided by N). Frames decode in a background thread
  while the model runs (`runtime.stream`).
`<name>` is the input's path inside a folder argument (so same-named files in subfolders do
not clash), its stem for a file argument, or the last part of a URL.

Exit codes: 0 when every input was written; 1 when some could not be read or written, or a
stream ended early (what was written is kept, the failures listed at the end); 2 for bad
arguments (unknown backend, missing model or input path, a model without segkit metadata,
clashing output names, a video that cannot be opened).
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
from runtime.stream import StreamError, is_stream_url, is_video_path
from runtime.video_writer import VideoWriter


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go (`stem` is `DIR/<name>` without a suffix)."""

    image: Path | str  # an image or video path, or a stream URL
    stem: Path
    video: bool = False

    def output(self, suffix: str) -> Path:
        return self.stem.with_name(self.stem.name + suffix)


def collect_jobs(inputs: list[str | Path], out: Path) -> list[Job]:
    """The images and videos named by `inputs` (files, URLs, or folders searched
    recursively), in order."""
    jobs = []
    for given in inputs:
        if is_stream_url(given):
            name = str(given).rstrip("/").rsplit("/", 1)[-1] or "stream"
            jobs.append(Job(str(given), out / Path(name).stem, video=True))
            continue
        item = Path(given)
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and _is_input(p))
            if not found:
                raise ArgumentError(item, "no images or videos in this folder")
            jobs += [
                Job(p, out / p.relative_to(item).with_suffix(""), is_video_path(p)) for p in found
            ]
        elif item.is_file():
            jobs.append(Job(item, out / item.stem, is_video_path(item)))
        else:
            raise ArgumentError(item, "no such file or folder")
    return jobs


def _is_input(path: Path) -> bool:
    return is_image_file(path) or (is_video_path(path) and not path.name.startswith("."))


def check_outputs(jobs: list[Job]) -> None:
    """Refuse output names used twice and masks that would overwrite an input image."""
    owners: dict[Path, Path | str] = {}
    inputs = {Path(job.image).resolve() for job in jobs if not is_stream_url(job.image)}
    for job in jobs:
        mask = (job.stem if job.video else job.output(".png")).resolve()
        if mask in owners:
            raise ArgumentError(
                job.image, f"its outputs would overwrite those of {owners[mask]} ({mask.name})"
            )
        if mask in inputs:
            raise ArgumentError(mask, "a mask would overwrite this input image; use another --out")
        owners[mask] = job.image


@click.command(cls=SegkitCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option(
    "--overlay",
    "write_overlay",
    is_flag=True,
    help="Also write <name>_overlay.jpg (images) or <name>_overlay.mp4 (videos).",
)
@click.option(
    "--every",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Videos: segment every N-th frame.",
)
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
@click.option(
    "--threads", type=click.IntRange(min=1), help="CPU inference threads (ONNX Runtime, OpenVINO)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def main(
    model, images, out, write_overlay, every, polygons, threshold, batch_size, backend, device,
    tile, epsilon, threads, quiet,
) -> None:  # fmt: skip
    """Segment IMAGES (image or video files, stream URLs, folders) with MODEL (.onnx, .xml or
    .engine) and write masks to --out."""
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
        stills = [job for job in jobs if not job.video]
        with tqdm(
            total=len(stills), unit="img", disable=quiet or not stills, file=sys.stderr
        ) as bar:
            for start in range(0, len(stills), batch_size):
                chunk = stills[start : start + batch_size]
                failures += _segment_chunk(seg, chunk, tile_mode, write)
                bar.update(len(chunk))
        for job in (job for job in jobs if job.video):
            failures += segment_video(
                seg, job, every=every, tile=tile_mode, write_overlay=write_overlay, quiet=quiet
            )
    noun = "images" if len(stills) == len(jobs) else "inputs"
    click.echo(f"wrote the masks of {len(jobs) - len(failures)} of {len(jobs)} {noun} to {out}")
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


def segment_video(
    seg: Segmenter, job: Job, *, every: int, tile: bool | str, write_overlay: bool, quiet: bool
) -> list[tuple[Path | str, str]]:
    """Masks (and the overlay video) of one video or stream; the problem if it ended early."""
    results = seg.predict_stream(job.image, every=every, tile=tile)  # opens it: errors now
    total = -(-results.count // every) if results.count else None
    writer = VideoWriter(job.output("_overlay.mp4"), results.fps and results.fps / every)
    scale = 255 if seg.metadata.num_classes == 1 else 1
    written = 0
    bar = tqdm(total=total, unit="frame", disable=quiet, file=sys.stderr, desc=job.stem.name)
    try:
        for result in results:
            _write_image(job.stem / f"{result.index:06d}.png", result.mask * scale)
            if write_overlay:
                writer.write(overlay(result.image, result.mask))
            written += 1
            bar.update()
    except StreamError as err:
        return [(job.image, f"{err.problem}; kept the {written} frames written")]
    finally:
        bar.close()
        results.close()
        writer.close()
    return []
