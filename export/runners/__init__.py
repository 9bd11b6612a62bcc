"""Exported models opened for `segexport check`: the runtime's backends, with export's errors.

`open_runner(path)` opens `.onnx` files on ONNX Runtime's CPU provider (the reference the
parity tolerances are set for) and `.engine` / `.plan` / `.trt` files on TensorRT, through
`runtime.backends`; the runtime's errors become `ExportError`s naming the same file.
`torch_runner.TorchRunner` is the PyTorch side of the comparison.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from export.errors import ExportError
from runtime.backends import Backend, backend_name, open_backend
from runtime.errors import SegmenterError
from runtime.metadata import ModelMetadata


@contextmanager
def _as_export_errors() -> Iterator[None]:
    try:
        yield
    except SegmenterError as err:
        raise ExportError(err.subject, err.problem) from err


class Runner:
    """A runtime backend whose errors are `ExportError`s; a context manager that closes it."""

    def __init__(self, backend: Backend):
        self._backend = backend
        self.backend: str = backend.name
        self.path: Path = backend.path
        self.metadata: ModelMetadata = backend.metadata

    def run(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 -> the model's (N, C, H, W) float32 probabilities."""
        with _as_export_errors():
            return self._backend.run(images)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_runner(path: str | os.PathLike) -> Runner:
    """An ONNX Runtime (CPU) runner for `.onnx`, a TensorRT runner for `.engine` files."""
    with _as_export_errors():
        device = "cpu" if backend_name(path) == "onnxruntime" else "cuda"
        return Runner(open_backend(path, device=device))


__all__ = ["Runner", "open_runner"]
