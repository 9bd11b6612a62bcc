"""Metrics against brute-force references written with plain python/numpy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.metrics import STATE_FIELDS, SegmentationMetrics, average_precision

# ---------------------------------------------------------------- brute-force references


def brute_average_precision(scores: list[float], labels: list[bool]) -> float:
    """sum_n (R_n - R_{n-1}) * P_n over every distinct score taken as a threshold, by counting."""
    positives = sum(labels)
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        tp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= threshold and y)
        fp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= threshold and not y)
        recall = tp / positives
        ap += (recall - previous_recall) * (tp / (tp + fp))
        previous_recall = recall
    return ap


def brute_metrics(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> dict:
    """acc, per-image dice/iou and per-image mAP, one image and one class at a time.

    The probabilities come from torch in float32, exactly as the metrics see them, so that
    both sides agree on which probabilities tie.
    """
    n, c = logits.shape[:2]
    target = target.numpy()
    if c == 1:
        probs = torch.sigmoid(logits.float()).numpy()
        pred = (probs[:, 0] >= threshold).astype(int)
        fg_probs, classes = probs, [1]
    else:
        probs = torch.softmax(logits.float(), dim=1).numpy()
        pred = probs.argmax(axis=1)
        fg_probs, classes = probs[:, 1:], list(range(1, c))
    dices, ious, aps = [], [], []
    for i in range(n):
        image_dice, image_iou, image_ap = [], [], []
        for k, cls in enumerate(classes):
            p, g = pred[i] == cls, target[i] == cls
            if p.sum() + g.sum() > 0:
                inter = (p & g).sum()
                image_dice.append(2 * inter / (p.sum() + g.sum()))
                image_iou.append(inter / (p | g).sum())
            if g.any():
                scores = fg_probs[i, k].ravel().tolist()
                image_ap.append(brute_average_precision(scores, g.ravel().tolist()))
        dices.append(np.mean(image_dice) if image_dice else 1.0)
        ious.append(np.mean(image_iou) if image_iou else 1.0)
        if image_ap:
            aps.append(np.mean(image_ap))
    return {
        "acc": float((pred == target).mean()),
        "dice": float(np.mean(dices)),
        "iou": float(np.mean(ious)),
        "map": float(np.mean(aps)) if aps else math.nan,
    }


def assert_metrics_close(actual: dict, expected: dict) -> None:
    assert set(actual) == {"acc", "dice", "iou", "map"}
    for key, value in expected.items():
        assert isinstance(actual[key], float)
        assert actual[key] == pytest.approx(value, rel=1e-6, nan_ok=True), key


def quantized_batch(n: int, c: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits on a coarse grid (many tied probabilities) and matching random class ids."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randint(-3, 4, (n, c, size, size), generator=generator).float() / 2
    target = torch.randint(0, max(c, 2), (n, size, size), generator=generator)
    return logits, target


def metrics_of(logits, target, num_classes: int = 1) -> dict:
    metrics = SegmentationMetrics(num_classes=num_classes)
    metrics.update(logits, target)
    return metrics.compute()


# ---------------------------------------------------------------- average precision


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=30).filter(
        lambda pairs: any(label for _, label in pairs)
    )
)
def test_average_precision_matches_brute_force_with_ties(pairs):
    scores = [value / 5 for value, _ in pairs]
    labels = [label for _, label in pairs]
    actual = average_precision(torch.tensor(scores), torch.tensor(labels))
    assert actual == pytest.approx(brute_average_precision(scores, labels), rel=1e-9)


def test_average_precision_fixed_cases():
    perfect = torch.tensor([True, True, False])
    assert average_precision(torch.tensor([0.9, 0.8, 0.1]), perfect) == 1.0
    all_positive = torch.tensor([True, True, True])
    assert average_precision(torch.tensor([0.2, 0.2, 0.7]), all_positive) == 1.0
    # scikit-learn's documented example for average_precision_score.
    scores, labels = torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])
    assert average_precision(scores, labels) == pytest.approx(0.8333333333)
    # One tie group holding everything: precision = prevalence.
    one_of_four = torch.tensor([True, False, False, False])
    assert average_precision(torch.full((4,), 0.5), one_of_four) == 0.25
    assert math.isnan(average_precision(torch.tensor([0.3, 0.6]), torch.tensor([False, False])))
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        average_precision(torch.zeros(3), torch.zeros(2, dtype=torch.bool))


# ---------------------------------------------------------------- full metrics


def test_binary_metrics_match_brute_force():
    logits, target = quantized_batch(n=5, c=1, size=12, seed=3)
    target[1] = 0  # no ground-truth foreground: counted in dice/iou, left out of mAP
    assert_metrics_close(metrics_of(logits, target), brute_metrics(logits, target))


def test_binary_threshold_is_used():
    logits, target = quantized_batch(n=3, c=1, size=10, seed=4)
    metrics = SegmentationMetrics(threshold=0.8)
    metrics.update(logits, target)
    expected = brute_metrics(logits, target, threshold=0.8)
    assert_metrics_close(metrics.compute(), expected)


def test_multiclass_metrics_match_brute_force():
    logits, target = quantized_batch(n=4, c=4, size=10, seed=5)
    target[0][target[0] == 2] = 0  # a class missing from one image's ground truth
    target[2] = 0  # an image with background only
    actual = metrics_of(logits, target, num_classes=4)
    assert_metrics_close(actual, brute_metrics(logits, target))


def test_image_with_empty_prediction_and_ground_truth_scores_one():
    logits = torch.full((1, 1, 8, 8), -5.0)
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    result = metrics_of(logits, target)
    assert (result["acc"], result["dice"], result["iou"]) == (1.0, 1.0, 1.0)
    assert math.isnan(result["map"])  # no image has foreground
    multi = metrics_of(torch.zeros(1, 3, 8, 8).index_fill_(1, torch.tensor([0]), 5.0), target, 3)
    assert (multi["dice"], multi["iou"]) == (1.0, 1.0)


def test_image_without_ground_truth_foreground_is_left_out_of_map():
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    logits = torch.full((2, 1, 4, 4), -2.0)
    logits[0, 0, :2] = 2.0  # image 0: perfect ranking, AP = 1
    logits[1, 0, 0, 0] = 3.0  # image 1: a false positive, no ground truth
    result = metrics_of(logits, target)
    assert result["map"] == 1.0
    assert result["dice"] == pytest.approx(0.5)  # (1.0 + 0.0) / 2
    assert result["acc"] == pytest.approx(31 / 32)


def test_several_updates_equal_one_big_update():
    logits, target = quantized_batch(n=6, c=3, size=8, seed=6)
    whole = SegmentationMetrics(num_classes=3)
    whole.update(logits, target)
    parts = SegmentationMetrics(num_classes=3)
    for chunk in ((0, 1), (1, 4), (4, 6)):
        parts.update(logits[slice(*chunk)], target[slice(*chunk)])
    assert parts.compute() == pytest.approx(whole.compute())
    torch.testing.assert_close(parts.state_tensor(), whole.state_tensor())


def test_state_tensor_round_trip_as_after_an_all_reduce():
    logits, target = quantized_batch(n=6, c=1, size=8, seed=7)
    whole, first, second, merged = (SegmentationMetrics() for _ in range(4))
    whole.update(logits, target)
    first.update(logits[:2], target[:2])
    second.update(logits[2:], target[2:])
    state = first.state_tensor() + second.state_tensor()
    assert state.dtype == torch.float64 and state.shape == (len(STATE_FIELDS),)
    merged.load_state_tensor(state)
    assert merged.compute() == pytest.approx(whole.compute())
    first.merge(second)
    assert first.compute() == pytest.approx(whole.compute())
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        merged.load_state_tensor(torch.zeros(3))
    with pytest.raises(ValueError, match="num_classes=3"):
        first.merge(SegmentationMetrics(num_classes=3))


def test_state_tensor_is_a_copy():
    metrics = SegmentationMetrics()
    metrics.state_tensor().fill_(5.0)
    assert math.isnan(metrics.compute()["acc"])


def test_reset_clears_the_state():
    logits, target = quantized_batch(n=2, c=1, size=8, seed=8)
    metrics = SegmentationMetrics()
    metrics.update(logits, target)
    metrics.reset()
    assert all(math.isnan(v) for v in metrics.compute().values())


def test_a_list_of_logits_uses_the_last_one():
    logits, target = quantized_batch(n=2, c=1, size=8, seed=9)
    listed = SegmentationMetrics()
    listed.update([torch.zeros_like(logits), logits], target)
    assert listed.compute() == pytest.approx(metrics_of(logits, target), nan_ok=True)


def test_half_precision_logits_are_accepted():
    logits, target = quantized_batch(n=2, c=3, size=8, seed=10)
    actual = metrics_of(logits.half(), target, num_classes=3)
    assert_metrics_close(actual, brute_metrics(logits.half(), target))


def test_shape_mismatch_names_both_shapes():
    metrics = SegmentationMetrics(num_classes=1)
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 8\).*\(2, 9, 9\)"):
        metrics.update(torch.zeros(2, 1, 8, 8), torch.zeros(2, 9, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\)"):
        metrics.update(torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long))
