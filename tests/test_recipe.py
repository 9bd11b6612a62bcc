"""The training recipe: precision choice, schedules, EMA, weight decay, the shrunk cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import runtime.cpu as cpu
import trainer.precision as precision_module
from trainer.checkpoint import load_checkpoint
from trainer.cli import main
from trainer.config import LEGACY_RECIPE, TrainConfig
from trainer.data import SegmentationDataset, build_transform
from trainer.data.discover import resolve_splits
from trainer.fit import fit
from trainer.models import create_model
from trainer.precision import resolve_precision
from trainer.recipe import MIN_LR_SHARE, Ema, LrSchedule, build_optimizer

CPU = torch.device("cpu")


# ---------------------------------------------------------------- the CPU and the precision


@pytest.mark.parametrize(
    ("flags", "bf16", "vnni"),
    [
        ({"avx2"}, False, False),
        ({"avx2", "avx_vnni"}, False, True),
        ({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, True, True),
        ({"avx512f", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile"}, True, True),
    ],
)
def test_native_bf16_and_vnni_come_from_the_flags(flags, bf16, vnni):
    assert cpu.has_native_bf16(frozenset(flags)) is bf16
    assert cpu.has_vnni(frozenset(flags)) is vnni
    named = cpu.instruction_set(frozenset(flags))
    assert named.endswith("(no AMX)") is ("amx_tile" not in flags)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512_bf16\n\nprocessor\t: 1\n")
    monkeypatch.setattr(cpu, "CPUINFO", info)
    cpu.cpu_flags.cache_clear()
    try:
        assert cpu.cpu_flags() == {"fpu", "sse", "avx2", "avx512_bf16"}
        assert cpu.instruction_set() == "AVX2, AVX512-BF16 (no AMX)"
    finally:
        cpu.cpu_flags.cache_clear()


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_the_cpu_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(precision_module, "has_native_bf16", lambda: native)
    chosen = resolve_precision("auto", CPU)
    assert chosen.name == expected
    assert chosen.channels_last is native  # bf16 runs NHWC; fp32 on the CPU stays NCHW
    assert not chosen.uses_scaler


def test_auto_precision_on_cuda_is_fp16_with_a_scaler():
    chosen = resolve_precision("auto", torch.device("cuda"))
    assert (chosen.name, chosen.uses_scaler, chosen.channels_last) == ("fp16", True, True)


def test_bf16_validation_runs_in_fp32_on_the_cpu():
    bf16 = resolve_precision("bf16", CPU)
    with bf16.autocast():
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with bf16.eval_autocast():
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


# ---------------------------------------------------------------- schedules


def _lrs(schedule: str, epochs: int = 10, steps: int = 4, warmup: int = 2) -> list[float]:
    model = torch.nn.Linear(2, 1)
    cfg = TrainConfig(schedule=schedule, epochs=epochs, warmup_epochs=warmup, lr=1e-2)
    optimizer = build_optimizer(cfg, _Grouped(model), 1e-2, None)
    sched = LrSchedule(cfg, optimizer, steps)
    seen = []
    for _ in range(epochs * steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.after_step()
    return seen


class _Grouped(torch.nn.Module):
    """A plain module with the SegmentationModel parameter-group interface."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def parameter_groups(self, lr, encoder_lr=None):
        return [{"name": "all", "params": list(self.parameters()), "lr": lr}]


def test_cosine_warms_up_linearly_then_decays_to_its_floor():
    lrs = _lrs("cosine")
    warmup = lrs[:8]
    assert all(b > a for a, b in zip(warmup, warmup[1:], strict=False))
    assert lrs[8] == pytest.approx(1e-2)  # the peak, right after the warmup
    decay = lrs[8:]
    assert all(b < a for a, b in zip(decay, decay[1:], strict=False))
    assert 1e-2 * MIN_LR_SHARE < decay[-1] < 1.5e-2 * MIN_LR_SHARE  # one step before the end
    middle = 8 + (len(lrs) - 8) // 2
    expected = MIN_LR_SHARE + (1 - MIN_LR_SHARE) * 0.5  # cos(pi/2) = 0
    assert lrs[middle] == pytest.approx(1e-2 * expected, rel=1e-6)


def test_constant_holds_the_peak_after_the_warmup():
    lrs = _lrs("constant")
    assert lrs[0] < lrs[7] < 1e-2
    assert lrs[8:] == [pytest.approx(1e-2)] * len(lrs[8:])


def test_plateau_halves_the_rate_when_dice_stalls():
    model = _Grouped(torch.nn.Linear(2, 1))
    cfg = TrainConfig(schedule="plateau", epochs=20, lr=1e-2)
    optimizer = build_optimizer(cfg, model, 1e-2, None)
    sched = LrSchedule(cfg, optimizer, 4)
    for _ in range(12):
        sched.after_step()  # per-step calls leave the plateau schedule alone
        sched.after_epoch(0.5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)


