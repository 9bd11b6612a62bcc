"""The interface every backend that runs an exported model implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from export.errors import ExportError
from runtime.metadata import ModelMetadata


class Runner(ABC):
    """Runs an exported model on preprocessed batches; a context manager that frees its resources.

    `run(images)` takes (N, 3, H, W) float32 and returns the model's `probs` (N, C, H, W)
    float32. `backend` names the runtime ("onnxruntime", "tensorrt").
    """

    backend: str
    path: Path
    metadata: ModelMetadata

    @abstractmethod
    def run(self, images: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def close(self) -> None:
        """Release sessions and device memory; the runner cannot be used afterwards."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_input(self, images: np.ndarray) -> None:
        """Refuse a batch that does not fit the model's declared input, naming what is wrong."""
        meta = self.metadata
        if images.dtype != np.float32 or images.ndim != 4 or images.shape[1] != len(meta.mean):
            raise ExportError(
                self.path,
                f"expected float32 images (N, {len(meta.mean)}, H, W), "
                f"got {images.dtype} {images.shape}",
            )
        if not meta.dynamic_batch and images.shape[0] != meta.batch_size:
            raise ExportError(
                self.path,
                f"model has a fixed batch of {meta.batch_size}, got {images.shape[0]} images",
            )
        height, width = images.shape[2:]
        if meta.dynamic_hw:
            if min(height, width) < meta.stride:
                raise ExportError(
                    self.path,
                    f"H and W must be at least {meta.stride} for this model, got {height}x{width}",
                )
        elif (height, width) != tuple(meta.input_size):
            raise ExportError(
                self.path,
                f"model was exported for {meta.input_size[0]}x{meta.input_size[1]} inputs, "
                f"got {height}x{width} "
                "(export with --dynamic-hw for other sizes)",
            )
