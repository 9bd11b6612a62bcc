"""Optional graph simplification: fold constants and drop redundant nodes.

Uses `onnxslim` when it is installed, else `onnxsim`, else a small built-in pass on onnx's own
tools (shape inference plus `onnx.reference` to evaluate constant subgraphs). The built-in
pass folds what is constant (including the shape arithmetic of the input padding when H and W
are fixed), removes Identity nodes and unused initializers, and never changes the graph's
inputs, outputs or the precision of its computations. ONNX Runtime's offline optimizer is not
used: its saved graph bakes in CPU-specific rewrites (for float16 graphs it inserts casts to
float32 around every op without a CPU float16 kernel).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from export.errors import ExportError

# Folded tensors larger than this stay computed at run time rather than bloating the file.
MAX_FOLDED_ELEMENTS = 1 << 20
# Ops whose output is not a function of their inputs alone.
_NONDETERMINISTIC = {
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
}


@dataclass(frozen=True)
class SimplifyResult:
    model: onnx.ModelProto
    tool: str
    nodes_before: int
    nodes_after: int

    def summary(self) -> str:
        return f"simplified with {self.tool}: {self.nodes_before} -> {self.nodes_after} nodes"


def simplify(model: onnx.ModelProto) -> SimplifyResult:
    """Simplify `model` with the best available tool (see the module docstring)."""
    before = len(model.graph.node)
    if importlib.util.find_spec("onnxslim") is not None:
        import onnxslim

        slimmed = onnxslim.slim(model)
        if slimmed is None:
            raise ExportError(
                "--simplify", "onnxslim could not simplify the graph; export without --simplify"
            )
        return SimplifyResult(slimmed, "onnxslim", before, len(slimmed.graph.node))
    if importlib.util.find_spec("onnxsim") is not None:
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise ExportError(
                "--simplify",
                "onnxsim's check of the simplified graph failed; export without --simplify",
            )
        return SimplifyResult(simplified, "onnxsim", before, len(simplified.graph.node))
    folded = fold_constants(model)
    return SimplifyResult(
        folded, "onnx (built-in constant folding)", before, len(folded.graph.node)
    )


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Evaluate every node whose inputs are known constants and drop Identity nodes."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    dims = _known_dims(graph)
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    partial_shapes: dict[str, list[int | None]] = {}
    graph_outputs = {out.name for out in graph.output}
    rename: dict[str, str] = {}
    kept: list[onnx.NodeProto] = []
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))

    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
        if node.op_type == "Identity" and node.output[0] not in graph_outputs:
            rename[node.output[0]] = node.input[0]
            continue
        value = _fold(node, constants, partial_shapes, dims, opset)
        if (
            value is not None
            and value.size <= MAX_FOLDED_ELEMENTS
            and node.output[0] not in graph_outputs
        ):
            constants[node.output[0]] = value
            continue
        if node.op_type == "Shape" and node.input[0] in dims:
            partial_shapes[node.output[0]] = _slice_shape(node, dims[node.input[0]])
        kept.append(node)

    used = {name for node in kept for name in node.input} | graph_outputs
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(kept)
    del result.graph.initializer[:]
    result.graph.initializer.extend(
        numpy_helper.from_array(np.asarray(value), name)
        for name, value in constants.items()
        if name in used
    )
    del result.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(result)


def _fold(
    node: onnx.NodeProto,
    constants: dict[str, np.ndarray],
    partial_shapes: dict[str, list[int | None]],
    dims: dict[str, list[int | None]],
    opset: int,
) -> np.ndarray | None:
    """The constant value of the node's single output, or None when it is not constant."""
    if (
        len(node.output) != 1
        or node.domain not in ("", "ai.onnx")
        or node.op_type in _NONDETERMINISTIC
        or any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        )
    ):
        return None
    if node.op_type == "Shape" and node.input[0] in dims:
        shape = _slice_shape(node, dims[node.input[0]])
        return np.array(shape, dtype=np.int64) if None not in shape else None
    if node.op_type == "Gather" and node.input[0] in partial_shapes and node.input[1] in constants:
        return _gather_known_dims(node, partial_shapes[node.input[0]], constants[node.input[1]])
    inputs = [name for name in node.input if name]
    if any(name not in constants for name in inputs):
        return None
    mini = helper.make_model(
        helper.make_graph(
            [node],
            "fold",
            [],
            [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.UNDEFINED, None)],
            [numpy_helper.from_array(np.asarray(constants[name]), name) for name in set(inputs)],
        ),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    return np.asarray(ReferenceEvaluator(mini).run(None, {})[0])


def _known_dims(graph: onnx.GraphProto) -> dict[str, list[int | None]]:
    """Per tensor, its dimensions where shape inference knows them (None where symbolic)."""
    known = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            known[info.name] = [
                d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim
            ]
    return known


def _slice_shape(node: onnx.NodeProto, shape: list[int | None]) -> list[int | None]:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return shape[attrs.get("start", 0) : attrs.get("end", len(shape))]


def _gather_known_dims(
    node: onnx.NodeProto, shape: list[int | None], indices: np.ndarray
) -> np.ndarray | None:
    axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
    if axis != 0:
        return None
    picked = [shape[int(i)] for i in np.asarray(indices).reshape(-1)]
    if None in picked:
        return None
    return np.array(picked, dtype=np.int64).reshape(np.asarray(indices).shape)
