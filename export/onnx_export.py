"""Checkpoint -> ONNX: probabilities named `probs`, input `images`, metadata embedded.

Two exporters of `torch.onnx.export` are supported:

- `dynamo` (torch's default): `torch.export` with dynamic dims, then ONNX Script's torchlib.
  It needs the `onnxscript` package.
- `torchscript` (the legacy tracer, `dynamo=False`): needs nothing beyond torch.

`auto` picks `dynamo` when onnxscript is importable and `torchscript` otherwise. Both trace the
models' internal padding symbolically, so `--dynamic-hw` graphs accept any H and W of at least
the model's stride (16, or 32 for the ResNet encoder); the metadata records that stride.

`--fp16` graphs hold float16 weights and activations with float32 `images` and `probs` (see
`export.wrapper`). They run on ONNX Runtime's CPU provider as they are: for ops without a CPU
float16 kernel, ORT inserts casts to float32 when it loads the session, so the file itself
stays a plain float16 graph for GPU runtimes and TensorRT.

The file is written only after the graph passed `onnx.checker`, carries its metadata and ran
once in ONNX Runtime (at the example size, and at a second size for dynamic H/W): an existing
file is replaced only by a complete, checked one.
"""

from __future__ import annotations

import importlib.util
import io
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from export.errors import ExportError
from export.params import DEFAULT_OPSET, EXPORTERS
from export.simplify import simplify as simplify_graph
from export.source import ExportSource, load_source
from export.wrapper import ProbabilityModel
from runtime.io import atomic_write
from runtime.metadata import INPUT_NAME, OUTPUT_NAME, PIXELS_NAME, ModelMetadata

