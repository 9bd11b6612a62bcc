"""The model zoo: every architecture registers itself on import.

from trainer.models import create_model, list_models
model = create_model("attention_unet", num_classes=1, width=32)
"""

from trainer.models import attention_unet, pretrained, r2unet, unet, unet_pp  # noqa: F401
from trainer.models.base import SegmentationModel
from trainer.models.registry import (
    ModelSpec,
    create_model,
    list_models,
    model_entrypoint,
    model_spec,
    register_model,
)

__all__ = [
    "ModelSpec",
    "SegmentationModel",
    "create_model",
    "list_models",
    "model_entrypoint",
    "model_spec",
    "register_model",
]
