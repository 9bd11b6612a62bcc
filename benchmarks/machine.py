"""A short description of the machine a benchmark run was taken on (`segbench machine`)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

from runtime.cpu import instruction_set

LSCPU_FIELDS = (
    "Model name",
    "CPU(s)",
    "Thread(s) per core",
    "Core(s) per socket",
    "L2 cache",
    "L3 cache",
    "Hypervisor vendor",
)
ISA_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
)  # fmt: skip


def lscpu_fields() -> dict[str, str]:
    """Selected `lscpu` fields ({} where lscpu is missing, e.g. on macOS)."""
    if shutil.which("lscpu") is None:
        return {}
    output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = {}
    for line in output.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def describe() -> str:
    """Markdown: CPU, cores, ISA extensions, load, and the library versions that run models."""
    import onnxruntime
    import torch

    cpu = lscpu_fields()
    flags = set(cpu.get("Flags", "").split())
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = ["# Benchmark machine", ""]
    lines += [f"- {key}: {cpu[key]}" for key in LSCPU_FIELDS if key in cpu]
    lines += [
        f"- ISA extensions: {', '.join(f for f in ISA_FLAGS if f in flags) or 'unknown'}",
        f"- instruction set: {instruction_set()}",
        f"- nproc: {os.cpu_count()}",
        f"- platform: {platform.platform()}, Python {platform.python_version()}",
        f"- torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"onnxruntime {onnxruntime.__version__} "
        f"({', '.join(onnxruntime.get_available_providers())})",
        f"- CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}",
        f"- load average when described (1, 5, 15 min): {load}",
    ]
    return "\n".join(lines) + "\n"
