"""Tiny exported models for the runtime tests, built once per test session.

`exported_model(tmp_path_factory, ...)` exports a width-4 U-Net (random weights, seeded) to
ONNX with the fast torchscript exporter and caches the file by its options. `gain` scales
the head's weights so the random model's probabilities spread over (0, 1) instead of
sitting at 0.5, which makes its masks depend on the image content.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_CACHE: dict[tuple, Path] = {}


def exported_model(
    tmp_path_factory,
    *,
    num_classes: int = 1,
    size: int = 32,
    dynamic_hw: bool = False,
    batch: int | None = None,
    gain: float = 1.0,
) -> Path:
    key = (num_classes, size, dynamic_hw, batch, gain)
    if key not in _CACHE:
        import torch

        from export.onnx_export import export_onnx
        from runtime.metadata import ModelInfo
        from trainer.checkpoint import build_checkpoint, save_checkpoint
        from trainer.models import create_model

        folder = tmp_path_factory.mktemp("runtime_model")
        torch.manual_seed(0)
        model = create_model("unet", width=4, num_classes=num_classes)
        with torch.no_grad():
            model.head.weight *= gain
        classes = ["background", "foreground"] if num_classes == 1 else ["background", "a", "b"]
        ckpt = build_checkpoint(
            model,
            info=ModelInfo(
                num_classes=model.num_classes,
                classes=classes[: max(2, num_classes)],
                input_size=(size, size),
                mean=MEAN,
                std=STD,
                threshold=0.5,
            ),
            epoch=1,
            metrics={"dice": 0.5},
        )
        path = save_checkpoint(ckpt, folder / "best.pth")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = export_onnx(
                path, folder / "model.onnx", dynamic_hw=dynamic_hw, batch=batch,
                exporter="torchscript",
            )  # fmt: skip
        _CACHE[key] = result.path
    return _CACHE[key]


def scene(seed: int, height: int, width: int) -> np.ndarray:
    """An HxWx3 uint8 RGB image of smooth colour with a few filled discs (photo-like)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    side = min(height, width)
    for _ in range(4):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(max(2, side // 10), max(3, side // 3)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(image, centre, radius, colour, -1)
    return image
