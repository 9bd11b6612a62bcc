"""segkit runtime: torch-free inference on exported models (ONNX Runtime / TensorRT).

    from runtime import Segmenter
    seg = Segmenter("model.onnx")             # or "model.engine"; backend/device auto
    masks = seg.predict(["a.jpg", "b.png"])   # list of HxW uint8 masks at each image's size

`runtime.metadata` holds the schema of the metadata every exported model carries (ONNX
`metadata_props`, or the `model.engine.json` sidecar of a TensorRT engine),
`runtime.preprocess` the numpy preprocessing that matches training, `runtime.backends` one
backend per file. Nothing here imports torch, `trainer` or `export`.
"""

from runtime.errors import (
    ArgumentError,
    BackendFallbackWarning,
    ImageError,
    InputError,
    ModelError,
    SegkitError,
    SegmenterError,
)
from runtime.metadata import MetadataError, ModelMetadata
from runtime.overlay import overlay
from runtime.polygons import mask_to_labelme, mask_to_polygons
from runtime.segmenter import Segmenter

__all__ = [
    "ArgumentError",
    "BackendFallbackWarning",
    "ImageError",
    "InputError",
    "MetadataError",
    "ModelError",
    "ModelMetadata",
    "Segmenter",
    "SegkitError",
    "SegmenterError",
    "mask_to_labelme",
    "mask_to_polygons",
    "overlay",
]
