"""The source of every export: a checkpoint file, its rebuilt model, and its metadata."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.metadata import ModelMetadata
from trainer import __version__
from trainer.checkpoint import info_of, load_checkpoint, model_from_checkpoint
from trainer.models import SegmentationModel


@dataclass
class ExportSource:
    """A loaded checkpoint: the model in eval mode on the CPU, its metadata and its SHA-256."""

    path: Path
    checkpoint: dict[str, Any]
    model: SegmentationModel
    sha256: str

    def metadata(self, **export_settings: Any) -> ModelMetadata:
        """The exported model's metadata; `export_settings` are precision, opset, flags, ..."""
        return metadata_from_checkpoint(
            self.checkpoint, self.sha256, stride=self.model.stride, **export_settings
        )


def load_source(path: str | os.PathLike) -> ExportSource:
    """Load and validate a checkpoint (raises `CheckpointError` naming the file)."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path).eval()
    meta = {key: value for key, value in ckpt.items() if key != "model"}
    return ExportSource(path=path, checkpoint=meta, model=model, sha256=file_sha256(path))


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def metadata_from_checkpoint(
    ckpt: dict[str, Any], sha256: str, *, stride: int, **export_settings: Any
) -> ModelMetadata:
    """The exported model's metadata: the checkpoint's `ModelInfo` plus the export's facts."""
    info = info_of(ckpt)
    return ModelMetadata(
        project_version=__version__,
        arch=ckpt["arch"],
        model_config=dict(ckpt["model_config"]),
        info=info,
        output_kind=info.output_kind,
        metrics={key: float(value) for key, value in ckpt["metrics"].items()},
        source_sha256=sha256,
        stride=int(stride),
        **export_settings,
    )
