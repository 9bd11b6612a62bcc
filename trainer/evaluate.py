"""`segtrain evaluate`: the metrics of a checkpoint on a dataset split."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import DataLoader

from trainer.checkpoint import load_checkpoint, model_from_checkpoint
from trainer.data import SegmentationDataset, build_transform, resolve_splits
from trainer.engine import evaluate
from trainer.metrics import SegmentationMetrics
from trainer.precision import resolve_device, resolve_precision


def evaluate_checkpoint(
    ckpt: str,
    data: str,
    split: str = "val",
    img_size: int | None = None,
    batch_size: int = 8,
    threshold: float | None = None,
    device: str = "auto",
    annotations: str | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
) -> dict:
    """Metrics of the checkpoint on `split`, at the checkpoint's input size unless given.

    A folder without train/ and val/ or test/ is split with `val_fraction` and `seed`; by
    default those of the checkpoint's training run (else 0.2 and 0), so "val" is the run's
    own validation set.
    """
    checkpoint = load_checkpoint(ckpt)
    trained = checkpoint.get("train_config") or {}
    val_fraction = trained.get("val_fraction", 0.2) if val_fraction is None else val_fraction
    seed = trained.get("seed", 0) if seed is None else seed
    model = model_from_checkpoint(checkpoint, ckpt)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    size = (img_size, img_size) if img_size else tuple(checkpoint["input_size"])
    classes = checkpoint["classes"]
    class_map = (
        None if checkpoint["num_classes"] == 1 else {c: i for i, c in enumerate(classes) if i}
    )
    splits, _ = resolve_splits(
        Path(data), val_fraction=val_fraction, seed=seed, annotations=annotations
    )
    dataset = SegmentationDataset(
        splits[split],
        build_transform("plain", size, train=False),
        class_map=class_map,
        on_bad_sample="skip",
    )
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    metrics = SegmentationMetrics(
        num_classes=checkpoint["num_classes"],
        threshold=checkpoint["threshold"] if threshold is None else threshold,
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
