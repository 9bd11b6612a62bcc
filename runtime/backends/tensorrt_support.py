"""Lazy imports of TensorRT and cuda-python's runtime bindings, with one clear error each."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from runtime.errors import ModelError

INSTALL_HINT = (
    "TensorRT is not installed: install the gpu extra on a machine with an NVIDIA GPU "
    "(pip install 'segkit[gpu]', which needs NVIDIA's tensorrt and cuda-python packages)"
)


def require_tensorrt(subject: str | os.PathLike = "tensorrt") -> ModuleType:
    """`import tensorrt`, or `ModelError(subject, INSTALL_HINT)`."""
    try:
        import tensorrt
    except ImportError as err:
        raise ModelError(subject, INSTALL_HINT) from err
    return tensorrt


def require_cudart(subject: str | os.PathLike = "tensorrt") -> ModuleType:
    """cuda-python's runtime bindings: `cuda.bindings.runtime` (`cuda.cudart` before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as err:
            raise ModelError(subject, INSTALL_HINT) from err
    return cudart


def require_gpu(cudart: ModuleType, subject: str | os.PathLike) -> None:
    """ModelError naming `subject` unless at least one CUDA device is usable."""
    error, count = cudart.cudaGetDeviceCount()
    if error != cudart.cudaError_t.cudaSuccess or count < 1:
        raise ModelError(
            subject, f"no CUDA GPU available ({error}); TensorRT engines need an NVIDIA GPU"
        )


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


def tensorrt_major(trt: ModuleType) -> int:
    """The major version of an imported `tensorrt` module (10, 11, ...)."""
    return int(str(trt.__version__).split(".")[0])
