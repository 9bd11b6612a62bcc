"""segkit export: checkpoints -> ONNX / TensorRT, with parity checks against PyTorch.

    from export import export_onnx, check_parity
    export_onnx("runs/unet-.../best.pth")                  # -> runs/unet-.../best.onnx
    print(check_parity("runs/unet-.../best.onnx", "runs/unet-.../best.pth").format())

The functions are imported on first use (they need torch; `segexport --help` does not), and
TensorRT (`export.tensorrt_build`) only when it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from export.errors import ExportError

_LAZY = {"export_onnx": "export.onnx_export", "check_parity": "export.parity"}

__all__ = ["ExportError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
