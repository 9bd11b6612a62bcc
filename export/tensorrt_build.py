"""ONNX -> serialized TensorRT engine, with an optimization profile, a timing cache and a sidecar.

Follows NVIDIA's TensorRT 10/11 Python API: `trt.Builder`, `create_network(flags)`,
`trt.OnnxParser`, `create_builder_config()`, `set_memory_pool_limit(WORKSPACE, ...)`, one
optimization profile for `images`, `create_timing_cache` / `set_timing_cache`, and
`build_serialized_network`. Precision:

- TensorRT 11 networks are always strongly typed: the engine runs in the precision of the ONNX
  graph, so an fp16 engine needs the `--fp16` ONNX export (building from `--ckpt` does that).
- TensorRT 10: an fp16 ONNX graph is built as a strongly typed network; an fp32 graph with
  `--fp16` uses the weak-typing `BuilderFlag.FP16` instead.
- fp32 engines clear `BuilderFlag.TF32` so their results stay within the 1e-3 parity tolerance.
- INT8 comes from explicit quantization only: an INT8 QDQ graph (`segexport quantize`) holds
  its scales in QuantizeLinear / DequantizeLinear nodes. TensorRT 10 builds it as a weakly
  typed network with `BuilderFlag.INT8` (and `FP16` with `--fp16`, for the float parts);
  TensorRT 11 builds it strongly typed, in the graph's own precisions. No implicit
  calibrator is ever set (`IInt8Calibrator` is deprecated). `plan_precision` decides this.

The engine and its `model.engine.json` sidecar (the ONNX metadata plus precision, profile and
TensorRT version) are written atomically.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from export.errors import ExportError
from export.onnx_export import check_writable, export_onnx, write_model_bytes
from export.params import DEFAULT_OPSET, Range
from runtime.backends.tensorrt_support import require_tensorrt, tensorrt_major
from runtime.io import atomic_write_text
from runtime.metadata import ModelMetadata, sidecar_path


@dataclass(frozen=True)
class EngineBuild:
    path: Path
    metadata: ModelMetadata

    def summary(self) -> str:
        profile = self.metadata.engine["profile"][self.metadata.input_name]
        return (
            f"wrote {self.path} and {sidecar_path(self.path).name} ({self.metadata.arch}, "
            f"{self.metadata.precision}, TensorRT {self.metadata.engine['tensorrt_version']}, "
            f"profile min {profile['min']} opt {profile['opt']} max {profile['max']})"
        )


@dataclass(frozen=True)
class PrecisionPlan:
    """How to build a graph: network typing, builder flags to set, the engine's precision."""

    strongly_typed: bool
    flags: tuple[str, ...]  # names of `trt.BuilderFlag` members to set
    precision: str


def plan_precision(major: int, graph: str, fp16: bool, source: Path) -> PrecisionPlan:
    """The build of a `graph` precision (fp32, fp16, int8) graph on TensorRT `major`."""
    if major >= 11:
        if fp16 and graph != "fp16":
            raise ExportError(
                source,
                "TensorRT 11 networks are strongly typed, so FP16 must come from the graph: "
                "export it with `segexport onnx --fp16` (or build from --ckpt with --fp16)",
            )
        return PrecisionPlan(True, (), graph)
    if graph == "int8":
        return PrecisionPlan(False, ("INT8", "FP16") if fp16 else ("INT8",), "int8")
    if graph == "fp16":
        return PrecisionPlan(True, (), "fp16")
    return PrecisionPlan(False, ("FP16",) if fp16 else (), "fp16" if fp16 else "fp32")


def read_onnx_metadata(onnx_path: Path) -> ModelMetadata:
    if not onnx_path.is_file():
        raise ExportError(onnx_path, "no such ONNX file")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ExportError(onnx_path, f"not a readable ONNX model ({err})") from err
    props = {p.key: p.value for p in model.metadata_props}
    return ModelMetadata.from_props(props, str(onnx_path))


def default_hw_ranges(metadata: ModelMetadata) -> tuple[Range, Range]:
    """Dynamic H/W default: stride to twice the input size, optimized for the input size."""
    height, width = metadata.input_size
    stride = metadata.stride
    return (stride, height, 2 * height), (stride, width, 2 * width)


