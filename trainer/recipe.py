"""The training recipe: optimizer, learning-rate schedule and EMA of the weights.

- Optimizer: AdamW (decoupled weight decay, on the conv/linear weights only) or Adam.
- Schedule: `cosine` (linear warmup over `warmup_epochs`, then a cosine decay to
  `MIN_LR_SHARE` of the peak, stepped every batch), `plateau` (the original study's: halve
  the rate when validation Dice stalls for `PLATEAU_PATIENCE` epochs, stepped per epoch) or
  `constant` (warmup, then the peak rate).
- EMA: `torch.optim.swa_utils.AveragedModel` with an exponential average of the weights and
  the BatchNorm buffers, updated after every optimizer step. The average is what is
  validated, saved as the checkpoint's model and exported; the raw weights are kept for
  `--resume` only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau
from torch.optim.swa_utils import AveragedModel

from runtime.errors import ArgumentError
from trainer.config import OPTIMIZERS, SCHEDULES, TrainConfig

PLATEAU_PATIENCE = 5
PLATEAU_FACTOR = 0.5
MIN_LR_SHARE = 0.01


def build_optimizer(
    cfg: TrainConfig, model: nn.Module, lr: float, encoder_lr: float | None
) -> torch.optim.Optimizer:
    """The optimizer of `cfg` over the model's parameter groups (encoder / decoder rates)."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ArgumentError("--optimizer", f"{cfg.optimizer!r} is not one of {OPTIMIZERS}")
    groups = _split_decay(model.parameter_groups(lr, encoder_lr), cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, weight_decay=cfg.weight_decay)


def _split_decay(groups: list[dict[str, Any]], weight_decay: float) -> list[dict[str, Any]]:
    """Each group twice: its weight matrices with `weight_decay`, its biases and norm
    parameters (1-d) without, as timm and Ultralytics do."""
    if not weight_decay:
        return groups
    split = []
    for group in groups:
        params = list(group["params"])
        rest = {k: v for k, v in group.items() if k != "params"}
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        split += [{**rest, "params": decay}, {**rest, "params": no_decay, "weight_decay": 0.0}]
    return [group for group in split if group["params"]]


class LrSchedule:
    """The learning-rate schedule of `cfg`; `after_step()` after every optimizer step and
    `after_epoch(val_dice)` after every validation move it on."""

    def __init__(self, cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        if cfg.schedule not in SCHEDULES:
            raise ArgumentError("--schedule", f"{cfg.schedule!r} is not one of {SCHEDULES}")
        self.name = cfg.schedule
        total = max(1, cfg.epochs * steps_per_epoch)
        warmup = min(cfg.warmup_epochs * steps_per_epoch, total - 1)
        if self.name == "plateau":
            self.scheduler = ReduceLROnPlateau(
                optimizer, mode="max", patience=PLATEAU_PATIENCE, factor=PLATEAU_FACTOR
            )
        else:
            self.factor = _LrFactor(self.name, warmup, total)
            self.scheduler = LambdaLR(optimizer, self.factor)

    def after_step(self) -> None:
        if self.name != "plateau":
            self.scheduler.step()

    def after_epoch(self, val_dice: float) -> None:
        if self.name == "plateau":
            self.scheduler.step(val_dice)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a saved schedule at its step. The plan (warmup, total steps) stays this
        run's: a resume with more `--epochs` stretches the cosine from the current step."""
        if self.name == "plateau":
            self.scheduler.load_state_dict(state)
            return
        plan = vars(self.factor).copy()
        self.scheduler.load_state_dict(state)  # LambdaLR also restores the factor's fields
        vars(self.factor).update(plan)
        self._apply()

    def _apply(self) -> None:
        """Set the groups' rates for the current step (after a change of plan)."""
        step, groups = self.scheduler.last_epoch, self.scheduler.optimizer.param_groups
        for group, base in zip(groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.factor(step)


class _LrFactor:
    """The share of the peak rate at step `step`: linear warmup, then cosine or constant.

    A class rather than a closure, so that `LambdaLR.state_dict()` saves its numbers."""

    def __init__(self, kind: str, warmup: int, total: int):
        self.kind, self.warmup, self.total = kind, warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return MIN_LR_SHARE + (1 - MIN_LR_SHARE) * 0.5 * (1 + math.cos(math.pi * progress))


class Ema:
    """An exponential moving average of a model's weights and buffers.

    The decay per step warms up as timm's does, `min(decay, (1 + n) / (10 + n))` after n
    updates, so that the average follows the fast early changes and a short run (a small
    dataset, few steps) is not dominated by its first weights."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ArgumentError("--ema-decay", f"expected a value in (0, 1), got {decay}")
        self.decay = decay
        self.averaged = AveragedModel(model, multi_avg_fn=self._average, use_buffers=True)
        self.averaged.requires_grad_(False)

    def decay_at(self, updates: int) -> float:
        """The decay applied at the update that follows `updates` earlier ones."""
        return min(self.decay, (1 + updates) / (10 + updates))

    def _average(self, averaged: list, current: list, updates: torch.Tensor) -> None:
        weight = 1 - self.decay_at(int(updates))
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], weight)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():
                a.copy_(c)  # counters such as BatchNorm's num_batches_tracked

    @property
    def model(self) -> nn.Module:
        """The averaged model itself (a copy of the trained one's architecture)."""
        return self.averaged.module

    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_dict(self) -> dict[str, Any]:
        """The average's bookkeeping; its weights are the checkpoint's model."""
        return {"decay_updates": int(self.averaged.n_averaged)}

    def load_state_dict(self, weights: dict[str, Any], state: dict[str, Any]) -> None:
        """Restore the average from a checkpoint's model weights and `state_dict()`."""
        self.model.load_state_dict(weights)
        self.averaged.n_averaged.fill_(state["decay_updates"])
