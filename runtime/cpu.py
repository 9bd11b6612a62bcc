"""What the CPU can do: its instruction-set flags, read once (no torch, no extra packages).

Fast paths are chosen from these facts, never assumed: bf16 autocast in training and bf16
inference pay off only where the CPU multiplies bf16 natively (AMX or AVX512-BF16), and
INT8 only where it has VNNI.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

# The instruction sets reported by `instruction_set()`, best first: (name, flags it needs).
LEVELS = (
    ("AMX", ("amx_bf16", "amx_int8")),
    ("AVX-512 VNNI", ("avx512_vnni",)),
    ("AVX-512", ("avx512f",)),
    ("AVX2 VNNI", ("avx_vnni",)),
    ("AVX2", ("avx2",)),
)
# Flags worth naming beside a measurement (the rest of /proc/cpuinfo's list is noise there).
NOTABLE = (
    "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8",
    "amx_tile",
)  # fmt: skip


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU computes in bfloat16 natively (AMX-BF16 or AVX512-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU has int8 dot-product instructions (VNNI or AMX-INT8)."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


def instruction_set(flags: frozenset[str] | None = None) -> str:
    """The best vector instruction set of the CPU ("AMX", "AVX-512 VNNI", ..., "AVX2"), or
    the machine's architecture name when none of them is there."""
    flags = cpu_flags() if flags is None else flags
    for name, needed in LEVELS:
        if all(flag in flags for flag in needed):
            return name
    return platform.machine() or "unknown"


def notable_flags(flags: frozenset[str] | None = None) -> list[str]:
    """The flags of `NOTABLE` this CPU has, for reports."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in NOTABLE if flag in flags]
