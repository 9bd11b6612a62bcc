"""Session fixtures of the benchmarks: the matmul peak, inputs, models; the targets summary."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from benchmarks.devices import NO_CUDA, cuda_available
from benchmarks.inputs import load_images
from benchmarks.matrix import BATCHES, QUICK
from benchmarks.measure import RESULTS, peak_matmul_gflops
from benchmarks.models import ModelCache
from benchmarks.targets import target_lines


@pytest.fixture(scope="session")
def peak_gflops() -> float:
    """This machine's fp32 matmul peak (GFLOP/s, all threads), measured in this run."""
    return peak_matmul_gflops("cpu")


@pytest.fixture(scope="session")
def cuda_peak_gflops() -> float:
    if not cuda_available():
        pytest.skip(NO_CUDA)
    return peak_matmul_gflops("cuda")


@pytest.fixture(scope="session")
def images() -> list[np.ndarray]:
    """Enough uint8 RGB images for the largest batch (butterfly photos when present)."""
    loaded, _ = load_images(max(BATCHES))
    return loaded


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> ModelCache:
    return ModelCache(tmp_path_factory.mktemp("bench_models"))


def pytest_benchmark_update_machine_info(config: Any, machine_info: dict[str, Any]) -> None:
    """Versions, thread counts and load go into the JSON beside pytest-benchmark's own."""
    machine_info["segkit"] = {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "cuda_device": torch.cuda.get_device_name() if cuda_available() else None,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "inputs": load_images(1)[1],
        "quick_matrix": QUICK,
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("segkit targets (ratios within this run)")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    terminalreporter.write_line(f"load average now: {load} on {os.cpu_count()} cores")
    for line in target_lines(RESULTS) or ["no target case (unet 256 px batch 8) in this run"]:
        terminalreporter.write_line(line)
