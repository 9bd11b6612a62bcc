"""segkit export: checkpoints -> ONNX / TensorRT, with parity checks against PyTorch.

    from export import export_onnx, check_parity
    export_onnx("runs/unet-.../best.pth")                  # -> runs/unet-.../best.onnx
    print(check_parity("runs/unet-.../best.onnx", "runs/unet-.../best.pth").format())

TensorRT (`export.tensorrt_build`) is imported only when used.
"""

from export.errors import ExportError
from export.onnx_export import export_onnx
from export.parity import check_parity

__all__ = ["ExportError", "check_parity", "export_onnx"]
