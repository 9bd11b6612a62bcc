"""Self-describing checkpoints: plain dicts that `torch.load(weights_only=True)` reads.

A checkpoint holds everything needed to rebuild and use the model without the code that
trained it: the architecture name and its constructor config, the model's `ModelInfo` (the
classes, the input size, the normalization and colour order, the decision threshold; its
fields sit at the top level of the dict), the epoch and validation metrics, and the model
weights. `load_checkpoint` validates the record as strictly as an exported model's metadata.
Checkpoints written during training also carry the optimizer, scheduler, grad scaler and RNG
state so `--resume` continues exactly where the run stopped.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runtime.errors import SegkitError
from runtime.io import atomic_write
from runtime.metadata import ModelInfo
from trainer import __version__
from trainer.models import SegmentationModel, create_model, list_models, model_spec

FORMAT = "segkit.checkpoint"
FORMAT_VERSION = 1

# Keys every checkpoint has; `load_checkpoint` checks them.
REQUIRED_KEYS = (
    "format",
    "format_version",
    "arch",
    "model_config",
    "classes",
    "num_classes",
    "input_size",
    "mean",
    "std",
    "threshold",
    "epoch",
    "metrics",
    "model",
)

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(SegkitError, ValueError):
    """A file is not a usable checkpoint; the message names the file and the problem."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP / compile prefixes and move tensors to the CPU."""
    cleaned = {}
    for key, value in state.items():
        for prefix in _WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value.detach().to("cpu")
    return cleaned


def build_checkpoint(
    model: nn.Module,
    *,
    info: ModelInfo,
    epoch: int,
    metrics: dict[str, float],
    train_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A checkpoint dict for `model` and its `info`; `train_state` (optimizer etc.) is added
    for resuming."""
    inner = unwrap_model(model)
    if not isinstance(inner, SegmentationModel):
        raise TypeError(f"expected a SegmentationModel, got {type(inner).__name__}")
    if info.num_classes != inner.num_classes:
        raise ValueError(
            f"info has {info.num_classes} output classes but the model {inner.num_classes}"
        )
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "project_version": __version__,
        "arch": inner.arch,
        "model_config": dict(inner.config),
        **info.to_dict(),
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "model": clean_state_dict(inner.state_dict()),
    }
    if train_state:
        ckpt.update(train_state)
    return ckpt


def save_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `ckpt` atomically: temporary file, fsync, rename. Returns the path."""
    path = Path(path)
    atomic_write(path, lambda handle: torch.save(ckpt, handle))
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint with `weights_only=True` (no code runs on load)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            path,
            "refused to load: the file holds objects other than tensors and plain values "
            f"({first})",
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(
            path, f"not a readable checkpoint (truncated or not a torch file: {err})"
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            path, "not a segkit checkpoint (no 'format' marker); was it saved by `segtrain fit`?"
        )
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"checkpoint format version {ckpt['format_version']} is newer than this version "
            f"supports ({FORMAT_VERSION}); upgrade segkit",
        )
    missing = [key for key in REQUIRED_KEYS if key not in ckpt]
    if missing:
        raise CheckpointError(path, f"checkpoint lacks {', '.join(missing)}")
    _check_fields(ckpt, path)
    return ckpt


def info_of(ckpt: dict[str, Any], path: str | os.PathLike = "<checkpoint>") -> ModelInfo:
    """The `ModelInfo` a checkpoint stores, validated (`MetadataError` naming `path`)."""
    return ModelInfo.from_dict(ckpt, os.fspath(path))


def _check_fields(ckpt: dict[str, Any], path: Path) -> None:
    """The same checks an exported model's metadata gets: types, ranges, known names."""
    if ckpt["arch"] not in list_models():
        raise CheckpointError(
            path, f"unknown architecture {ckpt['arch']!r}; known: {', '.join(list_models())}"
        )
    info = info_of(ckpt, path)
    config = ckpt["model_config"]
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise CheckpointError(path, f"bad model_config {config!r}: expected an object")
    if config.get("num_classes", info.num_classes) != info.num_classes:
        raise CheckpointError(
            path,
            f"model_config has num_classes={config['num_classes']} but the checkpoint "
            f"{info.num_classes}",
        )
    epoch = ckpt["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise CheckpointError(path, f"bad epoch {epoch!r}: expected an integer >= 0")
    metrics = ckpt["metrics"]
    if not isinstance(metrics, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()
    ):
        raise CheckpointError(path, f"bad metrics {metrics!r}: expected an object of numbers")
    if not isinstance(ckpt["model"], dict):
        raise CheckpointError(path, "bad model: expected a state dict of tensors")


def model_from_checkpoint(
    ckpt: dict[str, Any], path: str | os.PathLike = "<checkpoint>"
) -> SegmentationModel:
    """Rebuild the model of a loaded checkpoint dict and load its weights strictly."""
    config = dict(ckpt["model_config"])
    if model_spec(ckpt["arch"]).pretrained_encoder:
        config["encoder_weights"] = "none"  # the state dict carries the encoder weights
    try:
        model = create_model(ckpt["arch"], **config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            path, f"cannot build {ckpt['arch']!r} from the stored config: {err}"
        ) from err
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as err:
        summary = str(err).splitlines()[0]
        raise CheckpointError(
            path,
            f"weights do not match architecture {ckpt['arch']!r} "
            f"with config {ckpt['model_config']}: {summary}",
        ) from err
    return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> SegmentationModel:
    """Rebuild a model from its checkpoint alone, in eval mode on `device`.

    The checkpoint's metadata (classes, input size, mean/std, threshold, metrics) is kept on
    the model as `model.checkpoint_meta`.
    """
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    model.checkpoint_meta = {
        k: v for k, v in ckpt.items() if k not in _TRAIN_STATE_KEYS and k != "model"
    }
    return model.to(device).eval()


_TRAIN_STATE_KEYS = (
    "optimizer", "scheduler", "scaler", "rng", "train", "train_config", "raw_model", "ema",
)  # fmt: skip
