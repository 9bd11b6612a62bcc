"""Run a serialized TensorRT engine (`.engine`) with its `model.engine.json` sidecar.

TensorRT 10/11 name-based I/O: `context.set_input_shape`, `set_tensor_address`,
`execute_async_v3(stream)`; device buffers and the stream come from cuda-python (no torch).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from export.errors import ExportError
from export.runners.base import Runner
from export.tensorrt_support import cuda_check, require_cudart, require_tensorrt
from runtime.metadata import ModelMetadata, sidecar_path


class TensorRTRunner(Runner):
    """A TensorRT execution context on the current CUDA device; call `close()` to free it."""

    backend = "tensorrt"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self._stream = None
        if not self.path.is_file():
            raise ExportError(self.path, "no such engine file")
        self.metadata = ModelMetadata.read_json(sidecar_path(self.path))
        self.trt = require_tensorrt(str(self.path))
        built_with = self.metadata.engine.get("tensorrt_version")
        if built_with != self.trt.__version__:
            raise ExportError(
                self.path,
                f"engine was built with TensorRT {built_with} but TensorRT "
                f"{self.trt.__version__} is installed; engines only run on the TensorRT "
                "version (and GPU) that built them: rebuild it with `segexport trt`",
            )
        logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._runtime = self.trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ExportError(
                self.path,
                "TensorRT could not deserialize the engine (built for another TensorRT "
                "version or GPU, or the file is damaged); rebuild it with `segexport trt`",
            )
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {name: self.engine.get_tensor_mode(name) for name in names}
        inputs = [n for n in names if modes[n] == self.trt.TensorIOMode.INPUT]
        outputs = [n for n in names if modes[n] == self.trt.TensorIOMode.OUTPUT]
        if inputs != [self.metadata.input_name] or outputs != [self.metadata.output_name]:
            raise ExportError(
                self.path,
                f"engine tensors {inputs} -> {outputs} do not match the metadata "
                f"({self.metadata.input_name} -> {self.metadata.output_name})",
            )
        self.cudart = require_cudart(str(self.path))
        self.context = self.engine.create_execution_context()
        self._stream = cuda_check(self.cudart, self.cudart.cudaStreamCreate(), "cudaStreamCreate")

    def run(self, images: np.ndarray) -> np.ndarray:
        self.check_input(images)
        trt, cudart = self.trt, self.cudart
        in_name, out_name = self.metadata.input_name, self.metadata.output_name
        low, _, high = self.engine.get_tensor_profile_shape(in_name, 0)
        if any(s < lo or s > hi for s, lo, hi in zip(images.shape, low, high, strict=True)):
            raise ExportError(
                self.path,
                f"input shape {images.shape} is outside the engine's profile "
                f"{tuple(low)}..{tuple(high)}",
            )
        images = np.ascontiguousarray(
            images, dtype=trt.nptype(self.engine.get_tensor_dtype(in_name))
        )
        if not self.context.set_input_shape(in_name, images.shape):
            raise ExportError(self.path, f"TensorRT refused input shape {images.shape}")
        probs = np.empty(
            tuple(self.context.get_tensor_shape(out_name)),
            dtype=trt.nptype(self.engine.get_tensor_dtype(out_name)),
        )
        in_ptr = self._device_buffer(in_name, images.nbytes)
        out_ptr = self._device_buffer(out_name, probs.nbytes)
        h2d, d2h = (
            cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
            cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        cuda_check(
            cudart,
            cudart.cudaMemcpyAsync(in_ptr, images.ctypes.data, images.nbytes, h2d, self._stream),
            "copy in",
        )
        self.context.set_tensor_address(in_name, in_ptr)
        self.context.set_tensor_address(out_name, out_ptr)
        if not self.context.execute_async_v3(int(self._stream)):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        cuda_check(
            cudart,
            cudart.cudaMemcpyAsync(probs.ctypes.data, out_ptr, probs.nbytes, d2h, self._stream),
            "copy out",
        )
        cuda_check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return probs.astype(np.float32, copy=False)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        """A device allocation of at least `nbytes` for tensor `name`, reused between runs."""
        pointer, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                cuda_check(self.cudart, self.cudart.cudaFree(pointer), "cudaFree")
            pointer = int(cuda_check(self.cudart, self.cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self._buffers[name] = (pointer, nbytes)
        return pointer

    def close(self) -> None:
        for pointer, _ in self._buffers.values():
            cuda_check(self.cudart, self.cudart.cudaFree(pointer), "cudaFree")
        self._buffers.clear()
        if self._stream is not None:
            cuda_check(
                self.cudart, self.cudart.cudaStreamDestroy(self._stream), "cudaStreamDestroy"
            )
            self._stream = None
        self.context = None
        self.engine = None
