"""Backends that run exported models, one per file; the model file's suffix picks one.

`open_backend(path)` returns an open `Backend`: ONNX Runtime or OpenVINO for `.onnx`,
OpenVINO for IR `.xml`, TensorRT for `.engine` / `.plan` / `.trt`. A backend module is
imported only when it is used, so a CPU machine never imports TensorRT.

`backend="auto"` picks by suffix, and for an `.onnx` file on the CPU the fastest installed
backend (`auto_backend`): OpenVINO where it is installed, else ONNX Runtime. Measured on an
AMD EPYC with AVX-512, VNNI and AVX512_BF16 (no AMX), width-64 U-Net at 256 px, batch 8,
2 threads, in one benchmark run (benchmarks/results/low-precision/): OpenVINO fp32 1.17x
ONNX Runtime fp32, OpenVINO bf16 (its `auto` there) 2.22x, OpenVINO on the INT8 QDQ model
3.84x (ONNX Runtime on it 2.59x). Where ONNX Runtime has a GPU provider
and the device is not "cpu", it stays on ONNX Runtime.
"""

from __future__ import annotations

import difflib
import importlib
import os
from pathlib import Path

from runtime.backends.base import Backend, BackendOptions
from runtime.backends.remote import is_model_url
from runtime.errors import ArgumentError, ModelError

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

# backend name -> (module, class); the suffixes each backend opens
BACKENDS = {
    "onnxruntime": ("runtime.backends.onnxruntime", "OnnxRuntimeBackend"),
    "tensorrt": ("runtime.backends.tensorrt", "TensorRTBackend"),
    "remote": ("runtime.backends.remote", "RemoteBackend"),
    "openvino": ("runtime.backends.openvino", "OpenVinoBackend"),
}
# suffix -> the backends that open it, the default first
SUFFIXES = {
    ".onnx": ("onnxruntime", "openvino"),
    ".xml": ("openvino",),
    ".engine": ("tensorrt",),
    ".plan": ("tensorrt",),
    ".trt": ("tensorrt",),
}
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def backend_name(path: str | os.PathLike, backend: str = "auto") -> str:
    """The backend for `path`: `backend` itself, or the one its suffix names when "auto" (an
    http(s) URL names the remote backend)."""
    if backend != "auto" and backend not in BACKENDS:
        raise ArgumentError("backend", _unknown(backend, ["auto", *BACKENDS]))
    if is_model_url(path):
        if backend not in ("auto", "remote"):
            raise ModelError(path, f"a URL is served by the remote backend, not {backend}")
        return "remote"
    path = Path(path)
    suffix = path.suffix.lower()
    by_suffix = SUFFIXES.get(suffix)
    if by_suffix is None:
        known = ", ".join(SUFFIXES)
        raise ModelError(
            path, f"unknown model type {suffix or '(no suffix)'!r}; expected one of {known}"
        )
    if backend == "auto":
        return by_suffix[0]
    if backend not in by_suffix:
        opens = ", ".join(s for s, names in SUFFIXES.items() if backend in names)
        raise ModelError(path, f"the {backend} backend opens {opens} files, not {suffix}")
    return backend


def auto_backend(path: str | os.PathLike, device: str = "auto", precision: str = "auto") -> str:
    """The backend `backend="auto"` opens `path` on: by suffix, and for `.onnx` on the CPU the
    fastest installed one (OpenVINO when installed; see the module docstring)."""
    name = backend_name(path)
    if name != "onnxruntime" or device == "cuda":
        return name
    if precision == "bf16":
        return "openvino"  # only OpenVINO runs a float graph in bf16
    from runtime.backends.openvino import openvino_available

    if not openvino_available():
        return name
    if device == "auto":
        import onnxruntime as ort

        if any(p in ort.get_available_providers() for p in GPU_PROVIDERS):
            return name  # a GPU may be there: ONNX Runtime's CUDA / TensorRT providers
    return "openvino"


def open_backend(
    path: str | os.PathLike,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    strict: bool = False,
    precision: str = "auto",
) -> Backend:
    """Open `path` on `backend` ("auto": see `auto_backend`) and `device` ("auto", "cpu",
    "cuda").

    `threads` sets the CPU inference threads (ONNX Runtime's intra-op threads, OpenVINO's
    INFERENCE_NUM_THREADS; None: the library's default); `strict=True` raises instead of
    warning when the session falls back to fewer execution providers; `precision` ("auto",
    "fp32", "bf16") is OpenVINO's inference precision (the others run the graph's own).
    """
    if device not in DEVICES:
        raise ArgumentError("device", _unknown(device, DEVICES))
    if threads is not None and not (_is_int(threads) and threads >= 1):
        raise ArgumentError("threads", f"expected None or an integer >= 1, got {threads!r}")
    if precision not in PRECISIONS:
        raise ArgumentError("precision", _unknown(precision, PRECISIONS))
    name = (
        auto_backend(path, device, precision) if backend == "auto" else backend_name(path, backend)
    )
    if precision == "bf16" and name != "openvino":
        raise ArgumentError(
            "precision", f"bf16 runs on the openvino backend only, not on {name} (use 'auto')"
        )
    module, cls = BACKENDS[name]
    backend_class = getattr(importlib.import_module(module), cls)
    options = BackendOptions(device=device, threads=threads, strict=strict, precision=precision)
    return backend_class(path, options)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown(value: object, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown value {value!r}; expected one of {', '.join(choices)}{hint}"


__all__ = [
    "BACKENDS",
    "DEVICES",
    "PRECISIONS",
    "SUFFIXES",
    "Backend",
    "BackendOptions",
    "auto_backend",
    "backend_name",
    "open_backend",
]
