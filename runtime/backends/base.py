"""The interface every backend that runs an exported model implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from runtime.errors import InputError, ModelError
from runtime.metadata import ModelMetadata


@dataclass(frozen=True)
class BackendOptions:
    """How to open a model, the same for every backend; each uses what applies to it.

    - `device`: "auto", "cpu" or "cuda" (checked by `open_backend`).
    - `threads`: CPU inference threads (None: the library's default); GPU backends ignore it.
    - `strict`: raise instead of warning when the backend falls back to less than was asked.
    - `precision`: "auto" (the graph's own; OpenVINO: bf16 where the CPU has it natively),
      "fp32" or "bf16" (OpenVINO only: the inference precision of the float ops).
    """

    device: str = "auto"
    threads: int | None = None
    strict: bool = False
    precision: str = "auto"


DEFAULT_OPTIONS = BackendOptions()


class Backend(ABC):
    """Runs an exported model on preprocessed batches; close it (or use `with`) to free it.

    `run(images)` takes (N, 3, H, W) float32 for any N >= 1 and returns the model's `probs`
    (N, C, H, W) float32: batches larger than the model accepts are split into chunks, and a
    chunk smaller than a fixed (or profile minimum) batch is padded with copies of its last
    image whose outputs are dropped. Subclasses implement `_run` for one chunk that fits.
    `run` may be called from several threads at once.
    """

    name: ClassVar[str]
    path: Path
    metadata: ModelMetadata
    device: str  # "cpu" or "cuda": where the model really runs
    min_batch: int = 1
    max_batch: int | None = None  # None: no limit

    @abstractmethod
    def _run(self, images: np.ndarray) -> np.ndarray:
        """Probabilities of one batch whose size is within [min_batch, max_batch]."""

    @abstractmethod
    def close(self) -> None:
        """Release sessions and device memory; calling it twice is harmless."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    @property
    def precision(self) -> str:
        """What the model really runs in: fp32, fp16, bf16 or int8 (the graph's own here)."""
        return self.metadata.precision

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.device
        return f"{type(self).__name__}({str(self.path)!r}, {state})"

    def run(self, images: np.ndarray) -> np.ndarray:
        if self.closed:
            raise ModelError(self.path, f"the {self.name} backend was closed")
        self.check_input(images)
        step = self.max_batch or len(images)
        outputs = []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            real = len(chunk)
            if real < self.min_batch:
                padding = np.repeat(chunk[-1:], self.min_batch - real, axis=0)
                chunk = np.concatenate([chunk, padding])
            outputs.append(self._run(np.ascontiguousarray(chunk))[:real])
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def check_tensor_names(self, inputs: list[str], outputs: list[str], kind: str) -> None:
        """Refuse a model whose input and output tensors are not the ones its metadata
        names (`kind`: "graph", "engine", for the message)."""
        meta = self.metadata
        if inputs != [meta.input_name] or outputs != [meta.output_name]:
            raise ModelError(
                self.path,
                f"{kind} tensors {inputs} -> {outputs} do not match the metadata "
                f"({meta.input_name} -> {meta.output_name})",
            )

    def check_input(self, images: np.ndarray) -> None:
        """Refuse a batch that does not fit the model's declared input, naming what is wrong."""
        meta = self.metadata
        channels = len(meta.mean)
        if (
            not isinstance(images, np.ndarray)
            or images.dtype != np.float32
            or images.ndim != 4
            or images.shape[1] != channels
            or images.shape[0] < 1
        ):
            raise InputError(
                self.path,
                f"expected float32 images (N >= 1, {channels}, H, W), "
                f"got {getattr(images, 'dtype', type(images).__name__)} "
                f"{getattr(images, 'shape', '')}",
            )
        height, width = images.shape[2:]
        if meta.dynamic_hw:
            if min(height, width) < meta.stride:
                raise InputError(
                    self.path,
                    f"H and W must be at least {meta.stride} for this model, got {height}x{width}",
                )
        elif (height, width) != tuple(meta.input_size):
            raise InputError(
                self.path,
                f"model was exported for {meta.input_size[0]}x{meta.input_size[1]} inputs, "
                f"got {height}x{width} (export with --dynamic-hw for other sizes)",
            )
