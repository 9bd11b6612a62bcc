"""Backends that run exported models, one per file; `open_runner` picks one by file suffix."""

from __future__ import annotations

import os
from pathlib import Path

from export.errors import ExportError
from export.runners.base import Runner

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def open_runner(path: str | os.PathLike) -> Runner:
    """An ONNX Runtime runner for `.onnx`, a TensorRT runner for `.engine` / `.plan` / `.trt`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        from export.runners.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path)
    if suffix in ENGINE_SUFFIXES:
        from export.runners.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path)
    known = ", ".join(ONNX_SUFFIXES + ENGINE_SUFFIXES)
    raise ExportError(
        path, f"unknown model type {suffix or '(no suffix)'!r}; expected one of {known}"
    )


__all__ = ["ENGINE_SUFFIXES", "ONNX_SUFFIXES", "Runner", "open_runner"]
