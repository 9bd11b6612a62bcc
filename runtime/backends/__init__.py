"""Backends that run exported models, one per file; the model file's suffix picks one.

`open_backend(path)` returns an open `Backend`: ONNX Runtime for `.onnx`, TensorRT for
`.engine` / `.plan` / `.trt`. A backend module is imported only when it is used, so a CPU
machine never imports TensorRT.
"""

from __future__ import annotations

import difflib
import importlib
import os
from pathlib import Path

from runtime.backends.base import Backend, BackendOptions
from runtime.backends.remote import is_model_url
from runtime.errors import ArgumentError, ModelError

# backend name -> (module, class); the suffixes each backend opens
BACKENDS = {
    "onnxruntime": ("runtime.backends.onnxruntime", "OnnxRuntimeBackend"),
    "tensorrt": ("runtime.backends.tensorrt", "TensorRTBackend"),
    "remote": ("runtime.backends.remote", "RemoteBackend"),
}
SUFFIXES = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt"}
DEVICES = ("auto", "cpu", "cuda")


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
    if backend not in ("auto", by_suffix):
        opens = ", ".join(s for s, b in SUFFIXES.items() if b == backend)
        raise ModelError(path, f"the {backend} backend opens {opens} files, not {suffix}")
    return by_suffix


def open_backend(
    path: str | os.PathLike,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    strict: bool = False,
) -> Backend:
    """Open `path` on `backend` ("auto": by suffix) and `device` ("auto", "cpu", "cuda").

    `threads` sets ONNX Runtime's intra-op thread count (None: its default); `strict=True`
    raises instead of warning when the session falls back to fewer execution providers.
    """
    if device not in DEVICES:
        raise ArgumentError("device", _unknown(device, DEVICES))
    if threads is not None and not (_is_int(threads) and threads >= 1):
        raise ArgumentError("threads", f"expected None or an integer >= 1, got {threads!r}")
    name = backend_name(path, backend)
    module, cls = BACKENDS[name]
    backend_class = getattr(importlib.import_module(module), cls)
    return backend_class(path, BackendOptions(device=device, threads=threads, strict=strict))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown(value: object, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown value {value!r}; expected one of {', '.join(choices)}{hint}"


__all__ = [
    "BACKENDS",
    "DEVICES",
    "SUFFIXES",
    "Backend",
    "BackendOptions",
    "backend_name",
    "open_backend",
]
