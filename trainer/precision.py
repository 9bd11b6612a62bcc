"""Device selection and mixed precision (autocast dtype + GradScaler + memory format).

`--precision auto`: fp16 autocast with a GradScaler on CUDA; on a CPU that computes in
bfloat16 natively (AMX or AVX512-BF16), bf16 autocast with channels_last; fp32 elsewhere.
The weights stay fp32 (autocast computes in the low precision, the optimizer updates fp32
master weights), and validation runs in fp32 on the CPU, so the metrics of runs in
different precisions compare.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from runtime.cpu import has_native_bf16
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

    @property
    def channels_last(self) -> bool:
        """NHWC activations: what CUDA's tensor cores and oneDNN's bf16 kernels want."""
        return self.device_type == "cuda" or self.dtype is torch.bfloat16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def eval_autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for validation: the training one on CUDA, none (fp32) on the CPU."""
        return self.autocast() if self.device_type == "cuda" else contextlib.nullcontext()

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.uses_scaler)


def auto_precision(device: torch.device) -> str:
    """What `--precision auto` means on `device`: fp16 on CUDA, bf16 on a CPU with native
    bf16, else fp32."""
    if device.type == "cuda":
        return "fp16"
    return "bf16" if has_native_bf16() else "fp32"


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The `Precision` of `--precision name` on `device` (see `auto_precision`)."""
    if name not in PRECISIONS:
        raise ArgumentError("--precision", f"{name!r} is not one of {', '.join(PRECISIONS)}")
    if name == "auto":
        name = auto_precision(device)
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
