"""Models for the benchmarks, built once per session: PyTorch modules, FLOP counts, ONNX files."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from benchmarks.matrix import build_model
from benchmarks.measure import count_flops
from export.onnx_export import export_onnx
from runtime.metadata import ModelInfo
from trainer.checkpoint import build_checkpoint, save_checkpoint
from trainer.data import IMAGENET_MEAN, IMAGENET_STD
from trainer.models import SegmentationModel


class ModelCache:
    """Random-weight models by architecture, their FLOPs by (arch, size), ONNX exports.

    FLOPs are counted once per (arch, size) with torch's flop counter, in this process; the
    ONNX Runtime and TensorRT cases reuse the count of the PyTorch model they were exported
    from. Exports go to `folder` with a dynamic batch and the benchmark size as input size.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._models: dict[str, SegmentationModel] = {}
        self._flops: dict[tuple[str, int], float] = {}
        self._onnx: dict[tuple[str, int, bool], Path] = {}
        self._int8: dict[tuple[str, int], Path] = {}

    def model(self, arch: str) -> SegmentationModel:
        """The CPU model of `arch` (GPU cases move a copy, never this one)."""
        if arch not in self._models:
            self._models[arch] = build_model(arch)
        return self._models[arch]

    def flops(self, arch: str, size: int) -> float:
        """FLOPs of one image's forward pass."""
        if (arch, size) not in self._flops:
            self._flops[arch, size] = count_flops(self.model(arch), size)
        return self._flops[arch, size]

    def onnx(self, arch: str, size: int, fp16: bool = False) -> Path:
        """An ONNX export (the default exporter, dynamic batch) of `arch` at `size`."""
        key = (arch, size, fp16)
        if key not in self._onnx:
            stem = f"{arch}-{size}{'-fp16' if fp16 else ''}"
            checkpoint = self.folder / f"{arch}-{size}.pth"
            if not checkpoint.is_file():
                save_checkpoint(self._checkpoint(arch, size), checkpoint)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = export_onnx(checkpoint, self.folder / f"{stem}.onnx", fp16=fp16)
            self._onnx[key] = result.path
        return self._onnx[key]

    def int8(self, arch: str, size: int, images: list[np.ndarray]) -> Path:
        """The INT8 QDQ model of `onnx(arch, size)`, calibrated on `images` (random weights:
        the gate's verdict does not matter for speed, so it is written whatever it is)."""
        key = (arch, size)
        if key not in self._int8:
            from export.quantize import quantize_model

            calib = self.folder / f"calib-{arch}-{size}"
            calib.mkdir(exist_ok=True)
            for index, image in enumerate(images):
                cv2.imwrite(str(calib / f"{index:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            output = self.folder / f"{arch}-{size}.int8.onnx"
            result = quantize_model(self.onnx(arch, size), calib, output, force=True)
            self._int8[key] = result.path
        return self._int8[key]

    def _checkpoint(self, arch: str, size: int) -> dict:
        return build_checkpoint(
            self.model(arch),
            info=ModelInfo(
                num_classes=1,
                classes=["background", "foreground"],
                input_size=(size, size),
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                threshold=0.5,
            ),
            epoch=0,
            metrics={},
        )
