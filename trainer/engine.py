"""One training epoch and one evaluation pass; no files, no run bookkeeping."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from runtime.errors import EXIT_FAILED, SegkitError
from trainer.metrics import SegmentationMetrics
from trainer.precision import Precision


class TrainingDiverged(SegkitError, RuntimeError):
    """The loss became NaN or infinite outside of a GradScaler-handled fp16 overflow."""

    exit_code = EXIT_FAILED


@dataclass
class EpochStats:
    loss: float
    images: int
    seconds: float
    skipped_steps: int = 0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _to_device(batch, device: torch.device, channels_last: bool = False):
    images, masks = batch
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks.to(device, non_blocking=True)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: Precision,
    device: torch.device,
    epoch: int,
    *,
    after_step: Callable[[], None] | None = None,
    progress: bool = True,
    desc: str = "",
) -> EpochStats:
    """Train for one pass over `loader` in `precision` (its autocast and memory format);
    `after_step` runs after every optimizer step (schedule, EMA). Raises
    `TrainingDiverged` on a non-finite loss."""
    model.train()
    total_loss, images_seen, skipped = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(
        loader,
        desc=desc or f"epoch {epoch}",
        leave=False,
        disable=None if progress else True,
        unit="batch",
    )
    for step, batch in enumerate(bar, start=1):
        images, masks = _to_device(batch, device, precision.channels_last)
        with precision.autocast():
            logits = model(images)
        loss = loss_fn(logits.float(), masks)
        if not torch.isfinite(loss):
            if not precision.uses_scaler:
                raise TrainingDiverged(
                    "loss",
                    f"the loss became {loss.item()} at epoch {epoch}, step {step}; "
                    "lower --lr, check the data, or try --precision fp32",
                )
            skipped += 1  # fp16 overflow: GradScaler skips this step and lowers its scale
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if after_step is not None:
            after_step()
        n = images.shape[0]
        if math.isfinite(loss.item()):
            total_loss += loss.item() * n
        images_seen += n
        elapsed = time.perf_counter() - start
        bar.set_postfix(
            loss=f"{total_loss / max(images_seen, 1):.4f}", img_s=f"{images_seen / elapsed:.1f}"
        )
    bar.close()
    seconds = time.perf_counter() - start
    return EpochStats(total_loss / max(images_seen, 1), images_seen, seconds, skipped)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module | None,
    metrics: SegmentationMetrics,
    precision: Precision,
    device: torch.device,
    *,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Loss and metrics of `model` over `loader` (eval mode); keys loss, acc, dice, iou, map.

    It runs in fp32 on the CPU whatever the training precision (`Precision.eval_autocast`),
    so that runs in different precisions report comparable metrics.

    `reduce` sums a tensor over distributed ranks, so the result covers every rank's share.
    """
    model.eval()
    metrics.reset()
    total_loss, n_images = 0.0, 0
    for batch in loader:
        images, masks = _to_device(batch, device, precision.channels_last)
        with precision.eval_autocast():
            logits = model(images)
        logits = logits.float()
        if loss_fn is not None:
            total_loss += loss_fn(logits, masks).item() * images.shape[0]
        n_images += images.shape[0]
        metrics.update(logits, masks)
    if reduce is not None:
        metrics.load_state_tensor(reduce(metrics.state_tensor()))
        totals = torch.tensor([total_loss, n_images], dtype=torch.float64, device=device)
        total_loss, n_images = reduce(totals).tolist()
    results = {"loss": total_loss / max(n_images, 1)} if loss_fn is not None else {}
    results.update(metrics.compute())
    return results