# Opsets each exporter produces without version conversion: torchlib is written for opset 18
# (older requests go through a lossy down-conversion); the TorchScript exporter stops at 20.
SUPPORTED_OPSETS = {"dynamo": range(18, 24), "torchscript": range(13, 21)}


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote."""

    path: Path
    metadata: ModelMetadata
    seconds: float
    nodes: int
    simplify_summary: str | None

    def summary(self) -> str:
        meta = self.metadata
        batch = "dynamic batch" if meta.dynamic_batch else f"batch {meta.batch_size}"
        hw = (
            f"dynamic H/W >= {meta.stride}"
            if meta.dynamic_hw
            else f"{meta.input_size[0]}x{meta.input_size[1]}"
        )
        size_mb = self.path.stat().st_size / 1e6
        return (
            f"wrote {self.path} ({meta.arch}, {meta.precision}, opset {meta.opset}, {batch}, {hw}, "
            f"{meta.exporter} exporter, {self.nodes} nodes, {size_mb:.1f} MB) "
            f"in {self.seconds:.1f} s"
        )


def default_onnx_path(checkpoint: str | os.PathLike) -> Path:
    """`runs/x/best.pth` -> `runs/x/best.onnx`."""
    return Path(checkpoint).with_suffix(".onnx")


def resolve_exporter(exporter: str) -> str:
    """The concrete exporter for `auto` / `dynamo` / `torchscript`."""
    if exporter not in EXPORTERS:
        raise ExportError(
            "--exporter", f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}"
        )
    has_onnxscript = importlib.util.find_spec("onnxscript") is not None
    if exporter == "auto":
        return "dynamo" if has_onnxscript else "torchscript"
    if exporter == "dynamo" and not has_onnxscript:
        raise ExportError(
            "--exporter",
            "the dynamo exporter needs the onnxscript package (pip install onnxscript); "
            "or use --exporter torchscript",
        )
    return exporter


def check_opset(opset: int, exporter: str) -> None:
    supported = SUPPORTED_OPSETS[exporter]
    if opset not in supported:
        raise ExportError(
            "--opset",
            f"unsupported opset {opset}: the {exporter} exporter supports opsets "
            f"{supported.start}-{supported.stop - 1} (default {DEFAULT_OPSET})",
        )


def export_onnx(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    dynamic_hw: bool = False,
    fp16: bool = False,
    simplify: bool = False,
    exporter: str = "auto",
    preprocess: bool = False,
) -> OnnxExport:
    """Export a checkpoint to ONNX. `batch=None` means a dynamic batch, an int a fixed one.

    `preprocess=True` puts the preprocessing in the graph (`export.preprocess_graph`): the
    input is then `pixels`, uint8 NHWC RGB of any size.

    Raises `ExportError` / `CheckpointError` naming the file or option for bad input.
    """
    started = time.perf_counter()
    exporter = resolve_exporter(exporter)
    check_opset(opset, exporter)
    if batch is not None and batch < 1:
        raise ExportError("--batch", f"batch size must be >= 1 or 'dynamic', got {batch}")
    if preprocess and dynamic_hw:
        raise ExportError(
            "--preprocess", "resizes to the model's input size inside; drop --dynamic-hw"
        )
    output = Path(output) if output is not None else default_onnx_path(checkpoint)
    check_writable(output)
    source = load_source(checkpoint)
    metadata = source.metadata(
        precision="fp16" if fp16 else "fp32",
        dynamic_batch=batch is None,
        batch_size=batch,
        dynamic_hw=dynamic_hw,
        opset=opset,
        exporter=exporter,
    )
    if dynamic_hw and min(metadata.input_size) < metadata.stride:
        raise ExportError(
            checkpoint,
            f"--dynamic-hw needs an input size of at least the stride ({metadata.stride}); "
            f"the checkpoint's is {metadata.input_size[0]}x{metadata.input_size[1]}",
        )
    try:
        model = trace_to_onnx(source, metadata)
    except Exception as err:  # torch.export / torch.onnx raise many unrelated exception types
        raise ExportError(checkpoint, _export_failure(metadata, err)) from err
    summary = None
    if simplify:
        result = simplify_graph(model)
        model, summary = result.model, result.summary()
    declare_io_shapes(model, metadata)
    if preprocess:
        model, metadata = with_preprocessing(model, metadata)
    embed_metadata(model, metadata)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ExportError(output, f"the exported graph failed onnx.checker: {err}") from err
    data = model.SerializeToString()
    smoke_test(data, metadata, output)
    write_model_bytes(output, data)
    return OnnxExport(
        output, metadata, time.perf_counter() - started, len(model.graph.node), summary
    )


def with_preprocessing(
    model: onnx.ModelProto, metadata: ModelMetadata
) -> tuple[onnx.ModelProto, ModelMetadata]:
    """The graph with its preprocessing inside, and its metadata saying so."""
    from export.preprocess_graph import add_preprocessing

    try:
        merged = add_preprocessing(model, metadata)
    except ValueError as err:
        raise ExportError("--preprocess", str(err)) from err
    return merged, metadata.replace(preprocess=True, input_name=PIXELS_NAME)


def trace_to_onnx(source: ExportSource, metadata: ModelMetadata) -> onnx.ModelProto:
    """Run `torch.onnx.export` on the probability wrapper of the source model."""
    wrapper = ProbabilityModel(source.model, half=metadata.precision == "fp16").eval()
    height, width = metadata.input_size
    # A dynamic batch is traced with 2 samples: torch.export specialises dims of size 0 or 1.
    example = torch.rand(metadata.batch_size or 2, 3, height, width)
    axes = {}
    if metadata.dynamic_batch:
        axes[0] = "batch"
    if metadata.dynamic_hw:
        axes.update({2: "height", 3: "width"})
    kwargs = {
        "input_names": [INPUT_NAME],
        "output_names": [OUTPUT_NAME],
        "opset_version": metadata.opset,
    }
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter warns that it is legacy, and its tracer that shape arithmetic is
        # traced; both are expected here (the shape arithmetic is exported as graph ops).
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        if metadata.exporter == "dynamo":
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                dynamic_shapes={"images": axes} if axes else None,
                external_data=False,
                optimize=True,
                verbose=False,
                **kwargs,
            )
            return program.model_proto
        buffer = io.BytesIO()
        torch.onnx.export(
            wrapper,
            (example,),
            buffer,
            dynamo=False,
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if axes else None,
            do_constant_folding=True,
            **kwargs,
        )
        return onnx.load_from_string(buffer.getvalue())


def _export_failure(metadata: ModelMetadata, err: Exception) -> str:
    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    hint = (
        "try --exporter torchscript" if metadata.exporter == "dynamo" else "try --exporter dynamo"
    )
    if metadata.dynamic_hw:
        hint += (
            f", or export without --dynamic-hw (dynamic H/W graphs support H, W >= "
            f"{metadata.stride}, traced at {metadata.input_size[0]}x{metadata.input_size[1]})"
        )
    return (
        f"torch.onnx ({metadata.exporter} exporter, opset {metadata.opset}) could not export "
        f"{metadata.arch}: {type(err).__name__}: {first_line}; {hint}"
    )


def declare_io_shapes(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Set the declared shapes of `images` (N, 3, H, W) and `probs` (N, C, H, W) in the graph."""
    batch = "batch" if metadata.dynamic_batch else metadata.batch_size
    height, width = ("height", "width") if metadata.dynamic_hw else metadata.input_size
    for value, channels in (
        (model.graph.input[0], len(metadata.mean)),
        (model.graph.output[0], metadata.num_classes),
    ):
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for size in (batch, channels, height, width):
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = int(size)


