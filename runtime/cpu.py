"""What this CPU can do: its instruction-set flags, read from /proc/cpuinfo (Linux).

`instruction_set()` names the extensions low-precision inference depends on, best first:
AMX (bf16 and int8 tile matrix units), AVX-512 with VNNI and BF16, AVX-512, AVX2. The speed
of bf16 and int8 against fp32 depends on them: without VNNI, int8 convolutions gain little;
without AVX512_BF16 or AMX, bf16 is emulated and slower than fp32.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# flag -> the name reports use, in the order they are listed
NAMED_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX512-BF16",
    "amx_tile": "AMX",
    "amx_bf16": "AMX-BF16",
    "amx_int8": "AMX-INT8",
}
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's flags (`avx2`, `avx512_bf16`, `amx_tile`, ...); empty where unknown."""
    try:
        text = CPUINFO.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether bf16 matrix arithmetic runs in hardware (AVX512_BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    """Whether int8 dot products run in hardware (AVX512-VNNI, AVX-VNNI or AMX-INT8)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in VNNI_FLAGS)


def instruction_set(flags: frozenset[str] | None = None) -> str:
    """e.g. "AVX2, AVX-512, AVX512-VNNI, AVX-VNNI, AVX512-BF16 (no AMX)" for this CPU."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return f"unknown ({platform.machine() or 'unknown machine'})"
    named = [name for flag, name in NAMED_FLAGS.items() if flag in flags]
    amx = "" if "amx_tile" in flags else " (no AMX)"
    return (", ".join(named) or "none of AVX2 / AVX-512 / VNNI / AMX") + amx
