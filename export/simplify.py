"""Graph simplification with onnxslim: fold constants and drop redundant nodes.

ONNX Runtime's offline optimizer is not used: its saved graph bakes in CPU-specific rewrites
(for float16 graphs it inserts casts to float32 around every op without a CPU float16 kernel).
The model's `metadata_props` (the `segkit.*` keys) are kept: onnxslim 0.1 keeps them, and any
it dropped are put back, so a simplified model describes itself like the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnxslim

from export.errors import ExportError


@dataclass(frozen=True)
class SimplifyResult:
    model: onnx.ModelProto
    tool: str
    nodes_before: int
    nodes_after: int

    def summary(self) -> str:
        return f"simplified with {self.tool}: {self.nodes_before} -> {self.nodes_after} nodes"


def simplify(model: onnx.ModelProto) -> SimplifyResult:
    """`model` simplified by onnxslim, its metadata_props kept."""
    before = len(model.graph.node)
    props = {p.key: p.value for p in model.metadata_props}
    slimmed = onnxslim.slim(model)
    if slimmed is None:
        raise ExportError(
            "--simplify", "onnxslim could not simplify the graph; export without --simplify"
        )
    kept = {p.key for p in slimmed.metadata_props}
    for key, value in props.items():
        if key not in kept:
            slimmed.metadata_props.add(key=key, value=value)
    return SimplifyResult(slimmed, "onnxslim", before, len(slimmed.graph.node))
