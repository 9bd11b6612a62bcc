"""Exported models opened for `segexport check`, and the PyTorch reference they are compared to.

`open_runner(path)` opens `.onnx` files on ONNX Runtime's CPU provider (the reference the
parity tolerances are set for) and `.engine` / `.plan` / `.trt` files on TensorRT: it returns
the runtime's own `Backend`, whose errors are segkit errors naming the file.
`torch_runner.TorchRunner` is the PyTorch side of the comparison.
"""

from __future__ import annotations

import os

from runtime.backends import Backend, backend_name, open_backend


def open_runner(path: str | os.PathLike) -> Backend:
    """An ONNX Runtime (CPU) backend for `.onnx`, a TensorRT backend for `.engine` files."""
    device = "cpu" if backend_name(path) == "onnxruntime" else "cuda"
    return open_backend(path, device=device)


__all__ = ["open_runner"]
