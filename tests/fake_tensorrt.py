"""TensorRT test support: the skip for machines without TensorRT or a GPU, and a stand-in module."""

from __future__ import annotations

import importlib.util
import types

import pytest


def fake_tensorrt(version: str, engine: object = None) -> types.ModuleType:
    """A stand-in for the parts of `tensorrt` the TensorRT code touches before running anything."""
    module = types.ModuleType("tensorrt")
    module.__version__ = version

    class Logger:
        WARNING = 2

        def __init__(self, severity: int):
            self.severity = severity

    class Runtime:
        def __init__(self, logger: Logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> object:
            return engine

    module.Logger, module.Runtime = Logger, Runtime
    return module


def _gpu_skip_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return (
            "tensorrt is not installed (pip install 'segkit[gpu]' on a machine with an NVIDIA GPU)"
        )
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return "cuda-python is not installed (part of the gpu extra)"
    error, count = cudart.cudaGetDeviceCount()
    if error != cudart.cudaError_t.cudaSuccess or count < 1:
        return "no CUDA GPU available"
    return None


GPU_SKIP = _gpu_skip_reason()
needs_gpu = pytest.mark.skipif(GPU_SKIP is not None, reason=str(GPU_SKIP))
