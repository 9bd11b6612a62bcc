"""`segtrain evaluate`: the metrics of a checkpoint on a dataset split."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import DataLoader

from runtime.errors import ArgumentError
from trainer.checkpoint import info_of, load_checkpoint, model_from_checkpoint
from trainer.data import SegmentationDataset, build_transform
from trainer.data.discover import Sample
from trainer.data.source import DataSource, resolve_source
from trainer.engine import evaluate
from trainer.metrics import SegmentationMetrics
from trainer.precision import resolve_device, resolve_precision


def evaluate_checkpoint(
    ckpt: str,
    data: str | Path | DataSource,
    split: str = "val",
    img_size: int | None = None,
    batch_size: int = 8,
    threshold: float | None = None,
    device: str = "auto",
    annotations: str | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
) -> dict:
    """Metrics of the checkpoint on `split` of `data` (a folder or a `DataSource`; see
    `split_samples`), at the checkpoint's input size unless given."""
    checkpoint = load_checkpoint(ckpt)
    info = info_of(checkpoint, ckpt)
    model = model_from_checkpoint(checkpoint, ckpt)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    size = (img_size, img_size) if img_size else info.input_size
    dataset = SegmentationDataset(
        split_samples(checkpoint, data, split, annotations, val_fraction, seed),
        build_transform("plain", size, train=False, mean=info.mean, std=info.std),
        class_map=class_map_of(checkpoint),
        on_bad_sample="skip",
    )
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    metrics = SegmentationMetrics(
        num_classes=info.num_classes,
        threshold=info.threshold if threshold is None else threshold,
    )
    precision = resolve_precision("fp32", torch_device)
    results = evaluate(model, loader, None, metrics, precision, torch_device)
    return {
        "checkpoint": str(ckpt),
        "split": split,
        "images": len(dataset),
        "skipped": len(dataset.skipped),
        "input_size": list(size),
        **results,
    }


def class_map_of(checkpoint: dict) -> dict[str, int] | None:
    """The label -> class id map the checkpoint was trained with (None: binary)."""
    info = info_of(checkpoint)
    if info.binary:
        return None
    return {name: i for i, name in enumerate(info.classes) if i}


def as_source(data: str | Path | DataSource, annotations: str | Path | None = None) -> DataSource:
    """`data` as a DataSource: a folder (with its labelme `annotations` folder) or as given."""
    if isinstance(data, DataSource):
        return data if annotations is None else data.replace(annotations=str(annotations))
    return DataSource(data=str(data), annotations=None if annotations is None else str(annotations))


def split_samples(
    checkpoint: dict,
    data: str | Path | DataSource,
    split: str = "val",
    annotations: str | Path | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
) -> list[Sample]:
    """The samples of `split` in `data`, split as the checkpoint's run split it.

    A dataset without its own validation split is split with `val_fraction` and `seed`; by
    default those of the checkpoint's training run (else 0.2 and 0), so "val" is the run's
    own validation set. The run's `--ignore-index` and `--resize-masks` apply unless given.
    """
    trained = checkpoint.get("train_config") or {}
    source = as_source(data, annotations)
    if source.ignore_index is None and trained.get("ignore_index") is not None:
        source = source.replace(ignore_index=trained["ignore_index"])
    if not source.resize_masks and trained.get("resize_masks"):
        source = source.replace(resize_masks=True)
    splits, _ = resolve_source(
        source,
        val_fraction=trained.get("val_fraction", 0.2) if val_fraction is None else val_fraction,
        seed=trained.get("seed", 0) if seed is None else seed,
    )
    if split not in splits:
        raise ArgumentError("--split", f"expected one of {', '.join(splits)}, got {split!r}")
    return splits[split]
