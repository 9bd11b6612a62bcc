"""Segmentation metrics: pixel accuracy, per-image Dice and IoU, and the project's mAP.

`SegmentationMetrics` accumulates over batches; `compute()` returns plain floats:

- ``acc``: correct pixels / all pixels over the whole set (pixel-weighted).
- ``dice``, ``iou``: computed per image on the hard prediction, then averaged over images.
  Binary (C == 1): the foreground (prediction = sigmoid >= threshold; ground truth = any
  non-zero id). Multi-class: prediction = argmax; the mean over foreground classes 1..C-1
  present in that image's ground truth or prediction. An image whose prediction and ground
  truth are both empty (no foreground class anywhere) scores 1.0 for both.
- ``map``: the mean over images of the average precision (AP) of the foreground probability,
  i.e. the area under that image's pixel precision-recall curve as scikit-learn's
  ``average_precision_score`` computes it: AP = sum_n (R_n - R_{n-1}) * P_n over the distinct
  scores taken as thresholds in decreasing order (tied scores form one threshold). Images with
  no ground-truth foreground are left out (AP is undefined); ``map`` is NaN when no image has
  any. Multi-class: per image, the mean over the foreground classes present in its ground truth
  of the one-vs-rest AP of that class's softmax probability.

Target pixels equal to `IGNORE_INDEX` (255) are left out of every metric: they count in no
pixel total, are neither foreground nor background for Dice and IoU, and take no part in AP.

The state is one float64 tensor of sums and counts (`state_tensor()`), so a distributed run can
``all_reduce`` it with SUM, `load_state_tensor()` the result, and then `compute()`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.config import IGNORE_INDEX
from trainer.losses import check_shapes

STATE_FIELDS = (
    "sum_correct",
    "n_pixels",
    "sum_dice",
    "sum_iou",
    "n_images",
    "sum_ap",
    "n_ap_images",
)


class SegmentationMetrics:
    """Accumulates acc, dice, iou and map over `update(logits, target)` calls."""

    def __init__(self, num_classes: int = 1, threshold: float = 0.5) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.num_classes = num_classes
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._state = torch.zeros(len(STATE_FIELDS), dtype=torch.float64)

    @torch.no_grad()
    def update(self, logits: Tensor | list[Tensor] | tuple[Tensor, ...], target: Tensor) -> None:
        """Add a batch: `logits` (N, C, H, W) or a deep-supervision list (its last item)."""
        if isinstance(logits, (list, tuple)):
            if not logits:
                raise ValueError("logits is an empty list; expected (N, C, H, W) tensors")
            logits = logits[-1]
        check_shapes(logits, target, self.num_classes)
        logits = logits.float()
        probs = torch.sigmoid(logits) if self.num_classes == 1 else torch.softmax(logits, dim=1)
        self.update_probs(probs, target)

    @torch.no_grad()
    def update_probs(self, probs: Tensor, target: Tensor) -> None:
        """Add a batch of probabilities (N, C, H, W): an exported model's `probs` output."""
        check_shapes(probs, target, self.num_classes)
        probs = probs.float()
        valid = target != IGNORE_INDEX
        if self.num_classes == 1:
            pred = (probs[:, 0] >= self.threshold).long()
            target = ((target > 0) & valid).long()
        else:
            pred = probs.argmax(dim=1)
            target = torch.where(valid, target, 0).long()
        classes = max(self.num_classes, 2)
        pred_1hot = _foreground_onehot(pred, classes) & valid.unsqueeze(1)
        true_1hot = _foreground_onehot(target, classes)
        fg_probs = probs if self.num_classes == 1 else probs[:, 1:]
        fg_probs = torch.where(valid.unsqueeze(1), fg_probs, -math.inf)  # ranked last in AP
        dice, iou = _per_image_dice_iou(pred_1hot, true_1hot)
        ap_sum, ap_images = _per_image_ap_sum(fg_probs, true_1hot)
        batch = torch.stack(
            [
                ((pred == target) & valid).sum().double(),
                valid.sum().double(),
                dice.sum(),
                iou.sum(),
                torch.tensor(float(target.shape[0]), dtype=torch.float64, device=target.device),
                ap_sum,
                ap_images,
            ]
        )
        if self._state.device != batch.device:
            self._state = self._state.to(batch.device)
        self._state += batch

    def compute(self) -> dict[str, float]:
        """The metrics so far as python floats; NaN for a metric with nothing to average."""
        s = dict(zip(STATE_FIELDS, self._state.tolist(), strict=True))
        return {
            "acc": _ratio(s["sum_correct"], s["n_pixels"]),
            "dice": _ratio(s["sum_dice"], s["n_images"]),
            "iou": _ratio(s["sum_iou"], s["n_images"]),
            "map": _ratio(s["sum_ap"], s["n_ap_images"]),
        }

    def state_tensor(self) -> Tensor:
        """A float64 copy of the sums and counts in `STATE_FIELDS` order (all-reduce with SUM).

        It lives on the device of the last `update` (CPU before any), so NCCL can reduce it.
        """
        return self._state.clone()

    def load_state_tensor(self, state: Tensor) -> None:
        """Replace the state by `state`, e.g. the all-reduced sum of every rank's state."""
        if tuple(state.shape) != (len(STATE_FIELDS),):
            raise ValueError(
                f"state must have shape ({len(STATE_FIELDS)},) for {STATE_FIELDS}, "
                f"got {tuple(state.shape)}"
            )
        self._state = state.detach().to(torch.float64).clone()

    def merge(self, other: SegmentationMetrics) -> None:
        """Add the sums and counts of `other` (same num_classes and threshold) to this one."""
        if (other.num_classes, other.threshold) != (self.num_classes, self.threshold):
            raise ValueError(
                f"cannot merge metrics with num_classes={other.num_classes}, "
                f"threshold={other.threshold} into num_classes={self.num_classes}, "
                f"threshold={self.threshold}"
            )
        self._state = self._state + other._state.to(self._state.device)


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """Area under the precision-recall curve of 1-D `scores` for 1-D bool `labels`.

    Same value as scikit-learn's `average_precision_score`; NaN when no label is positive.
    """
    if scores.ndim != 1 or tuple(scores.shape) != tuple(labels.shape):
        raise ValueError(
            f"scores and labels must be 1-D of the same length, got shapes "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if scores.numel() == 0 or not labels.any():
        return math.nan
    return _average_precision_rows(scores.unsqueeze(0), labels.unsqueeze(0).bool()).item()


def _average_precision_rows(scores: Tensor, labels: Tensor) -> Tensor:
    """AP of each row of `scores` (B, P) against bool `labels` (B, P); rows need a positive.

    Scores are sorted in decreasing order; each tie group is one threshold, whose precision is
    read at the group's last index. Every positive adds precision/positives at its group's end,
    which is sum_n (R_n - R_{n-1}) * P_n.
    """
    sorted_scores, order = torch.sort(scores.float(), dim=1, descending=True)
    hits = labels.gather(1, order)
    tp = hits.cumsum(dim=1, dtype=torch.float64)
    ranks = torch.arange(1, scores.shape[1] + 1, device=scores.device, dtype=torch.float64)
    precision = tp / ranks
    group_end = torch.ones_like(hits)
    group_end[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    index = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    end_index = torch.where(group_end, index, scores.shape[1])
    end_index = end_index.flip(1).cummin(dim=1).values.flip(1)
    precision_at_end = precision.gather(1, end_index)
    return (precision_at_end * hits).sum(dim=1) / tp[:, -1]


def _per_image_dice_iou(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image Dice and IoU (float64, (N,)) from bool foreground one-hots (N, K, H, W)."""
    inter = (pred & true).sum(dim=(2, 3)).double()
    total = pred.sum(dim=(2, 3)).double() + true.sum(dim=(2, 3)).double()
    present = total > 0
    dice = torch.where(present, 2 * inter / total.clamp_min(1), 0.0)
    iou = torch.where(present, inter / (total - inter).clamp_min(1), 0.0)
    n_present = present.sum(dim=1)
    empty = n_present == 0
    denominator = n_present.clamp_min(1)
    dice = torch.where(empty, 1.0, dice.sum(dim=1) / denominator)
    iou = torch.where(empty, 1.0, iou.sum(dim=1) / denominator)
    return dice, iou


def _per_image_ap_sum(fg_probs: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    """Sum over images with ground-truth foreground of their mean per-class AP, and their count."""
    n, k = true.shape[:2]
    has_class = true.flatten(2).any(dim=2)  # (N, K)
    rows = has_class.flatten()
    ap = torch.zeros(n * k, dtype=torch.float64, device=true.device)
    if rows.any():
        scores = fg_probs.flatten(2).flatten(0, 1)[rows]
        ap[rows] = _average_precision_rows(scores, true.flatten(2).flatten(0, 1)[rows])
    ap = ap.view(n, k)
    classes_present = has_class.sum(dim=1)
    scored = classes_present > 0
    per_image = ap.sum(dim=1) / classes_present.clamp_min(1)
    return per_image[scored].sum(), scored.sum().double()


def _foreground_onehot(ids: Tensor, classes: int) -> Tensor:
    """Bool (N, classes - 1, H, W): one channel per foreground class 1..classes-1."""
    return F.one_hot(ids, classes).permute(0, 3, 1, 2)[:, 1:].bool()


def _ratio(total: float, count: float) -> float:
    return total / count if count > 0 else math.nan
