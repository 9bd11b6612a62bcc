"""The built-in sample data: a generated labelme dataset of textured shapes on textured ground.

Each image has a noisy, low-frequency coloured background and 1-3 striped shapes (ellipses,
random polygons, stars, rectangles, circles) whose colour is a moderate step away from the
background. Shapes are drawn anti-aliased from their exact geometry; the labelme JSON
beside each image outlines them (label "shape"; ellipses, polygons and stars as polygons,
ellipses with 24 points like a human annotator would; rectangles and circles as labelme's
own shape types). Generation is deterministic for a seed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from runtime.errors import DataError
from trainer.data.labelme import circle_polygon, fill_polygon

SAMPLE_NAME = "sample-v1"
MARKER = ".complete"
LABEL = "shape"
ELLIPSE_POINTS = 24
SHAPE_KINDS = ("ellipse", "polygon", "star", "rectangle", "circle")
SHAPE_WEIGHTS = (0.3, 0.25, 0.2, 0.125, 0.125)
SUPERSAMPLE = 5  # odd: a pixel centre is one of the sub-samples


def default_sample_dir() -> Path:
    """`$SEGKIT_CACHE/sample-v1`, or `~/.cache/segkit/sample-v1`."""
    base = os.environ.get("SEGKIT_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "segkit"
    return root / SAMPLE_NAME


def make_sample_dataset(
    root: str | Path, n_train: int = 48, n_test: int = 16, size: int = 96, seed: int = 0
) -> Path:
    """Generate the dataset in `root/train` and `root/test` (once) and return `root`.

    The folder is written under a temporary name and renamed into place with a `.complete`
    marker inside, so a half-written dataset is never seen; when `root` is already complete
    it is returned at once.
    """
    root = Path(root)
    params = {"name": SAMPLE_NAME, "n_train": n_train, "n_test": n_test, "size": size, "seed": seed}
    if _is_complete(root, params):
        return root
    if root.exists() and any(root.iterdir()):
        raise DataError(
            root, "exists but is not a complete sample dataset; remove it or choose another folder"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        for split_id, (split, count) in enumerate((("train", n_train), ("test", n_test))):
            for index in range(count):
                image, shapes, _ = render_sample(
                    np.random.default_rng([seed, split_id, index]), size
                )
                _write_sample(tmp / split, f"shapes_{index:03d}", image, shapes)
        (tmp / MARKER).write_text(json.dumps(params, sort_keys=True) + "\n")
        os.replace(tmp, root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_complete(root, params):  # another process finished first
            return root
        raise
    return root


def render_sample(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, list[dict[str, Any]], np.ndarray]:
    """(HxWx3 uint8 RGB image, labelme shape dicts, HxW uint8 mask of the drawn shapes)."""
    background = rng.uniform(50, 205, 3)
    image = background + _smooth_noise(rng, size, amplitude=30.0)
    truth = np.zeros((size, size), np.uint8)
    shapes = []
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(SHAPE_KINDS, p=SHAPE_WEIGHTS))
        outline, shape = _random_shape(rng, kind, size)
        coverage = _coverage(outline, size)
        step = rng.normal(size=3)
        colour = np.clip(background + step / np.linalg.norm(step) * rng.uniform(45, 80), 20, 235)
        texture = colour + _stripes(rng, size)
        image = image * (1 - coverage[..., None]) + texture * coverage[..., None]
        truth[coverage > 0.5] = 1
        shapes.append(shape)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), shapes, truth


def _random_shape(
    rng: np.random.Generator, kind: str, size: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """(exact outline as an (N, 2) polygon, labelme shape dict) of a random shape."""
    radius = size * rng.uniform(0.1, 0.22)
    centre = rng.uniform(radius + 1, size - radius - 1, 2)
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "circle":
        centre = np.round(centre, 2)
        rim = np.round(centre + radius * np.array([math.cos(angle), math.sin(angle)]), 2)
        exact = circle_polygon(centre, float(np.hypot(*(rim - centre))))
        return exact, _labelme_shape("circle", [centre, rim])
    if kind == "rectangle":
        half = radius * rng.uniform(0.5, 1.0, 2)
        corners = np.round(np.stack([centre - half, centre + half]), 2)
        if rng.random() < 0.5:
            corners = corners[::-1]  # labelme accepts either corner first
        (xa, ya), (xb, yb) = corners
        return np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]]), _labelme_shape(
            "rectangle", corners
        )
    if kind == "ellipse":
        axes = radius * np.array([1.0, rng.uniform(0.5, 1.0)])
        exact = _ellipse(centre, axes, angle, 256)
        # Vertices a little outside the ellipse so the 24-gon has the ellipse's area.
        n = ELLIPSE_POINTS
        scale = math.sqrt(2 * math.pi / (n * math.sin(2 * math.pi / n)))
        return exact, _labelme_shape("polygon", _ellipse(centre, axes * scale, angle, n))
    if kind == "star":
        count = 5
        radii = np.tile([1.0, rng.uniform(0.4, 0.55)], count) * radius
        angles = angle + np.arange(2 * count) * math.pi / count
    else:
        count = int(rng.integers(5, 9))
        radii = radius * rng.uniform(0.6, 1.0, count)
        angles = angle + np.sort(rng.uniform(0, 2 * math.pi, count))
    points = np.round(centre + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1), 2)
    return points, _labelme_shape("polygon", points)


def _ellipse(centre: np.ndarray, axes: np.ndarray, angle: float, n: int) -> np.ndarray:
    t = np.arange(n) * (2 * math.pi / n)
    x, y = axes[0] * np.cos(t), axes[1] * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return np.round(centre + np.stack([c * x - s * y, s * x + c * y], axis=1), 2)


def _labelme_shape(kind: str, points: Any) -> dict[str, Any]:
    return {
        "label": LABEL,
        "points": [[float(x), float(y)] for x, y in points],
        "group_id": None,
        "description": "",
        "shape_type": kind,
        "flags": {},
    }


def _coverage(outline: np.ndarray, size: int) -> np.ndarray:
    """Share of each pixel inside the polygon (anti-aliasing by supersampling)."""
    fine = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), np.uint8)
    fill_polygon(fine, outline * SUPERSAMPLE, 1)
    return fine.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


def _smooth_noise(rng: np.random.Generator, size: int, amplitude: float) -> np.ndarray:
    """Low-frequency colour variation: a coarse random grid upsampled smoothly."""
    grid = rng.normal(0, amplitude, (6, 6, 3)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float64)


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """A striped texture (random frequency and direction) added to a shape's colour."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    direction = rng.uniform(0, math.pi)
    frequency = rng.uniform(0.08, 0.25)
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(
        2 * math.pi * frequency * (x * math.cos(direction) + y * math.sin(direction)) + phase
    )
    return 18 * wave[..., None] * rng.uniform(0.5, 1.0, 3)


def _write_sample(folder: Path, stem: str, image: np.ndarray, shapes: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{folder / stem}.png: PNG encoding failed")
    (folder / f"{stem}.png").write_bytes(png.tobytes())
    doc = {
        "version": "5.2.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": f"{stem}.png",
        "imageData": None,
        "imageHeight": image.shape[0],
        "imageWidth": image.shape[1],
    }
    (folder / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n")


def _is_complete(root: Path, params: dict[str, Any]) -> bool:
    """True when `root` holds a finished dataset made with `params`; DataError for other params."""
    marker = root / MARKER
    if not marker.is_file():
        return False
    try:
        made_with = json.loads(marker.read_text())
    except (OSError, ValueError):
        made_with = None
    if made_with != params:
        raise DataError(root, f"holds a sample dataset made with {made_with}, not {params}")
    return True
