"""The benchmark matrix: architectures x input sizes x batch sizes, full or quick.

`SEGKIT_BENCH_QUICK=1` keeps the reduced matrix (unet at 256 px, batches 1 and 8) that a
2-core CPU runs in a few minutes; the full one (3 architectures x 256/512 x 1/8) takes hours
there. `SEGKIT_BENCH_SECONDS` is the time budget of one case's timed rounds (default 10).
"""

from __future__ import annotations

import os

import torch

from trainer.models import SegmentationModel, create_model

ARCHS = ("unet", "attention_r2unet", "pretrained_attention_r2unet")
SIZES = (256, 512)
BATCHES = (1, 8)
WIDTH = 64
# Extra constructor arguments per architecture (random weights: no download, no file).
ARCH_KWARGS = {"pretrained_attention_r2unet": {"encoder": "resnet34", "encoder_weights": "none"}}

QUICK = os.environ.get("SEGKIT_BENCH_QUICK", "") not in ("", "0")
QUICK_ARCHS = ("unet",)
QUICK_SIZES = (256,)


def archs() -> tuple[str, ...]:
    return QUICK_ARCHS if QUICK else ARCHS


def sizes() -> tuple[int, ...]:
    return QUICK_SIZES if QUICK else SIZES


def cases() -> list[tuple[str, int, int]]:
    """(arch, size, batch) of every case in this run's matrix."""
    return [(a, s, b) for a in archs() for s in sizes() for b in BATCHES]


def case_id(case: tuple[str, int, int]) -> str:
    arch, size, batch = case
    return f"{arch}-{size}px-b{batch}"


def build_model(arch: str, width: int = WIDTH) -> SegmentationModel:
    """`arch` at `width` with seeded random weights, in eval mode on the CPU."""
    torch.manual_seed(0)
    return create_model(arch, width=width, **ARCH_KWARGS.get(arch, {})).eval()


def round_budget_seconds() -> float:
    value = os.environ.get("SEGKIT_BENCH_SECONDS", "10")
    try:
        seconds = float(value)
    except ValueError as err:
        raise ValueError(f"SEGKIT_BENCH_SECONDS: expected seconds, got {value!r}") from err
    if seconds <= 0:
        raise ValueError(f"SEGKIT_BENCH_SECONDS: expected a positive number, got {value!r}")
    return seconds
