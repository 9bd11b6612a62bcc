"""A stand-in `tensorrt` module for the tests of TensorRT code paths without TensorRT."""

from __future__ import annotations

import types


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
