"""Device selection and mixed precision (autocast dtype + GradScaler)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from runtime.errors import ArgumentError
from trainer.config import PRECISIONS


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when available, else the CPU; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ArgumentError(
            "--device", f": {name!r} is not a device (use auto, cpu, cuda or cuda:N)"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(
            "--device", f" {name}: CUDA is not available on this machine (use --device cpu)"
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise ArgumentError(
            "--device", f" {name}: only {torch.cuda.device_count()} CUDA device(s) present"
        )
    return device


@dataclass(frozen=True)
class Precision:
    """How a step runs: the autocast dtype (None = fp32) and whether a GradScaler is used."""

    name: str
    device_type: str
    dtype: torch.dtype | None

    @property
    def uses_scaler(self) -> bool:
        return self.dtype is torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.uses_scaler)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """`auto` = fp16 autocast with GradScaler on CUDA, fp32 on the CPU."""
    if name not in PRECISIONS:
        raise ArgumentError("--precision", f"{name!r} is not one of {', '.join(PRECISIONS)}")
    if name == "auto":
        name = "fp16" if device.type == "cuda" else "fp32"
    if name == "fp32":
        return Precision("fp32", device.type, None)
    if name == "fp16":
        if device.type != "cuda":
            raise ArgumentError(
                "--precision", "fp16 needs a CUDA device; on the CPU use fp32 or bf16"
            )
        return Precision("fp16", device.type, torch.float16)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ArgumentError("--precision", "bf16: this GPU does not support bfloat16; use fp16")
    return Precision("bf16", device.type, torch.bfloat16)
