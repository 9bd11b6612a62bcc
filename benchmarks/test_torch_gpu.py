"""PyTorch on a CUDA GPU, model only: eager fp32, AMP fp16, and a CUDA graph of the AMP pass.

The model runs channels_last, as training does on CUDA.
The input batch lives on the GPU; each call is followed by `torch.cuda.synchronize()`.
Efficiency is against the GPU's fp32 matmul peak, so the fp16 cases can exceed 100%.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

from benchmarks.devices import NO_CUDA, cuda_available
from benchmarks.inputs import model_batch
from benchmarks.matrix import case_id, cases, round_budget_seconds
from benchmarks.measure import cuda_sync, record, time_rounds

pytestmark = pytest.mark.skipif(not cuda_available(), reason=NO_CUDA)
BACKENDS = ("torch_cuda_fp32", "torch_cuda_amp", "torch_cuda_graph_amp")


def _autocast(enabled: bool) -> torch.autocast:
    # No weight-cast cache: a CUDA graph must not capture tensors cached outside it.
    return torch.autocast("cuda", dtype=torch.float16, enabled=enabled, cache_enabled=False)


def _graphed(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A CUDA graph of the AMP forward pass on the static input `x`; returns its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode(), _autocast(True):
        for _ in range(3):  # warm up kernels and the allocator before capture
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode(), _autocast(True):
        model(x)
    return graph.replay


@pytest.mark.parametrize("case", cases(), ids=case_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_cuda(benchmark, backend, case, models, images, cuda_peak_gflops):
    arch, size, batch = case
    benchmark.group = case_id(case)
    model = copy.deepcopy(models.model(arch)).cuda().to(memory_format=torch.channels_last)
    x = torch.from_numpy(model_batch(images, size, batch)).cuda()
    x = x.contiguous(memory_format=torch.channels_last)
    if backend == "torch_cuda_graph_amp":
        forward = _graphed(model, x)
    else:

        def forward() -> None:
            with torch.inference_mode(), _autocast(backend == "torch_cuda_amp"):
                model(x)

    times = time_rounds(benchmark, forward, round_budget_seconds(), sync=cuda_sync)
    record(
        benchmark,
        times,
        backend=backend,
        arch=arch,
        size=size,
        batch=batch,
        flops_per_image=models.flops(arch, size),
        peak_gflops=cuda_peak_gflops,
        device=torch.cuda.get_device_name(),
    )
