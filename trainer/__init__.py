"""segkit trainer: U-Net model zoo, data, losses, metrics and the training engine.

`from trainer import create_model, list_models, load_model` works as before; the names are
resolved on first use, so importing `trainer` (or `trainer.cli` for `segtrain --help`) does
not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "trainer.models",
    "list_models": "trainer.models",
    "load_model": "trainer.checkpoint",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
