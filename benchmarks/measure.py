"""Timing, FLOP counting and the matmul peak; every case's result lands in `RESULTS`.

A case is timed with pytest-benchmark's pedantic mode: one untimed warm-up call, whose
duration sets the number of timed rounds (as many as fit in the round budget, between
`MIN_ROUNDS` and `MAX_ROUNDS`), one call per round. Each round's wall time is kept, so the
percentiles are those of single calls (with 3 rounds, p90 and p99 are close to the maximum).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

MIN_ROUNDS = 3
MAX_ROUNDS = 30
PEAK_SIZE = 2048
PEAK_REPEATS = 7

# Every result recorded in this process, in order (the terminal summary reads them).
RESULTS: list[dict[str, Any]] = []


def no_sync() -> None:
    """The CPU cases need no synchronization before the clock stops."""


def cuda_sync() -> None:
    torch.cuda.synchronize()


def peak_matmul_gflops(device: str = "cpu", size: int = PEAK_SIZE) -> float:
    """The best fp32 `torch.mm` rate (GFLOP/s) of `size` x `size` matrices on `device`.

    Uses every thread torch has; the best of `PEAK_REPEATS` runs after one warm-up.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    sync = cuda_sync if device == "cuda" else no_sync
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(PEAK_REPEATS):
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def count_flops(model: torch.nn.Module, size: int) -> float:
    """FLOPs of one forward pass of one `size` x `size` image (torch's flop counter)."""
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, size, size, device=device))
    return float(counter.get_total_flops())


def time_rounds(
    benchmark: Any, fn: Callable[[], object], budget_s: float, sync: Callable[[], None] = no_sync
) -> list[float]:
    """Seconds per call of `fn` over the pedantic rounds (after one warm-up call)."""
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, budget_s // max(first, 1e-6))))
    times: list[float] = []

    def timed_call() -> None:
        begin = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - begin)

    benchmark.pedantic(timed_call, rounds=rounds, iterations=1, warmup_rounds=0)
    return times


def record(
    benchmark: Any,
    times: list[float],
    *,
    backend: str,
    arch: str,
    size: int,
    batch: int,
    flops_per_image: float | None,
    peak_gflops: float | None,
    images: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Latency percentiles, throughput and FLOP efficiency into `benchmark.extra_info`.

    `images` is the number of images one call handles (default: `batch`).
    """
    images = batch if images is None else images
    p50, p90, p99 = (float(v) for v in np.percentile(times, [50, 90, 99]))
    info: dict[str, Any] = {
        "backend": backend,
        "arch": arch,
        "size": size,
        "batch": batch,
        "images": images,
        "rounds": len(times),
        "p50_ms": p50 * 1e3,
        "p90_ms": p90 * 1e3,
        "p99_ms": p99 * 1e3,
        "images_per_s": images / p50,
        "gflop_per_image": None,
        "gflops_per_s": None,
        "peak_gflops": peak_gflops,
        "efficiency": None,
        "load_1min": os.getloadavg()[0],  # how busy the machine was (other processes too)
    }
    if flops_per_image:
        info["gflop_per_image"] = flops_per_image / 1e9
        info["gflops_per_s"] = flops_per_image * images / p50 / 1e9
        if peak_gflops:
            info["efficiency"] = info["gflops_per_s"] / peak_gflops
    info.update(extra)
    benchmark.extra_info.update(info)
    RESULTS.append(info)
    return info


def time_segmenter(
    benchmark: Any, seg: Any, images: list[np.ndarray], size: int, batch: int, model_only: bool
) -> list[float]:
    """Seconds per call of a `runtime.Segmenter`: its backend's `run` on a preprocessed batch
    (`model_only`), or `predict` on the first `batch` photos at their own size."""
    from benchmarks.inputs import model_batch
    from benchmarks.matrix import round_budget_seconds

    if model_only:
        x = model_batch(images, size, batch)
        return time_rounds(benchmark, lambda: seg.backend.run(x), round_budget_seconds())
    photos = images[:batch]
    return time_rounds(benchmark, lambda: seg.predict(photos), round_budget_seconds())
