"""The PyTorch reference: the checkpoint's model, run the way the exported graph is."""

from __future__ import annotations

import numpy as np
import torch

from export.source import ExportSource
from export.wrapper import ProbabilityModel


class TorchRunner:
    """float32 probabilities of the source model on the CPU (the reference for parity checks)."""

    backend = "pytorch"

    def __init__(self, source: ExportSource):
        self.path = source.path
        self.model = ProbabilityModel(source.model).eval()

    def run(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(images)).numpy()
