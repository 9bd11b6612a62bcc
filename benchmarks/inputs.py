"""Benchmark inputs: real butterfly photos when the shared dataset is present, else generated.

The images keep their own sizes (the butterfly test photos are about 190 x 265): the model
cases preprocess them to the model's input size, the end-to-end cases hand them to
`Segmenter.predict` as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from runtime.preprocess import preprocess
from trainer.data import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD

REPO_ROOT = Path(__file__).resolve().parents[1]
BUTTERFLY = REPO_ROOT.parent / "shared" / "datasets" / "nature-butterfly"
GENERATED_SIZE = (240, 320)  # height, width of generated images


def load_images(count: int, folder: Path = BUTTERFLY / "test") -> tuple[list[np.ndarray], str]:
    """`count` HxWx3 uint8 RGB images and where they came from: "generated" or the folder
    (relative to the repository root)."""
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    images = []
    for path in files[:count]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"{path}: unreadable image in the benchmark dataset")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if len(images) == count:
        return images, os.path.relpath(folder, REPO_ROOT)
    return [generated_image(seed) for seed in range(count)], "generated"


def generated_image(seed: int) -> np.ndarray:
    """A photo-like image: smooth colour noise with a few filled discs."""
    rng = np.random.default_rng(seed)
    height, width = GENERATED_SIZE
    coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(4):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(height // 10, height // 3))
        cv2.circle(image, centre, radius, tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    return image


def model_batch(images: list[np.ndarray], size: int, batch: int) -> np.ndarray:
    """The first `batch` images as the models' normalized float32 (batch, 3, size, size)."""
    return preprocess(images[:batch], (size, size), IMAGENET_MEAN, IMAGENET_STD)
