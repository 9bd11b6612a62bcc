"""Segmentation losses on logits: `build_loss(name, ...)` for bce, dice, combined, focal_tversky.

Conventions shared by every loss here:

- `logits` are `(N, C, H, W)`; `C == 1` is binary (sigmoid, foreground = any non-zero target
  id), `C > 1` is multi-class (softmax over the classes). `target` is `(N, H, W)` of class ids.
- Everything is computed in float32, even for fp16/bf16 logits coming out of autocast.
- Deep supervision: `logits` may be a list of tensors; the loss is the mean over the list.
- Region losses (Dice, focal Tversky) are batch-wise: their sums run over the whole batch, not
  per image, with a smoothing term `smooth = 1.0` added to numerator and denominator, so an
  empty mask predicted empty costs 0. Multi-class: the mean over all classes, background
  included (so an image-wide background class keeps a gradient toward confident
  predictions); binary: the single foreground channel.
- Target pixels equal to `IGNORE_INDEX` (255) are left out of every loss: they are neither
  foreground nor background, and add nothing to any sum or mean.
"""

from __future__ import annotations

import difflib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.config import IGNORE_INDEX, LOSSES

Logits = Tensor | list[Tensor] | tuple[Tensor, ...]


_MIN_TVERSKY_GAP = 1e-6  # keeps the gradient of (1 - TI) ** gamma finite at TI == 1


class SegmentationLoss(nn.Module):
    """Base class: checks shapes, casts to float32 and averages over deep-supervision lists."""

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes

    def forward(self, logits: Logits, target: Tensor) -> Tensor:
        if isinstance(logits, (list, tuple)):
            if not logits:
                raise ValueError("logits is an empty list; expected (N, C, H, W) tensors")
            return torch.stack([self.forward(item, target) for item in logits]).mean()
        check_shapes(logits, target, self.num_classes)
        return self.single(logits.float(), target)

    def single(self, logits: Tensor, target: Tensor) -> Tensor:
        """The loss of one float32 `(N, C, H, W)` logits tensor against `(N, H, W)` class ids."""
        raise NotImplementedError


