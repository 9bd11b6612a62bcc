"""Run a serialized TensorRT engine (`.engine`) with its `model.engine.json` sidecar.

TensorRT 10/11 name-based I/O: `context.set_input_shape`, `set_tensor_address`,
`execute_async_v3(stream)`; device buffers and the stream come from cuda-python (no torch).
Batches outside the engine's optimization profile are split (above its maximum) or padded
(below its minimum) by `Backend.run`. One execution context serves all threads, one run at
a time (a lock), since a context and its buffers cannot be shared by concurrent runs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from runtime.backends.base import DEFAULT_OPTIONS, Backend, BackendOptions
from runtime.backends.tensorrt_support import (
    cuda_check,
    require_cudart,
    require_gpu,
    require_tensorrt,
)
from runtime.errors import InputError, ModelError
from runtime.metadata import ModelMetadata, sidecar_path


class TensorRTBackend(Backend):
    """A TensorRT execution context on the current CUDA device; call `close()` to free it."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, path: str | os.PathLike, options: BackendOptions = DEFAULT_OPTIONS):
        device = options.device
        self.path = Path(path)
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self._stream = None
        self._lock = threading.Lock()
        self.context = None
        if device == "cpu":
            raise ModelError(
                "device", "TensorRT engines run on CUDA GPUs only; use the .onnx model on a CPU"
            )
        if not self.path.is_file():
            raise ModelError(self.path, "no such engine file")
        self.metadata = ModelMetadata.read_json(sidecar_path(self.path))
        self.trt = require_tensorrt(self.path)
        built_with = self.metadata.engine.get("tensorrt_version")
        if built_with != self.trt.__version__:
            raise ModelError(
                self.path,
                f"engine was built with TensorRT {built_with} but TensorRT "
                f"{self.trt.__version__} is installed; engines only run on the TensorRT "
                "version (and GPU) that built them: rebuild it with `segexport trt`",
            )
        self._runtime = self.trt.Runtime(self.trt.Logger(self.trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ModelError(
                self.path,
                "TensorRT could not deserialize the engine (built for another TensorRT "
                "version or GPU, no CUDA GPU here, or the file is damaged); rebuild it with "
                "`segexport trt`",
            )
        self._check_io()
        self.cudart = require_cudart(self.path)
        require_gpu(self.cudart, self.path)
        low, _, high = self.engine.get_tensor_profile_shape(self.metadata.input_name, 0)
        self.profile = (tuple(low), tuple(high))
        self.min_batch, self.max_batch = int(low[0]), int(high[0])
        self.context = self.engine.create_execution_context()
        self._stream = cuda_check(self.cudart, self.cudart.cudaStreamCreate(), "cudaStreamCreate")

    def _check_io(self) -> None:
        engine, trt = self.engine, self.trt
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        modes = {name: engine.get_tensor_mode(name) for name in names}
        inputs = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
        self.check_tensor_names(inputs, outputs, "engine")

    def check_input(self, images: np.ndarray) -> None:
        super().check_input(images)
        (_, _, *low), (_, _, *high) = self.profile
        size = images.shape[2:]
        if any(s < lo or s > hi for s, lo, hi in zip(size, low, high, strict=True)):
            raise InputError(
                self.path,
                f"input size {size[0]}x{size[1]} is outside the engine's profile "
                f"{low[0]}x{low[1]}..{high[0]}x{high[1]}",
            )

    def _run(self, images: np.ndarray) -> np.ndarray:
        with self._lock:
            return self._run_locked(images)

    def _run_locked(self, images: np.ndarray) -> np.ndarray:
        trt, cudart, engine = self.trt, self.cudart, self.engine
        in_name, out_name = self.metadata.input_name, self.metadata.output_name
        images = np.ascontiguousarray(images, dtype=trt.nptype(engine.get_tensor_dtype(in_name)))
        if not self.context.set_input_shape(in_name, images.shape):
            raise InputError(self.path, f"TensorRT refused input shape {images.shape}")
        probs = np.empty(
            tuple(self.context.get_tensor_shape(out_name)),
            dtype=trt.nptype(engine.get_tensor_dtype(out_name)),
        )
        in_ptr = self._device_buffer(in_name, images.nbytes)
        out_ptr = self._device_buffer(out_name, probs.nbytes)
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
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

    @property
    def closed(self) -> bool:
        return self.context is None

    def close(self) -> None:
        with self._lock:
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
