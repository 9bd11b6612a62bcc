"""The PyTorch reference: the checkpoint's model, run the way the exported graph is."""

from __future__ import annotations

import numpy as np
import torch

from export.source import ExportSource
from export.wrapper import ProbabilityModel
from runtime.backends.base import Backend


class TorchRunner:
    """float32 probabilities of the source model on the CPU (the reference for parity checks)."""

    backend = "pytorch"

    def __init__(self, source: ExportSource):
        self.path = source.path
        self.model = ProbabilityModel(source.model).eval()

    def run(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(images)).numpy()


class TorchBackend(Backend):
    """A checkpoint's model as a runtime `Backend` (CPU, fp32), so a `Segmenter` can run it
    exactly as it runs an exported file: `segexport evaluate` scores `.pth` files this way."""

    name = "pytorch"

    def __init__(self, source: ExportSource, threads: int | None = None):
        self.path = source.path
        self.metadata = source.metadata(dynamic_hw=True)
        self.device = "cpu"
        self.model: ProbabilityModel | None = ProbabilityModel(source.model).eval()
        if threads is not None:
            torch.set_num_threads(threads)

    def _run(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(images)).numpy()

    @property
    def closed(self) -> bool:
        return self.model is None

    def close(self) -> None:
        self.model = None