def embed_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Replace the model's `metadata_props` with the segkit metadata and describe the I/O."""
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata.to_props())
    model.producer_name = "segkit"
    model.producer_version = metadata.project_version
    if metadata.preprocess:
        given = f"Input '{PIXELS_NAME}': (N, H, W, 3) uint8 RGB of any size, preprocessed inside. "
    else:
        given = (
            f"Input '{INPUT_NAME}': (N, 3, H, W) float32, RGB, /255, normalized with mean "
            f"{list(metadata.mean)} and std {list(metadata.std)}. "
        )
    model.doc_string = (
        f"{metadata.arch} segmentation. {given}"
        f"Output '{OUTPUT_NAME}': (N, {metadata.num_classes}, H, W) float32 "
        f"{metadata.output_kind} probabilities."
    )


def smoke_test(data: bytes, metadata: ModelMetadata, output: Path) -> None:
    """Run the serialized graph once in ONNX Runtime (twice for dynamic H/W) and check the shape."""
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for every kind of bad graph
        raise ExportError(output, f"ONNX Runtime cannot load the exported graph: {err}") from err
    height, width = metadata.input_size
    sizes = [(height, width)]
    if metadata.dynamic_hw:
        sizes.append((height + metadata.stride + 1, width + 2 * metadata.stride - 1))
    batch = metadata.batch_size or 1
    rng = np.random.default_rng(0)
    for h, w in sizes:
        if metadata.preprocess:  # raw pixels of another size than the model's
            images = rng.integers(0, 256, (batch, h + 7, w + 3, 3), dtype=np.uint8)
        else:
            images = rng.standard_normal((batch, len(metadata.mean), h, w), dtype=np.float32)
        try:
            (probs,) = session.run([OUTPUT_NAME], {metadata.input_name: images})
        except Exception as err:
            raise ExportError(
                output, f"the exported graph fails in ONNX Runtime at {h}x{w}: {err}"
            ) from err
        expected = (batch, metadata.num_classes, h, w)
        if probs.shape != expected or probs.dtype != np.float32 or not np.isfinite(probs).all():
            raise ExportError(
                output,
                f"the exported graph gave {probs.dtype} {probs.shape} for a {h}x{w} input, "
                f"expected finite float32 {expected}",
            )


def check_writable(path: Path) -> None:
    """Fail early, naming the path, when the output cannot be written (before a slow export)."""
    if path.is_dir():
        raise ExportError(path, "output path is a directory")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ExportError(path, f"cannot create the output folder: {blocker} is a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as err:
        raise ExportError(path, f"cannot write the output file ({err.strerror or err})") from err
    os.close(handle)
    os.unlink(probe)


def write_model_bytes(path: Path, data: bytes) -> None:
    """Write atomically (temporary file, fsync, rename); raise `ExportError` naming the path."""
    try:
        atomic_write(path, lambda handle: handle.write(data))
    except OSError as err:
        raise ExportError(path, f"cannot write the output file ({err.strerror or err})") from err
