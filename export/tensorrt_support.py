"""Lazy imports of TensorRT and the CUDA runtime bindings, with one clear error when missing."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from export.errors import ExportError

INSTALL_HINT = (
    "TensorRT is not installed: install the gpu extra on a machine with an NVIDIA GPU "
    "(pip install 'segkit[gpu]', which needs NVIDIA's tensorrt and cuda-python packages)"
)


def require_tensorrt(subject: str = "tensorrt") -> ModuleType:
    """`import tensorrt`, or `ExportError(subject, INSTALL_HINT)`."""
    try:
        import tensorrt
    except ImportError as err:
        raise ExportError(subject, INSTALL_HINT) from err
    return tensorrt


def require_cudart(subject: str = "tensorrt") -> ModuleType:
    """cuda-python's runtime bindings: `cuda.bindings.runtime` (`cuda.cudart` before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as err:
            raise ExportError(subject, INSTALL_HINT) from err
    return cudart


def tensorrt_major(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".")[0])


def cuda_check(cudart: ModuleType, result: tuple[Any, ...], what: str) -> Any:
    """Unpack a cuda-python `(error, value...)` tuple, raising `RuntimeError` on a CUDA error."""
    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        _, message = cudart.cudaGetErrorString(error)
        raise RuntimeError(
            f"CUDA error during {what}: {error} "
            f"({message.decode() if isinstance(message, bytes) else message})"
        )
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)
