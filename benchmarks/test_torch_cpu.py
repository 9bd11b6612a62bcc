"""PyTorch on the CPU, model only, fp32 under `torch.inference_mode`: eager and channels_last."""

from __future__ import annotations

import pytest
import torch

from benchmarks.inputs import model_batch
from benchmarks.matrix import case_id, cases, round_budget_seconds
from benchmarks.measure import record, time_rounds

LAYOUTS = {"torch_eager": torch.contiguous_format, "torch_channels_last": torch.channels_last}


@pytest.mark.parametrize("case", cases(), ids=case_id)
@pytest.mark.parametrize("backend", list(LAYOUTS))
def test_torch_cpu(benchmark, backend, case, models, images, peak_gflops):
    arch, size, batch = case
    benchmark.group = case_id(case)
    layout = LAYOUTS[backend]
    model = models.model(arch).to(memory_format=layout)
    x = torch.from_numpy(model_batch(images, size, batch)).contiguous(memory_format=layout)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    try:
        times = time_rounds(benchmark, forward, round_budget_seconds())
    finally:
        model.to(memory_format=torch.contiguous_format)
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
    )
