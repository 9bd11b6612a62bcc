"""Exported models opened for `segexport check`, and the PyTorch reference they are compared to.

`open_runner(path)` opens `.onnx` files on ONNX Runtime's CPU provider (the reference the
parity tolerances are set for), OpenVINO IR `.xml` on OpenVINO (fp32) and `.engine` / `.plan` /
`.trt` files on TensorRT: it returns
the runtime's own `Backend`, whose errors are segkit errors naming the file.
`torch_runner.TorchRunner` is the PyTorch side of the comparison.
"""

from __future__ import annotations

import os

from runtime.backends import Backend, backend_name, open_backend


def open_runner(path: str | os.PathLike) -> Backend:
    """An ONNX Runtime (CPU) backend for `.onnx`, OpenVINO for `.xml`, TensorRT for `.engine`."""
    name = backend_name(path)
    if name == "tensorrt":
        return open_backend(path, name, device="cuda")
    precision = "fp32" if name == "openvino" else "auto"
    return open_backend(path, name, device="cpu", precision=precision)


__all__ = ["open_runner"]