class BCELoss(SegmentationLoss):
    """BCE-with-logits for binary outputs, cross-entropy for multi-class outputs."""

    def single(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.num_classes > 1:
            return F.cross_entropy(logits, target.long(), ignore_index=IGNORE_INDEX)
        valid = target != IGNORE_INDEX
        foreground = ((target > 0) & valid).float()
        if bool(valid.all()):
            return F.binary_cross_entropy_with_logits(logits[:, 0], foreground)
        losses = F.binary_cross_entropy_with_logits(logits[:, 0], foreground, reduction="none")
        return (losses * valid).sum() / valid.sum().clamp_min(1)


class DiceLoss(SegmentationLoss):
    """Soft Dice loss 1 - (2*sum(p*g) + smooth) / (sum(p) + sum(g) + smooth), batch-wise."""

    def __init__(self, num_classes: int = 1, smooth: float = 1.0) -> None:
        super().__init__(num_classes)
        self.smooth = smooth

    def single(self, logits: Tensor, target: Tensor) -> Tensor:
        probs, onehot = _probs_and_onehot(logits, target)
        intersection = (probs * onehot).sum(dim=(0, 2, 3))
        total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
        dice = (2 * intersection + self.smooth) / (total + self.smooth)
        return (1 - dice).mean()


class CombinedLoss(SegmentationLoss):
    """`alpha * Dice + (1 - alpha) * BCE` (cross-entropy when multi-class)."""

    def __init__(self, num_classes: int = 1, alpha: float = 0.7, smooth: float = 1.0) -> None:
        super().__init__(num_classes)
        _check_dice_weight(alpha)
        self.alpha = alpha
        self.dice = DiceLoss(num_classes, smooth=smooth)
        self.bce = BCELoss(num_classes)

    def single(self, logits: Tensor, target: Tensor) -> Tensor:
        dice = self.dice.single(logits, target)
        bce = self.bce.single(logits, target)
        return self.alpha * dice + (1 - self.alpha) * bce


class FocalTverskyLoss(SegmentationLoss):
    """Focal Tversky loss (Abraham & Khan 2019): `(1 - TI) ** gamma`, batch-wise.

    TI = (TP + smooth) / (TP + alpha*FN + beta*FP + smooth) with soft counts; `alpha` weighs
    false negatives, `beta` false positives. Multi-class: the mean of the loss over classes.
    """

    def __init__(
        self,
        num_classes: int = 1,
        alpha: float = 0.7,
        beta: float = 0.3,
        gamma: float = 0.75,
        smooth: float = 1.0,
    ) -> None:
        super().__init__(num_classes)
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if not value >= 0:
                raise ValueError(f"focal_tversky {name} must be >= 0, got {value}")
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth

    def single(self, logits: Tensor, target: Tensor) -> Tensor:
        probs, onehot = _probs_and_onehot(logits, target)
        tp = (probs * onehot).sum(dim=(0, 2, 3))
        fn = ((1 - probs) * onehot).sum(dim=(0, 2, 3))
        fp = (probs * (1 - onehot)).sum(dim=(0, 2, 3))
        tversky = (tp + self.smooth) / (tp + self.alpha * fn + self.beta * fp + self.smooth)
        gap = (1 - tversky).clamp_min(_MIN_TVERSKY_GAP)
        return (gap**self.gamma).mean()


def build_loss(name: str, num_classes: int = 1, dice_weight: float = 0.7, **kwargs) -> nn.Module:
    """The loss `name` (one of `LOSSES`); `dice_weight` is the alpha of `combined`.

    Extra keyword arguments go to the loss class (e.g. alpha, beta, gamma of focal_tversky;
    smooth of dice and combined).
    """
    _check_dice_weight(dice_weight)
    if name == "bce":
        return BCELoss(num_classes, **kwargs)
    if name == "dice":
        return DiceLoss(num_classes, **kwargs)
    if name == "combined":
        return CombinedLoss(num_classes, alpha=dice_weight, **kwargs)
    if name == "focal_tversky":
        return FocalTverskyLoss(num_classes, **kwargs)
    close = difflib.get_close_matches(name, LOSSES, n=2)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown loss {name!r}{hint} (available: {', '.join(LOSSES)})")


def _check_dice_weight(alpha: float) -> None:
    if not 0 <= alpha <= 1:
        raise ValueError(f"--dice-weight (dice_weight) must be in [0, 1], got {alpha}")


def check_shapes(logits: Tensor, target: Tensor, num_classes: int) -> None:
    """Raise ValueError unless logits are (N, num_classes, H, W) and target is (N, H, W)."""
    expected = (logits.shape[0], *logits.shape[2:]) if logits.ndim == 4 else None
    if logits.ndim != 4 or logits.shape[1] != num_classes or tuple(target.shape) != expected:
        raise ValueError(
            f"logits shape {tuple(logits.shape)} does not match "
            f"target shape {tuple(target.shape)}: "
            f"expected logits (N, {num_classes}, H, W) and target (N, H, W)"
        )


def _probs_and_onehot(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Probabilities and float one-hot targets, both `(N, K, H, W)`: K = 1 binary, else C.

    Both are zero at ignored pixels, so those add nothing to the region losses' sums."""
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    if logits.shape[1] == 1:
        probs, onehot = torch.sigmoid(logits), (target > 0).float().unsqueeze(1)
    else:
        ids = torch.where(valid[:, 0], target, 0).long()
        onehot = F.one_hot(ids, logits.shape[1]).permute(0, 3, 1, 2).float()
        probs = torch.softmax(logits, dim=1)
    if bool(valid.all()):
        return probs, onehot
    return probs * valid, onehot * valid
