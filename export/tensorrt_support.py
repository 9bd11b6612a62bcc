"""TensorRT for the export commands: the runtime's lazy import, its errors as ExportError."""

from __future__ import annotations

from types import ModuleType

from export.errors import ExportError
from runtime.backends import tensorrt_support as _runtime_support
from runtime.errors import ModelError


def require_tensorrt(subject: str = "tensorrt") -> ModuleType:
    """`import tensorrt`, or `ExportError(subject, ...)` saying how to install it."""
    try:
        return _runtime_support.require_tensorrt(subject)
    except ModelError as err:
        raise ExportError(subject, _runtime_support.INSTALL_HINT) from err


def tensorrt_major(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".")[0])