def test_adamw_never_decays_biases_and_norms():
    model = create_model("unet", width=4)
    cfg = TrainConfig(optimizer="adamw", weight_decay=0.05)
    optimizer = build_optimizer(cfg, model, 1e-3, None)
    assert isinstance(optimizer, torch.optim.AdamW)
    for group in optimizer.param_groups:
        dims = {p.ndim for p in group["params"]}
        assert group["weight_decay"] == (0.05 if dims == {4} else 0.0), dims
    count = sum(len(g["params"]) for g in optimizer.param_groups)
    assert count == len(list(model.parameters()))


# ---------------------------------------------------------------- EMA


def test_ema_follows_its_warmed_up_decay():
    model = torch.nn.BatchNorm1d(3)
    ema = Ema(model, decay=0.99)
    values = []
    for step in range(4):
        with torch.no_grad():
            model.weight.fill_(float(step))
            model.running_mean.fill_(float(step))
        model.num_batches_tracked += 1
        ema.update(model)
        values.append(float(step))
    expected = values[0]
    for n, value in enumerate(values[1:], start=1):
        decay = min(0.99, (1 + n) / (10 + n))
        assert ema.decay_at(n) == decay
        expected = decay * expected + (1 - decay) * value
    torch.testing.assert_close(ema.model.weight, torch.full((3,), expected))
    torch.testing.assert_close(ema.model.running_mean, torch.full((3,), expected))
    assert int(ema.model.num_batches_tracked) == 4  # counters are copied, not averaged
    assert ema.state_dict() == {"decay_updates": 4}
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_ema_decay_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="--ema-decay"):
        Ema(torch.nn.Linear(1, 1), decay=1.0)


# ---------------------------------------------------------------- the cache


@pytest.mark.parametrize(("preset", "limit"), [("standard", 32), ("crop", 64)])
def test_the_cache_holds_images_just_above_the_training_size(tiny_dataset, preset, limit):
    splits, _ = resolve_splits(tiny_dataset)
    full = SegmentationDataset(splits["train"], build_transform(preset, 32, True), cache=False)
    cached = SegmentationDataset(splits["train"], build_transform(preset, 32, True))
    for index, (image, mask) in enumerate(cached._arrays):
        assert image.shape[:2] == mask.shape
        assert max(image.shape[:2]) <= limit
        torch.manual_seed(index)
        x, y = cached[index]
        assert x.shape == (3, 32, 32) and y.shape == (32, 32)
        assert set(np.unique(y.numpy())) <= {0, 1}
    # at the training size the cached arrays are exactly what the transform would make
    plain = SegmentationDataset(splits["train"], build_transform("plain", 32, False))
    plain_full = SegmentationDataset(
        splits["train"], build_transform("plain", 32, False), cache=False
    )
    assert len(full) == len(cached)
    for index in range(len(plain)):
        a, mask_a = plain[index]
        b, mask_b = plain_full[index]
        assert torch.equal(a, b) and torch.equal(mask_a, mask_b)


# ---------------------------------------------------------------- fit records its recipe


def test_fit_records_the_precision_it_chose(tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision_module, "has_native_bf16", lambda: True)
    cfg = TrainConfig(data=str(tiny_dataset), out=str(tmp_path), width=4, img_size=32,
                      batch_size=4, epochs=1)  # fmt: skip
    result = fit(cfg)
    assert result.precision == "bf16"
    assert "precision: bf16" in capsys.readouterr().out
    assert json.loads((tmp_path / "config.json").read_text())["precision"] == "bf16"
    assert json.loads((tmp_path / "summary.json").read_text())["precision"] == "bf16"
    ckpt = load_checkpoint(tmp_path / "best.pth")
    assert ckpt["precision"] == "bf16"
    assert all(v.dtype != torch.bfloat16 for v in ckpt["model"].values())  # fp32 weights
    assert math.isfinite(ckpt["metrics"]["dice"])


def test_a_run_saved_before_the_recipe_options_keeps_its_recipe(tmp_path):
    saved = TrainConfig(data="d").to_dict()
    for key in LEGACY_RECIPE:
        del saved[key]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = TrainConfig.load(tmp_path / "config.json")
    assert {key: getattr(loaded, key) for key in LEGACY_RECIPE} == LEGACY_RECIPE


def test_a_run_saved_before_the_erasing_option_keeps_its_erasing(tmp_path):
    """A config.json of the cosine recipe written before `--erasing` existed: the run
    erased at 0.25 then, and it still does on resume; everything it saved is kept."""
    saved = TrainConfig(data="d", weight_decay=0.05).to_dict()
    del saved["erasing"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = TrainConfig.load(tmp_path / "config.json")
    assert loaded.erasing == LEGACY_RECIPE["erasing"] == 0.25
    assert loaded.schedule == "cosine" and loaded.ema and loaded.weight_decay == 0.05
    assert TrainConfig(data="d").erasing == 0.0


def test_fit_help_lists_the_recipe_options():
    text = " ".join(CliRunner().invoke(main, ["fit", "--help"]).output.split())
    for option in ("--schedule", "--warmup-epochs", "--ema / --no-ema", "--ema-decay",
                   "--optimizer", "--weight-decay", "--cache", "--erasing",
                   "--compile / --no-compile"):  # fmt: skip
        assert option in text
    for default in ("cosine", "3", "ema", "adamw", "ram"):
        assert f"[default: {default}" in text
