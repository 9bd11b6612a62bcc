"""`segexport evaluate`: the accuracy of any model file against a dataset's ground truth.

A model file (`.pth`, `.onnx`, `.int8.onnx`, OpenVINO `.xml`, TensorRT `.engine`) is opened
as a runtime `Segmenter` (a checkpoint through `TorchBackend`), and scored on a split of the
dataset, which is read and split as `segtrain evaluate` reads and splits it:

- at the model's input size, the training metrics (acc, dice, iou, map) on the images and
  masks of training's evaluation transform, exactly as `segtrain evaluate` computes them;
- at each image's own size (`native_size`): the Segmenter's probabilities, resized back to
  the image as `predict` does, against the full-resolution mask. This is what a user of
  the model gets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from runtime import Segmenter
from runtime.errors import DataError
from runtime.metadata import ModelMetadata
from trainer.data import SegmentationDataset, build_transform
from trainer.data.dataset import load_sample
from trainer.data.discover import Sample
from trainer.data.source import DataSource
from trainer.evaluate import split_samples
from trainer.metrics import SegmentationMetrics

CHECKPOINT_SUFFIXES = (".pth", ".pt")


def open_model(
    path: str | os.PathLike,
    backend: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    batch_size: int = 8,
) -> Segmenter:
    """A Segmenter over any model file; a checkpoint runs its PyTorch model on the CPU."""
    if Path(path).suffix.lower() in CHECKPOINT_SUFFIXES:
        from export.runners.torch_runner import TorchBackend
        from export.source import load_source

        return Segmenter(TorchBackend(load_source(path), threads), batch_size=batch_size)
    return Segmenter(
        path, backend=backend, precision=precision, threads=threads, batch_size=batch_size
    )


def class_map_of(meta: ModelMetadata) -> dict[str, int] | None:
    """The label -> class id map of a multi-class model (None: binary)."""
    return None if meta.num_classes == 1 else {name: i for i, name in enumerate(meta.classes) if i}


def model_samples(
    path: str | os.PathLike,
    data: DataSource,
    split: str = "val",
    val_fraction: float | None = None,
    seed: int | None = None,
) -> list[Sample]:
    """The samples of `split`, split as the checkpoint's run did (a checkpoint's own
    settings; an exported file uses 0.2 and seed 0 unless given)."""
    trained: dict[str, Any] = {}
    if Path(path).suffix.lower() in CHECKPOINT_SUFFIXES:
        from trainer.checkpoint import load_checkpoint

        trained = {"train_config": load_checkpoint(path).get("train_config") or {}}
    return split_samples(trained, data, split, val_fraction=val_fraction, seed=seed)


def evaluate_model(
    path: str | os.PathLike,
    data: DataSource,
    split: str = "val",
    *,
    batch_size: int = 8,
    threshold: float | None = None,
    backend: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The metrics of the model file `path` on `split` of `data` (see the module docstring)."""
    samples = model_samples(path, data, split, val_fraction, seed)
    with open_model(path, backend, precision, threads, batch_size) as seg:
        scores = score_segmenter(seg, samples, threshold, batch_size)
        return {
            "model": str(path),
            "backend": seg.backend.name,
            "precision": seg.backend.precision,
            "split": split,
            **scores,
        }


def score_segmenter(
    seg: Segmenter, samples: list[Sample], threshold: float | None = None, batch_size: int = 8
) -> dict[str, Any]:
    """acc, dice, iou, map at the model's input size, and the same at native size."""
    meta = seg.metadata
    cutoff = meta.threshold if threshold is None else threshold
    dataset = SegmentationDataset(
        samples,
        build_transform("plain", seg.input_size, train=False, mean=meta.mean, std=meta.std),
        class_map=class_map_of(meta),
        on_bad_sample="skip",
    )
    at_input = SegmentationMetrics(meta.num_classes, cutoff)
    for images, masks in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        probs = seg.backend.run(np.ascontiguousarray(images.numpy(), dtype=np.float32))
        at_input.update_probs(torch.from_numpy(probs), masks)
    native = SegmentationMetrics(meta.num_classes, cutoff)
    for probs, mask in native_probabilities(seg, samples, class_map_of(meta), batch_size):
        native.update_probs(probs, mask)
    return {
        "images": len(dataset),
        "skipped": len(dataset.skipped),
        "input_size": list(seg.input_size),
        **at_input.compute(),
        "native_size": native.compute(),
    }


def native_probabilities(
    seg: Segmenter, samples: list[Sample], class_map: dict[str, int] | None, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Per usable sample, (1, C, H, W) probabilities at the image's size and its (1, H, W)
    mask; samples that cannot be read are left out, as the dataset leaves them out."""
    for start in range(0, len(samples), batch_size):
        loaded = []
        for sample in samples[start : start + batch_size]:
            try:
                loaded.append(load_sample(sample, class_map))
            except DataError:
                continue
        if not loaded:
            continue
        for probs, (_, mask) in zip(
            seg.predict_proba([image for image, _ in loaded]), loaded, strict=True
        ):
            chw = probs[None] if probs.ndim == 2 else probs.transpose(2, 0, 1)
            yield torch.from_numpy(np.ascontiguousarray(chw))[None], torch.from_numpy(mask)[None]
