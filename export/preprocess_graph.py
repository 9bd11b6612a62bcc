"""Preprocessing inside the ONNX graph (`--preprocess`), for clients that send raw pixels.

The graph gains an input `pixels`: (N, H, W, 3) uint8 RGB, any H and W (the N images of one
request share a size). In the graph: NHWC -> NCHW, an antialiased bilinear `Resize` to the
model's input size (ONNX opset 18 `Resize` with `antialias=1`, half-pixel centres and
`exclude_outside=1`: the filter of PIL and torchvision), `x / 255`, then `(x - mean) / std`;
the result feeds the model's own `images` input. The output stays `probs` at the input
size, to be resized to each image by the client.

The resize runs in float, without the uint8 rounding between the horizontal and the vertical
pass that training's resize has, so the tensor differs from `runtime.preprocess.preprocess`
by about one grey level: at most 1.0 on the 400 butterfly photos at 128 and 256 px, 1.05 on
generated images (`tests/test_triton.py` holds it).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.metadata import PIXELS_NAME, ModelMetadata

PREFIX = "segkit_pre_"


def preprocessing_graph(meta: ModelMetadata, opset: int, ir_version: int) -> onnx.ModelProto:
    """A model `pixels` (uint8 NHWC) -> `normalized` (float32 NCHW at the input size)."""
    height, width = meta.input_size
    mean = np.asarray(meta.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta.std, np.float32).reshape(1, -1, 1, 1)
    constants = {
        "scale": 1.0 / (255.0 * std),
        "offset": mean / std,
        "hw": np.asarray([height, width], np.int64),
        "start": np.asarray([0], np.int64),
        "stop": np.asarray([2], np.int64),
    }
    initializers = [numpy_helper.from_array(v, PREFIX + k) for k, v in constants.items()]
    p = PREFIX
    nodes = [
        helper.make_node("Cast", [PIXELS_NAME], [p + "float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", [p + "float"], [p + "nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Shape", [p + "nchw"], [p + "shape"]),
        helper.make_node("Slice", [p + "shape", p + "start", p + "stop"], [p + "nc"]),
        helper.make_node("Concat", [p + "nc", p + "hw"], [p + "sizes"], axis=0),
        helper.make_node(
            "Resize",
            [p + "nchw", "", "", p + "sizes"],
            [p + "resized"],
            mode="linear",
            antialias=1,
            coordinate_transformation_mode="half_pixel",
            exclude_outside=1,  # the filter's weights renormalized at the borders, as PIL's
        ),
        helper.make_node("Mul", [p + "resized", p + "scale"], [p + "scaled"]),
        helper.make_node("Sub", [p + "scaled", p + "offset"], ["normalized"]),
    ]
    batch = "batch" if meta.dynamic_batch else meta.batch_size
    pixels = helper.make_tensor_value_info(
        PIXELS_NAME, TensorProto.UINT8, [batch, "pixel_height", "pixel_width", 3]
    )
    normalized = helper.make_tensor_value_info(
        "normalized", TensorProto.FLOAT, [batch, len(meta.mean), height, width]
    )
    graph = helper.make_graph(nodes, "segkit_preprocess", [pixels], [normalized], initializers)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version
    )


def add_preprocessing(model: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    """`model` with the preprocessing graph in front of its `images` input."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 18:
        raise ValueError(f"--preprocess needs opset 18 or newer (antialiased Resize), got {opset}")
    pre = preprocessing_graph(meta, opset, model.ir_version)
    for extra in model.opset_import:  # the merged model keeps every domain of the model
        if extra.domain not in ("", "ai.onnx"):
            pre.opset_import.append(extra)
    return onnx.compose.merge_models(pre, model, io_map=[("normalized", meta.input_name)])
