"""`segexport triton`: a Triton Inference Server model repository for an exported model.

    REPO/NAME/config.pbtxt
    REPO/NAME/1/model.onnx        (or model.plan for a TensorRT engine)

The configuration is written from the model file itself, never by hand: the platform
(`onnxruntime_onnx`, `tensorrt_plan`), input and output names, datatypes and dims (the
batch dimension left to `max_batch_size` when the model's batch is dynamic; -1 for dynamic
height and width), `dynamic_batching` with preferred batch sizes, an `instance_group`, and
the segkit metadata as `parameters` (`segkit.<field>` -> its JSON text), so clients can read
the preprocessing facts from Triton's model configuration. A model with a fixed batch gets
`max_batch_size: 0` and its full shape. The text is checked by parsing it with Triton's own
`ModelConfig` protobuf when tritonclient is installed. Files are written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportError
from runtime.backends import backend_name
from runtime.io import atomic_write, atomic_write_text
from runtime.metadata import ModelMetadata, sidecar_path

PLATFORMS = {
    "onnxruntime": ("onnxruntime_onnx", "model.onnx"),
    "tensorrt": ("tensorrt_plan", "model.plan"),
}
DATATYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8"}


@dataclass(frozen=True)
class TritonRepository:
    config: Path
    model: Path
    text: str

    def summary(self) -> str:
        return f"wrote {self.config} and {self.model}"


def write_repository(
    model: str | os.PathLike,
    repo: str | os.PathLike,
    *,
    name: str | None = None,
    max_batch: int = 8,
    instances: int = 1,
    kind: str = "auto",
    preprocess: bool = False,
) -> TritonRepository:
    """Write the repository of `model` (.onnx, or .engine with its .json sidecar) in `repo`.

    `preprocess=True` puts the preprocessing into an ONNX graph first (`--preprocess`), so
    clients in any language send raw uint8 RGB pixels."""
    model = Path(model)
    meta = read_metadata(model)
    backend = backend_name(model)
    data = None
    if preprocess and not meta.preprocess:
        if backend != "onnxruntime":
            raise ExportError(
                "--preprocess", "needs an .onnx model (engines are built as they are)"
            )
        data, meta = _preprocessed(model, meta)
    platform, filename = PLATFORMS[backend]
    name = name or model.stem
    if kind == "auto":
        kind = "KIND_GPU" if backend == "tensorrt" else "KIND_CPU"
    text = config_text(meta, name, platform, max_batch, instances, kind)
    check_config(text, name)
    folder = Path(repo) / name
    target = folder / "1" / filename
    if data is None:
        atomic_write(target, lambda handle: _copy(model, handle))
    else:
        atomic_write(target, lambda handle: handle.write(data))
    atomic_write_text(folder / "config.pbtxt", text)
    return TritonRepository(folder / "config.pbtxt", target, text)


def read_metadata(model: Path) -> ModelMetadata:
    """The segkit metadata of an .onnx file or an engine's sidecar (ExportError otherwise)."""
    if not model.is_file():
        raise ExportError(model, "no such model file")
    if backend_name(model) == "tensorrt":
        return ModelMetadata.read_json(sidecar_path(model))
    import onnx

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ExportError(model, f"not a readable ONNX model ({err})") from err
    return ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props}, str(model))


def config_text(
    meta: ModelMetadata, name: str, platform: str, max_batch: int, instances: int, kind: str
) -> str:
    """config.pbtxt of `meta` (see the module docstring)."""
    batched = meta.dynamic_batch
    height, width = (-1, -1) if meta.dynamic_hw else meta.input_size
    leading = [] if batched else [meta.batch_size]
    if meta.preprocess:
        dims_in, input_type = [*leading, -1, -1, 3], DATATYPES["uint8"]
    else:
        dims_in, input_type = [*leading, len(meta.mean), height, width], DATATYPES["float32"]
    dims_out = [*leading, meta.num_classes, height, width]
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch if batched else 0}",
        _tensor("input", meta.input_name, input_type, dims_in),
        _tensor("output", meta.output_name, DATATYPES["float32"], dims_out),
    ]
    if batched:
        preferred = sorted({b for b in (1, 2, 4, 8, 16, 32, max_batch) if b <= max_batch})
        lines.append(
            "dynamic_batching {\n"
            f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
            "  max_queue_delay_microseconds: 1000\n}"
        )
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    for key, value in sorted(meta.to_props().items()):
        lines.append(
            f'parameters {{\n  key: "{key}"\n  value: {{ string_value: {json.dumps(value)} }}\n}}'
        )
    return "\n".join(lines) + "\n"


def _tensor(kind: str, name: str, datatype: str, dims: list[int]) -> str:
    return (
        f'{kind} [\n  {{\n    name: "{name}"\n    data_type: {datatype}\n'
        f"    dims: [ {', '.join(map(str, dims))} ]\n  }}\n]"
    )


def check_config(text: str, name: str) -> None:
    """Parse `text` with Triton's ModelConfig protobuf (tritonclient), when it is installed."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return
    try:
        text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as err:
        raise ExportError(name, f"the generated config.pbtxt does not parse: {err}") from err


def _preprocessed(model: Path, meta: ModelMetadata) -> tuple[bytes, ModelMetadata]:
    """The .onnx file with its preprocessing inside, serialized, and its metadata."""
    import onnx

    from export.onnx_export import embed_metadata, with_preprocessing

    merged, meta = with_preprocessing(onnx.load(str(model)), meta)
    embed_metadata(merged, meta)
    return merged.SerializeToString(), meta


def _copy(source: Path, handle) -> None:
    with open(source, "rb") as data:
        shutil.copyfileobj(data, handle, 1 << 20)
