"""Run an exported `.onnx` model with ONNX Runtime."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from export.errors import ExportError
from export.runners.base import Runner
from runtime.metadata import ModelMetadata


class OnnxRuntimeRunner(Runner):
    """An ONNX Runtime session over an exported model, metadata read from its `metadata_props`.

    `providers` is an ordered preference; those not available in this onnxruntime build are
    dropped, and a warning says when the session fell back from the first one asked for.
    """

    backend = "onnxruntime"

    def __init__(
        self, path: str | os.PathLike, providers: Sequence[str] = ("CPUExecutionProvider",)
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(self.path, "no such model file")
        available = ort.get_available_providers()
        usable = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), providers=usable)
        except Exception as err:  # onnxruntime's exceptions derive from Exception only
            raise ExportError(self.path, f"not a loadable ONNX model ({err})") from err
        if self.session.get_providers()[0] != providers[0]:
            warnings.warn(
                f"{self.path}: running on {self.session.get_providers()[0]}, not {providers[0]}",
                stacklevel=2,
            )
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props, str(self.path))

    def run(self, images: np.ndarray) -> np.ndarray:
        self.check_input(images)
        (probs,) = self.session.run([self.metadata.output_name], {self.metadata.input_name: images})
        return probs

    def close(self) -> None:
        self.session = None
