"""Losses: values at perfect and inverted logits, hand-computed cases, gradients and errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.losses import LOSSES, build_loss

BINARY, MULTI = 1, 3


def _target(num_classes: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, max(num_classes, 2), (2, 16, 16), generator=generator)


def _confident_logits(target: torch.Tensor, num_classes: int, sign: float = 1.0) -> torch.Tensor:
    """Logits of +-20 that agree with `target` (sign=1) or contradict it (sign=-1)."""
    onehot = F.one_hot(target, max(num_classes, 2)).permute(0, 3, 1, 2).float()
    if num_classes == 1:
        onehot = onehot[:, 1:]
    return sign * (onehot * 40 - 20)


@pytest.mark.parametrize("num_classes", [BINARY, MULTI])
@pytest.mark.parametrize("name", LOSSES)
def test_perfect_logits_cost_almost_nothing_and_inverted_ones_a_lot(name, num_classes):
    loss_fn = build_loss(name, num_classes=num_classes)
    target = _target(num_classes)
    perfect = loss_fn(_confident_logits(target, num_classes), target)
    inverted = loss_fn(_confident_logits(target, num_classes, sign=-1.0), target)
    assert perfect.ndim == 0
    assert perfect.item() < 1e-3
    assert inverted.item() > 0.5


@pytest.mark.parametrize("num_classes", [BINARY, MULTI])
@pytest.mark.parametrize("name", LOSSES)
def test_gradients_are_finite_for_random_and_saturated_logits(name, num_classes):
    loss_fn = build_loss(name, num_classes=num_classes)
    target = _target(num_classes)
    random = torch.randn(2, num_classes, 16, 16, generator=torch.Generator().manual_seed(1))
    for logits in (random, _confident_logits(target, num_classes)):
        logits = logits.clone().requires_grad_(True)
        loss_fn(logits, target).backward()
        assert torch.isfinite(logits.grad).all()
    assert logits.grad.shape == logits.shape


def test_random_logits_have_a_nonzero_gradient():
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    build_loss("focal_tversky")(logits, _target(BINARY)[:, :8, :8]).backward()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("num_classes", [BINARY, MULTI])
def test_combined_is_the_weighted_sum_of_dice_and_bce(num_classes):
    target = _target(num_classes)
    logits = torch.randn(2, num_classes, 16, 16, generator=torch.Generator().manual_seed(2))
    dice = build_loss("dice", num_classes=num_classes)(logits, target)
    bce = build_loss("bce", num_classes=num_classes)(logits, target)
    combined = build_loss("combined", num_classes=num_classes, dice_weight=0.3)(logits, target)
    torch.testing.assert_close(combined, 0.3 * dice + 0.7 * bce)


def test_default_dice_weight_is_0_7():
    assert build_loss("combined").alpha == 0.7


def test_bce_is_cross_entropy_for_multiclass():
    target = _target(MULTI)
    logits = torch.randn(2, MULTI, 16, 16)
    expected = F.cross_entropy(logits, target)
    torch.testing.assert_close(build_loss("bce", MULTI)(logits, target), expected)


# Two pixels, probabilities p = sigmoid([0, ln 3]) = [0.5, 0.75], ground truth g = [1, 0].
TINY_LOGITS = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2)
TINY_TARGET = torch.tensor([1, 0]).view(1, 1, 2)


def test_dice_matches_a_hand_computed_value():
    # sum(p*g) = 0.5, sum(p) = 1.25, sum(g) = 1, smooth = 1.
    expected = 1 - (2 * 0.5 + 1) / (1.25 + 1 + 1)
    assert build_loss("dice")(TINY_LOGITS, TINY_TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_focal_tversky_matches_a_hand_computed_value():
    # TP = 0.5, FN = 0.5, FP = 0.75; TI = (0.5 + 1) / (0.5 + 0.7*0.5 + 0.3*0.75 + 1).
    ti = 1.5 / 2.075
    value = build_loss("focal_tversky")(TINY_LOGITS, TINY_TARGET).item()
    assert value == pytest.approx((1 - ti) ** 0.75, rel=1e-6)


def test_focal_tversky_takes_alpha_beta_gamma():
    # alpha = beta = 0.5, gamma = 1 is the Dice loss.
    value = build_loss("focal_tversky", alpha=0.5, beta=0.5, gamma=1.0)(TINY_LOGITS, TINY_TARGET)
    ti = 1.5 / (0.5 + 0.25 + 0.375 + 1)
    assert value.item() == pytest.approx(1 - ti, rel=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        build_loss("focal_tversky", gamma=-1.0)


def test_multiclass_dice_averages_over_classes_background_included():
    logits = torch.zeros(1, 2, 1, 2)  # softmax 0.5 everywhere
    target = torch.zeros(1, 1, 2, dtype=torch.long)  # both pixels background
    # background: (2*1 + 1) / (1 + 2 + 1) = 3/4; class 1: (0 + 1) / (1 + 0 + 1) = 1/2.
    expected = ((1 - 3 / 4) + (1 - 1 / 2)) / 2
    assert build_loss("dice", num_classes=2)(logits, target).item() == pytest.approx(expected)


@pytest.mark.parametrize("name", LOSSES)
def test_a_list_of_logits_gives_the_mean_loss(name):
    loss_fn = build_loss(name)
    target = _target(BINARY)
    heads = [torch.randn(2, 1, 16, 16) for _ in range(3)]
    expected = sum(loss_fn(head, target) for head in heads) / 3
    torch.testing.assert_close(loss_fn(heads, target), expected)
    with pytest.raises(ValueError, match="empty list"):
        loss_fn([], target)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", LOSSES)
def test_half_precision_logits_give_a_float32_loss(name, dtype):
    target = _target(MULTI)
    logits = torch.randn(2, MULTI, 16, 16)
    loss = build_loss(name, num_classes=MULTI)(logits.to(dtype), target)
    assert loss.dtype == torch.float32
    reference = build_loss(name, num_classes=MULTI)(logits.to(dtype).float(), target)
    torch.testing.assert_close(loss, reference)


def test_unknown_loss_suggests_a_name():
    with pytest.raises(ValueError, match=r"did you mean 'dice'\?.*available: bce, dice"):
        build_loss("dcie")


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan")])
def test_dice_weight_outside_0_1_is_refused(weight):
    with pytest.raises(ValueError, match="--dice-weight"):
        build_loss("combined", dice_weight=weight)


def test_shape_mismatch_names_both_shapes():
    loss_fn = build_loss("combined", num_classes=MULTI)
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\).*\(2, 16, 16\)"):
        loss_fn(torch.zeros(2, 3, 8, 8), _target(MULTI))
    with pytest.raises(ValueError, match=r"\(2, 1, 16, 16\).*\(2, 16, 16\)"):
        loss_fn(torch.zeros(2, 1, 16, 16), _target(MULTI))
