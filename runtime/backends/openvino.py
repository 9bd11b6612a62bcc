"""Run `.onnx` files (fp32, fp16, INT8 QDQ) and OpenVINO IR (`.xml` + `.bin`) with OpenVINO.

`precision` picks the inference precision of the float parts of the graph: "bf16" sets
`INFERENCE_PRECISION_HINT=bf16`, "fp32" sets f32, "auto" is bf16 where the CPU has it in
hardware (AVX512_BF16 or AMX, and OpenVINO lists BF16 in `OPTIMIZATION_CAPABILITIES`) and fp32
elsewhere. An INT8 QDQ graph runs its quantized convolutions in int8 whatever the hint.
The segkit metadata comes from the model's `rt_info`: OpenVINO's ONNX reader keeps an ONNX
file's `metadata_props` under `framework`, and `ov.save_model` writes them into the IR.

Compiled models are cached in `$SEGKIT_CACHE/openvino` (default `~/.cache/segkit/openvino`,
`CACHE_DIR`), so a second open of the same model skips compilation. `run` may be called from
several threads: each thread has its own infer request of the one compiled model.
OpenVINO is an optional dependency (`pip install openvino`), imported only when used.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import DEFAULT_OPTIONS, Backend, BackendOptions
from runtime.cpu import has_native_bf16
from runtime.errors import ArgumentError, ModelError
from runtime.metadata import PROP_PREFIX, ModelMetadata

INSTALL_HINT = "pip install openvino (or pip install segkit[openvino])"
PRECISIONS = ("auto", "fp32", "bf16")
HINTS = {"fp32": "f32", "bf16": "bf16"}
RT_INFO_KEY = "framework"  # where OpenVINO keeps an ONNX file's metadata_props


def import_openvino(subject: str | os.PathLike = "backend") -> Any:
    """The `openvino` module, or a `ModelError` that says how to install it."""
    try:
        return importlib.import_module("openvino")
    except ImportError as err:
        raise ModelError(
            subject, f"the openvino backend needs OpenVINO, which is not installed ({INSTALL_HINT})"
        ) from err


def openvino_available() -> bool:
    """Whether OpenVINO can be imported here (imports it: `auto` is about to use it)."""
    try:
        import_openvino()
    except ModelError:
        return False
    return True


def cache_dir() -> Path:
    root = os.environ.get("SEGKIT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "segkit") / "openvino"


def resolve_precision(precision: str, core: Any) -> str:
    """ "fp32" or "bf16" for `precision` ("auto": bf16 where this CPU has it natively)."""
    if precision not in PRECISIONS:
        raise ArgumentError(
            "precision", f"expected one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    if precision != "auto":
        return precision
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "bf16" if "BF16" in capabilities and has_native_bf16() else "fp32"


def read_metadata(model: Any, source: str) -> ModelMetadata:
    """The segkit metadata of an OpenVINO model, from its rt_info (see the module docstring)."""
    props = {}
    if model.has_rt_info([RT_INFO_KEY]):
        for key in model.get_rt_info()[RT_INFO_KEY]:
            if key.startswith(PROP_PREFIX):
                props[key] = model.get_rt_info([RT_INFO_KEY, key]).astype(str)
    return ModelMetadata.from_props(props, source)


def write_metadata(model: Any, metadata: ModelMetadata) -> None:
    """Put the segkit metadata into the model's rt_info, where `read_metadata` finds it."""
    for key, value in metadata.to_props().items():
        model.set_rt_info(value, [RT_INFO_KEY, key])


class OpenVinoBackend(Backend):
    """An OpenVINO compiled model on the CPU, metadata read from the model's rt_info."""

    name = "openvino"

    def __init__(self, path: str | os.PathLike, options: BackendOptions = DEFAULT_OPTIONS):
        self.path = Path(path)
        if options.device == "cuda":
            raise ModelError("device", "the openvino backend runs on the CPU; use device='cpu'")
        ov = import_openvino(self.path)
        if not self.path.is_file():
            raise ModelError(self.path, "no such model file")
        if self.path.suffix.lower() == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise ModelError(
                self.path, f"the IR's weights {self.path.with_suffix('.bin')} are missing"
            )
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as err:  # OpenVINO raises RuntimeError subclasses of its own
            kind = "ONNX model" if self.path.suffix.lower() == ".onnx" else "OpenVINO IR"
            raise ModelError(self.path, f"not a loadable {kind} ({_reason(err)})") from err
        self.metadata = read_metadata(model, str(self.path))
        self._check_io(model)
        self.hint = resolve_precision(options.precision, core)
        self.compiled = core.compile_model(model, "CPU", self._config(options))
        self.threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        used = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        float_precision = "bf16" if used == ov.Type.bf16 else "fp32"
        self._precision = "int8" if self.metadata.precision == "int8" else float_precision
        self.device = "cpu"
        self._local = threading.local()
        if not self.metadata.dynamic_batch:
            self.min_batch = self.max_batch = self.metadata.batch_size

    def _config(self, options: BackendOptions) -> dict[str, Any]:
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": HINTS[self.hint],
            "CACHE_DIR": str(cache_dir()),
        }
        if options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(options.threads)
        return config

    def _check_io(self, model: Any) -> None:
        inputs = [i.get_any_name() for i in model.inputs]
        outputs = [o.get_any_name() for o in model.outputs]
        self.check_tensor_names(inputs, outputs, "graph")

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def _run(self, images: np.ndarray) -> np.ndarray:
        request = self._request()
        request.infer({0: images})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    @property
    def precision(self) -> str:
        """int8 for a QDQ model, else the float precision the compiled model uses."""
        return self._precision

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.device}, {self.precision}"
        return f"{type(self).__name__}({str(self.path)!r}, {state})"

    @property
    def closed(self) -> bool:
        return self.compiled is None

    def close(self) -> None:
        self.compiled = None
        self._local = threading.local()


def _reason(err: Exception) -> str:
    """The line of an OpenVINO exception that says what is wrong (not where in its C++)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception from src/")]
    return lines[0] if lines else type(err).__name__


def save_ir(model_path: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Convert an exported `.onnx` to OpenVINO IR (`output` .xml + .bin), metadata kept,
    weights as they are (no fp16 compression)."""
    ov = import_openvino(model_path)
    output = Path(output)
    model = ov.Core().read_model(str(model_path))
    write_metadata(model, read_metadata(model, str(model_path)))
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.") as tmp:
        staged = Path(tmp) / output.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(staged, output)  # the .xml last: a reader never finds it without its .bin
    return output


__all__ = ["OpenVinoBackend", "import_openvino", "openvino_available", "save_ir"]
