"""ONNX Runtime through `runtime.Segmenter`: CPU model only and end to end; CUDA with IOBinding.

- `ort_model`: the backend's `run` on a preprocessed float32 batch (the model alone).
- `ort_e2e`: `Segmenter.predict` on the uint8 photos at their own size (resize, normalize,
  model, resize the probabilities back, threshold).
- `ort_cuda`: an ONNX Runtime session on the CUDA EP alone (the runtime would put the
  TensorRT EP first where it exists), input and output bound on the GPU with an IOBinding.
"""

from __future__ import annotations

import onnxruntime as ort
import pytest

from benchmarks.inputs import model_batch
from benchmarks.matrix import case_id, cases, round_budget_seconds
from benchmarks.measure import record, time_rounds, time_segmenter
from runtime import Segmenter
from runtime.backends.onnxruntime import CUDA_EP, session_options


@pytest.mark.parametrize("case", cases(), ids=case_id)
@pytest.mark.parametrize("backend", ["ort_model", "ort_e2e"])
def test_onnxruntime_cpu(benchmark, backend, case, models, images, peak_gflops):
    arch, size, batch = case
    benchmark.group = case_id(case)
    flops = models.flops(arch, size)
    with Segmenter(
        models.onnx(arch, size), backend="onnxruntime", device="cpu", batch_size=batch
    ) as seg:
        model_only = backend == "ort_model"
        times = time_segmenter(benchmark, seg, images, size, batch, model_only)
        providers = seg.backend.providers
    record(
        benchmark,
        times,
        backend=backend,
        arch=arch,
        size=size,
        batch=batch,
        flops_per_image=flops,
        peak_gflops=peak_gflops,
        device="cpu",
        providers=providers,
    )


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_onnxruntime_cuda(benchmark, case, models, images, cuda_peak_gflops):
    if CUDA_EP not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime has no {CUDA_EP} (install onnxruntime-gpu)")
    arch, size, batch = case
    benchmark.group = case_id(case)
    session = ort.InferenceSession(
        str(models.onnx(arch, size)), session_options(None), providers=[CUDA_EP]
    )
    device_input = ort.OrtValue.ortvalue_from_numpy(model_batch(images, size, batch), "cuda", 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input(session.get_inputs()[0].name, device_input)
    binding.bind_output(session.get_outputs()[0].name, "cuda")
    times = time_rounds(
        benchmark, lambda: session.run_with_iobinding(binding), round_budget_seconds()
    )
    record(
        benchmark,
        times,
        backend="ort_cuda",
        arch=arch,
        size=size,
        batch=batch,
        flops_per_image=models.flops(arch, size),
        peak_gflops=cuda_peak_gflops,
        device="cuda",
        providers=session.get_providers(),
    )
