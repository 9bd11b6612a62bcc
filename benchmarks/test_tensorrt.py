"""TensorRT engines (fp32 and fp16) through `runtime.Segmenter`'s backend, model only.

Engines are built from the benchmark's ONNX exports with a batch profile of 1..8 (the fp16
one from an `--fp16` export, as TensorRT 11 requires). The backend's `run` takes host
arrays, so each call includes the host-to-device copy of the batch and the copy back.
"""

from __future__ import annotations

import pytest

from benchmarks.devices import NO_CUDA, NO_TENSORRT, cuda_available, tensorrt_available
from benchmarks.inputs import model_batch
from benchmarks.matrix import BATCHES, case_id, cases, round_budget_seconds
from benchmarks.measure import record, time_rounds

pytestmark = [
    pytest.mark.skipif(not cuda_available(), reason=NO_CUDA),
    pytest.mark.skipif(not tensorrt_available(), reason=NO_TENSORRT),
]


@pytest.mark.parametrize("case", cases(), ids=case_id)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt(benchmark, precision, case, models, images, cuda_peak_gflops):
    from export.tensorrt_build import build_engine
    from runtime import Segmenter

    arch, size, batch = case
    benchmark.group = case_id(case)
    fp16 = precision == "fp16"
    onnx_path = models.onnx(arch, size, fp16=fp16)
    engine_path = onnx_path.with_suffix(".engine")
    if not engine_path.is_file():
        profile = (min(BATCHES), max(BATCHES), max(BATCHES))
        build_engine(onnx_path, engine_path, fp16=fp16, batch=profile)
    x = model_batch(images, size, batch)
    with Segmenter(engine_path, batch_size=batch) as seg:
        times = time_rounds(benchmark, lambda: seg.backend.run(x), round_budget_seconds())
    record(
        benchmark,
        times,
        backend=f"trt_{precision}",
        arch=arch,
        size=size,
        batch=batch,
        flops_per_image=models.flops(arch, size),
        peak_gflops=cuda_peak_gflops,
        device="cuda",
    )
