"""segkit trainer: U-Net model zoo, data, losses, metrics and the training engine."""

__version__ = "0.1.0"

from trainer.checkpoint import load_model  # noqa: E402
from trainer.models import create_model, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "load_model"]
