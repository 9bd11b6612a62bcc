"""Calibration images for INT8 quantization, fed through exactly the runtime's preprocessing.

`calibration_split(folder, n)` takes an image folder (the images directly inside it) or a
dataset folder (any layout `segtrain` reads; its training images), shuffles the files with a
fixed seed, holds some back for the accuracy gate and returns up to `n` of the others for
calibration. `PreprocessedReader` is the `onnxruntime.quantization.CalibrationDataReader`
that reads them with `runtime.inputs.load_image` and `runtime.preprocess.preprocess` at the
model's own input size, mean and std: the tensors calibration sees are the ones `Segmenter`
gives the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from runtime.errors import DataError, NotFoundError
from runtime.images import IMAGE_EXTENSIONS
from runtime.inputs import load_image
from runtime.metadata import ModelMetadata
from runtime.preprocess import preprocess

SEED = 0
MAX_HELD_BACK = 32  # images kept for the gate, at most
CALIBRATION_BATCH = 8


@dataclass(frozen=True)
class CalibrationSplit:
    """Image files for calibration, and the held-back ones the gate compares masks on."""

    calibrate: list[Path]
    held_back: list[Path]
    source: str  # "image folder" or the dataset layout


def calibration_split(folder: str | os.PathLike, n: int) -> CalibrationSplit:
    """Up to `n` calibration images of `folder` and the held-back ones (a fifth, at most
    `MAX_HELD_BACK`, at least one), disjoint, in a fixed shuffled order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFoundError(folder, "no such calibration folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    source = "image folder"
    if not files:
        files, source = _dataset_images(folder)
    if len(files) < 2:
        raise DataError(
            folder, f"found {len(files)} image(s); calibration needs at least 2 (one held back)"
        )
    order = np.random.default_rng(SEED).permutation(len(files))
    shuffled = [files[i] for i in order]
    held = max(1, min(MAX_HELD_BACK, len(files) // 5))
    return CalibrationSplit(shuffled[held : held + n], shuffled[:held], source)


def _dataset_images(folder: Path) -> tuple[list[Path], str]:
    from trainer.data.source import DataSource, resolve_source

    splits, _ = resolve_source(DataSource(data=str(folder)))
    samples = splits["train"]
    return sorted({s.image for s in samples}), f"{splits.layout} dataset (train split)"


def load_images(paths: list[Path]) -> list[np.ndarray]:
    """HxWx3 uint8 RGB images, read as `Segmenter.predict` reads files."""
    return [load_image(path, str(path)) for path in paths]


class PreprocessedReader(CalibrationDataReader):
    """Batches of `paths`, preprocessed for `metadata`'s model (a fixed batch is padded)."""

    def __init__(self, paths: list[Path], metadata: ModelMetadata):
        self.paths = list(paths)
        self.metadata = metadata
        self.batch = metadata.batch_size if not metadata.dynamic_batch else CALIBRATION_BATCH
        self.start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= len(self.paths):
            return None
        chunk = self.paths[self.start : self.start + self.batch]
        self.start += self.batch
        meta = self.metadata
        batch = preprocess(load_images(chunk), meta.input_size, meta.mean, meta.std)
        if not meta.dynamic_batch and len(batch) < self.batch:
            batch = np.concatenate([batch, np.repeat(batch[-1:], self.batch - len(batch), 0)])
        return {meta.input_name: batch}

    def rewind(self) -> None:
        self.start = 0
