"""Low precision on the CPU, side by side on the same model and images: OpenVINO fp32, bf16
and INT8, and ONNX Runtime INT8 (the ONNX Runtime fp32 cases are in `test_onnxruntime`).

- `ov_fp32_model`, `ov_bf16_model`, `ov_int8_model`, `ort_int8_model`: the backend's `run` on
  a preprocessed float32 batch (the model alone).
- `int8_e2e`: `Segmenter.predict` on the INT8 model with `backend="auto"` (OpenVINO where
  installed) on the uint8 photos at their own size: what a user of the INT8 model gets.

bf16 is measured only where the CPU has it natively (AVX512_BF16 or AMX); elsewhere OpenVINO
would emulate it, slower than fp32. The INT8 model is `segexport quantize`'s (static QDQ,
per-channel weights), calibrated on the benchmark images.
"""

from __future__ import annotations

import pytest

from benchmarks.matrix import case_id, cases
from benchmarks.measure import record, time_segmenter
from runtime import Segmenter
from runtime.cpu import has_native_bf16, instruction_set

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")

# backend id -> (model kind, Segmenter options)
MODEL_CASES = {
    "ov_fp32_model": ("fp32", {"backend": "openvino", "precision": "fp32"}),
    "ov_bf16_model": ("fp32", {"backend": "openvino", "precision": "bf16"}),
    "ov_int8_model": ("int8", {"backend": "openvino", "precision": "auto"}),
    "ort_int8_model": ("int8", {"backend": "onnxruntime"}),
    "int8_e2e": ("int8", {}),
}


@pytest.mark.parametrize("case", cases(), ids=case_id)
@pytest.mark.parametrize("backend", list(MODEL_CASES))
def test_low_precision_cpu(benchmark, backend, case, models, images, peak_gflops):
    if backend == "ov_bf16_model" and not has_native_bf16():
        pytest.skip(f"no native bf16 on this CPU ({instruction_set()})")
    arch, size, batch = case
    benchmark.group = case_id(case)
    kind, options = MODEL_CASES[backend]
    path = models.int8(arch, size, images) if kind == "int8" else models.onnx(arch, size)
    with Segmenter(path, device="cpu", batch_size=batch, **options) as seg:
        model_only = backend.endswith("_model")
        times = time_segmenter(benchmark, seg, images, size, batch, model_only)
        used = {"runs_on": seg.backend.name, "precision": seg.backend.precision}
    record(
        benchmark,
        times,
        backend=backend,
        arch=arch,
        size=size,
        batch=batch,
        flops_per_image=models.flops(arch, size),
        peak_gflops=peak_gflops,
        device="cpu",
        instruction_set=instruction_set(),
        **used,
    )
