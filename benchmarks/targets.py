"""The issue's performance targets, checked as ratios of results from one run.

Ratios cancel most of a shared machine's noise. They are reported, never asserted: a miss
is a finding about the machine and the runtime, not a broken build.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runtime.cpu import cpu_flags, has_vnni

TARGET_CASE = ("unet", 256, 8)  # arch, size, batch the targets are stated for


@dataclass(frozen=True)
class Target:
    """`numerator` images/s over `denominator` images/s (or efficiency) >= `minimum`."""

    label: str
    numerator: str
    denominator: str | None  # None: the numerator's efficiency against the matmul peak
    minimum: float | None  # None: shown for comparison, no target

    def evaluate(self, rows: dict[str, dict[str, Any]]) -> str:
        top = rows.get(self.numerator)
        if top is None or (self.denominator and self.denominator not in rows):
            missing = self.numerator if top is None else self.denominator
            return f"{self.label}: not measured in this run ({missing} missing)"
        if self.denominator is None:
            value = top.get("efficiency")
            if value is None:
                return f"{self.label}: no FLOP count for {self.numerator}"
            if self.minimum is None:
                return f"{self.label}: {value:.0%} of peak (for comparison)"
            verdict = "met" if value >= self.minimum else "NOT met"
            return f"{self.label}: {value:.0%} of peak (target {self.minimum:.0%}) -> {verdict}"
        value = top["images_per_s"] / rows[self.denominator]["images_per_s"]
        if self.minimum is None:
            return f"{self.label}: {value:.2f}x (no target on this CPU)"
        verdict = "met" if value >= self.minimum else "NOT met"
        return f"{self.label}: {value:.2f}x (target >= {self.minimum:.2f}x) -> {verdict}"


TARGETS = (
    Target("CPU: Segmenter end to end (ORT) / PyTorch eager", "ort_e2e", "torch_eager", 1.5),
    Target("CPU: Segmenter end to end (ORT) FLOP/s vs matmul peak", "ort_e2e", None, 0.85),
    Target("CPU: ORT model only FLOP/s vs matmul peak", "ort_model", None, None),
    Target("CPU: PyTorch eager FLOP/s vs matmul peak", "torch_eager", None, None),
    Target("GPU: TensorRT fp16 / PyTorch eager fp32", "trt_fp16", "torch_cuda_fp32", 2.5),
    Target("GPU: TensorRT fp16 / PyTorch AMP", "trt_fp16", "torch_cuda_amp", 1.5),
    Target("GPU: ORT CUDA IOBinding / PyTorch eager fp32", "ort_cuda", "torch_cuda_fp32", 0.8),
)


def low_precision_targets(flags: frozenset[str] | None = None) -> tuple[Target, ...]:
    """The issue's INT8 and bf16 targets, which depend on the instruction set: with AMX,
    INT8 end to end >= 4.5x and OpenVINO bf16 >= 2.3x ONNX Runtime fp32 model only; with VNNI
    only, INT8 >= 2x; on plain AVX2 INT8 must not be slower (>= 1x)."""
    flags = cpu_flags() if flags is None else flags
    if "amx_tile" in flags:
        int8, bf16, where = 4.5, 2.3, "AMX"
    elif has_vnni(flags):
        int8, bf16, where = 2.0, None, "VNNI"
    else:
        int8, bf16, where = 1.0, None, "AVX2"
    return (
        Target(
            f"CPU ({where}): Segmenter INT8 end to end / ORT fp32 model only",
            "int8_e2e",
            "ort_model",
            int8,
        ),  # fmt: skip
        Target(
            f"CPU ({where}): OpenVINO bf16 / ORT fp32 model only",
            "ov_bf16_model",
            "ort_model",
            bf16,
        ),  # fmt: skip
        Target("CPU: OpenVINO INT8 / ORT fp32 model only", "ov_int8_model", "ort_model", None),
        Target("CPU: ORT INT8 / ORT fp32 model only", "ort_int8_model", "ort_model", None),
        Target("CPU: OpenVINO fp32 / ORT fp32 model only", "ov_fp32_model", "ort_model", 1.0),
    )


def target_lines(results: Iterable[dict[str, Any]]) -> list[str]:
    """One line per target with measurements of the target case; the others are left out."""
    arch, size, batch = TARGET_CASE
    rows = {
        r["backend"]: r
        for r in results
        if (r.get("arch"), r.get("size"), r.get("batch")) == (arch, size, batch)
    }
    lines = []
    for target in (*TARGETS, *low_precision_targets()):
        if target.numerator in rows or (target.denominator and target.denominator in rows):
            lines.append(target.evaluate(rows))
    return lines