def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    *,
    fp16: bool = False,
    batch: Range = (1, 4, 16),
    height: Range | None = None,
    width: Range | None = None,
    workspace_gb: float | None = None,
    timing_cache: str | os.PathLike | None = None,
) -> EngineBuild:
    """Build an engine for `onnx_path`; `height`/`width` ranges need a `--dynamic-hw` graph."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    metadata = read_onnx_metadata(onnx_path)
    batch, height, width = _profile_ranges(onnx_path, metadata, batch, height, width)
    check_writable(engine_path)
    trt = require_tensorrt(str(onnx_path))
    major = tensorrt_major(trt)
    plan = plan_precision(major, metadata.precision, fp16, onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if plan.strongly_typed and major == 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(onnx_path, f"TensorRT cannot parse the ONNX graph: {errors}")

    config = builder.create_builder_config()
    if workspace_gb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    precision = plan.precision
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    channels = len(metadata.mean)
    shapes = [(b, channels, h, w) for b, h, w in zip(batch, height, width, strict=True)]
    profile = builder.create_optimization_profile()
    profile.set_shape(metadata.input_name, *shapes)
    config.add_optimization_profile(profile)

    cache_path = (
        Path(timing_cache) if timing_cache is not None else default_timing_cache(trt.__version__)
    )
    cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
    config.set_timing_cache(config.create_timing_cache(cache_bytes), False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(
            onnx_path, "TensorRT failed to build the engine (see the TensorRT log above)"
        )
    engine_meta = metadata.replace(
        precision=precision,
        dynamic_batch=batch[0] != batch[2],
        batch_size=None if batch[0] != batch[2] else batch[0],
        dynamic_hw=height[0] != height[2] or width[0] != width[2],
        input_size=(height[1], width[1]) if metadata.dynamic_hw else metadata.input_size,
        engine={
            "tensorrt_version": trt.__version__,
            "strongly_typed": plan.strongly_typed,
            "built_from": onnx_path.name,
            "profile": {
                metadata.input_name: {
                    "min": list(shapes[0]),
                    "opt": list(shapes[1]),
                    "max": list(shapes[2]),
                }
            },
        },
    )
    write_model_bytes(engine_path, bytes(serialized))
    atomic_write_text(sidecar_path(engine_path), engine_meta.to_json())
    _save_timing_cache(config, cache_path)
    return EngineBuild(engine_path, engine_meta)


def build_engine_from_checkpoint(
    checkpoint: str | os.PathLike,
    engine_path: str | os.PathLike,
    *,
    fp16: bool = False,
    dynamic_hw: bool = False,
    opset: int = DEFAULT_OPSET,
    **build_options,
) -> EngineBuild:
    """Export the checkpoint to a temporary ONNX file (fp16 graph with `fp16`), then build."""
    require_tensorrt(str(checkpoint))
    check_writable(Path(engine_path))
    with tempfile.TemporaryDirectory(prefix="segkit-trt-") as tmp:
        onnx_path = Path(tmp) / (Path(checkpoint).stem + ".onnx")
        export_onnx(checkpoint, onnx_path, opset=opset, dynamic_hw=dynamic_hw, fp16=fp16)
        return build_engine(onnx_path, engine_path, fp16=fp16, **build_options)


def default_timing_cache(tensorrt_version: str) -> Path:
    """`$SEGKIT_CACHE` (or ~/.cache/segkit) / tensorrt-<version>.timing-cache, shared by builds."""
    root = Path(os.environ.get("SEGKIT_CACHE", Path.home() / ".cache" / "segkit"))
    return root / f"tensorrt-{tensorrt_version}.timing-cache"


def _save_timing_cache(config, path: Path) -> None:
    cache = config.get_timing_cache()
    if cache is not None:
        data = bytes(cache.serialize())
        write_model_bytes(path, data)


def _profile_ranges(
    onnx_path: Path,
    metadata: ModelMetadata,
    batch: Range,
    height: Range | None,
    width: Range | None,
) -> tuple[Range, Range, Range]:
    """Check the requested ranges against what the ONNX graph accepts."""
    if not metadata.dynamic_batch and batch != (metadata.batch_size,) * 3:
        raise ExportError(
            "--batch",
            f"{onnx_path} has a fixed batch of {metadata.batch_size}; "
            f"use --batch {metadata.batch_size}",
        )
    if metadata.dynamic_hw:
        default_h, default_w = default_hw_ranges(metadata)
        height, width = height or default_h, width or default_w
        if min(height[0], width[0]) < metadata.stride:
            raise ExportError(
                "--height/--width",
                f"the minimum must be at least the model's stride {metadata.stride}",
            )
        return batch, height, width
    if height is not None or width is not None:
        raise ExportError(
            "--dynamic-hw",
            f"{onnx_path} was exported for a fixed input size; export it with --dynamic-hw",
        )
    h, w = metadata.input_size
    return batch, (h, h, h), (w, w, w)
