"""Run an exported `.onnx` model with ONNX Runtime.

Execution providers are tried in the order TensorRT EP, CUDA EP, CPU EP, keeping those this
onnxruntime build offers (`device="cpu"`: the CPU EP only; `device="cuda"`: the GPU ones
first). ONNX Runtime silently drops a provider it cannot start (missing CUDA or TensorRT
libraries, no GPU), so the session's real providers are compared with the requested ones:
a fallback warns (`BackendFallbackWarning`) or, with `strict=True`, raises; `device="cuda"`
that ends up without a GPU provider always raises. On a GPU, inputs and outputs go through
an IOBinding: the batch is copied to the device once and the output once back.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.backends.base import DEFAULT_OPTIONS, Backend, BackendOptions
from runtime.errors import BackendFallbackWarning, ModelError
from runtime.metadata import ModelMetadata

TENSORRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
GPU_PROVIDERS = (TENSORRT_EP, CUDA_EP)


def requested_providers(device: str) -> list[str]:
    """The providers to ask for on `device` ("auto", "cpu", "cuda"), filtered by availability."""
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU_EP]
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if device == "cuda" and not gpu:
        raise ModelError(
            "device",
            "device='cuda' but this onnxruntime has no CUDA or TensorRT execution provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu on a machine with "
            "an NVIDIA GPU, or use device='cpu'",
        )
    return [*gpu, CPU_EP]


def session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


class OnnxRuntimeBackend(Backend):
    """An ONNX Runtime session over an exported model, metadata read from its `metadata_props`."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, options: BackendOptions = DEFAULT_OPTIONS):
        device, threads, strict = options.device, options.threads, options.strict
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(self.path, "no such model file")
        requested = requested_providers(device)
        try:
            self.session = ort.InferenceSession(
                str(self.path), session_options(threads), providers=requested
            )
        except Exception as err:  # onnxruntime's exceptions derive from Exception only
            raise ModelError(self.path, f"not a loadable ONNX model ({err})") from err
        self.providers = self.session.get_providers()
        self._check_providers(requested, device, strict)
        self.device = "cuda" if self.providers[0] in GPU_PROVIDERS else "cpu"
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props, str(self.path))
        self._check_io()
        if not self.metadata.dynamic_batch:
            self.min_batch = self.max_batch = self.metadata.batch_size

    def _check_providers(self, requested: list[str], device: str, strict: bool) -> None:
        missing = [p for p in requested if p not in self.providers]
        if not missing:
            return
        message = (
            f"asked ONNX Runtime for {', '.join(requested)} but the session runs on "
            f"{', '.join(self.providers)} ({', '.join(missing)} could not start)"
        )
        if device == "cuda" and not any(p in GPU_PROVIDERS for p in self.providers):
            raise ModelError("device", f"device='cuda': {message}")
        if strict:
            raise ModelError(self.path, f"{message}; strict=True forbids a fallback")
        warnings.warn(f"{self.path}: {message}", BackendFallbackWarning, stacklevel=4)

    def _check_io(self) -> None:
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.check_tensor_names(inputs, outputs, "graph")

    def _run(self, images: np.ndarray) -> np.ndarray:
        meta = self.metadata
        if self.device == "cpu":
            (probs,) = self.session.run([meta.output_name], {meta.input_name: images})
            return probs
        binding = self.session.io_binding()  # one per call: bindings are not shared by threads
        binding.bind_cpu_input(meta.input_name, images)
        binding.bind_output(meta.output_name, "cuda")
        self.session.run_with_iobinding(binding)
        (probs,) = binding.copy_outputs_to_cpu()
        return probs

    @property
    def closed(self) -> bool:
        return self.session is None

    def close(self) -> None:
        self.session = None
