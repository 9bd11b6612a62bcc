"""What this machine can run, and the skip reasons of the cases it cannot."""

from __future__ import annotations

import importlib.util

import torch

NO_CUDA = "no CUDA device (torch.cuda.is_available() is False): GPU cases need an NVIDIA GPU"
NO_TENSORRT = "TensorRT is not installed (pip install -e '.[gpu]' on a GPU machine)"


def cuda_available() -> bool:
    return torch.cuda.is_available()


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None
