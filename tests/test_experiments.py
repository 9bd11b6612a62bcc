"""The study runner and `segtrain experiment` / `segtrain plot curves` on tiny generated data."""

from __future__ import annotations

import csv
import time

import pytest
from click.testing import CliRunner

from trainer.cli import main
from trainer.data.sample import make_sample_dataset

TINY = ["--epochs", "2", "--img-size", "32", "--width", "4", "--batch-size", "4"]


def _data(tmp_path):
    return str(make_sample_dataset(tmp_path / "data", n_train=8, n_test=4, size=40))


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_loss_weights_study_writes_results_and_resumes(tmp_path):
    out = tmp_path / "study"
    args = ["experiment", "loss-weights", "--data", _data(tmp_path), "--out", str(out)]
    args += [*TINY, "--weights", "0.3,0.7", "--device", "cpu", "--save-every", "1"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in (out / "dice_0.3").glob("epoch_*.pth")) == [
        "epoch_1.pth",
        "epoch_2.pth",
    ]
    rows = _rows(out / "results.csv")
    assert list(rows[0]) == [
        "variant",
        "weights",
        "epoch",
        "loss",
        "acc",
        "dice",
        "iou",
        "map",
        "seconds",
    ]
    assert sorted({r["variant"] for r in rows}) == ["dice_0.3", "dice_0.7"]
    assert len(rows) == 4
    assert (out / "comparison.png").stat().st_size > 0
    assert "best ep" in first.output
    mtimes = {p: p.stat().st_mtime for p in out.glob("*/last.pth")}
    started = time.monotonic()
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert "not retrained" in second.output
    assert time.monotonic() - started < 10
    assert {p: p.stat().st_mtime for p in out.glob("*/last.pth")} == mtimes

    curves = tmp_path / "curves.png"
    result = CliRunner().invoke(
        main, ["plot", "curves", str(out / "dice_0.3"), str(out / "dice_0.7"), "--out", str(curves)]
    )
    assert result.exit_code == 0, result.output
    assert curves.stat().st_size > 0


@pytest.mark.slow
def test_architectures_subset_records_encoder_weights(tmp_path):
    out = tmp_path / "arch"
    args = ["experiment", "architectures", "--data", _data(tmp_path), "--out", str(out), *TINY]
    args += ["--variants", "unet,pretrained_attention_r2unet", "--encoder-weights", "none"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = _rows(out / "results.csv")
    weights = {r["variant"]: r["weights"] for r in rows}
    assert weights == {"unet": "-", "pretrained_attention_r2unet": "none"}


def test_unknown_variant_is_named(tmp_path):
    args = ["experiment", "augmentations", "--data", _data(tmp_path), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(main, [*args, "--variants", "nope"])
    assert result.exit_code != 0
    assert "--variants" in result.output and "nope" in result.output


def test_auto_encoder_weights_fall_back_to_scratch_and_say_so(monkeypatch):
    from trainer.config import TrainConfig
    from trainer.experiments import study_variants
    from trainer.models import encoders

    def offline(name):
        raise RuntimeError("could not be downloaded") from OSError("name resolution failed")

    monkeypatch.setattr(encoders, "download_imagenet_weights", offline)
    messages = []
    variants = study_variants("encoders", TrainConfig(), log=messages.append)
    assert {n: c.encoder_weights for n, c in variants.items() if c.encoder} == {
        "resnet18": "none",
        "resnet34": "none",
        "resnet50": "none",
    }
    assert len(messages) == 3 and "resnet50" in messages[2]
    assert "name resolution failed" in messages[0] and "from scratch" in messages[0]

    monkeypatch.setattr(encoders, "download_imagenet_weights", lambda name: {})
    messages.clear()
    variants = study_variants("architectures", TrainConfig(), log=messages.append)
    assert variants["pretrained_attention_r2unet"].encoder_weights == "imagenet"
    assert variants["pretrained_attention_r2unet"].encoder == "resnet34"
    assert messages == []
    explicit = study_variants("encoders", TrainConfig(), encoder_weights="none")
    assert explicit["resnet18"].encoder_weights == "none"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("study", "variants"),
    [
        ("augmentations", ["crop", "plain", "standard", "standard-erasing"]),
        ("encoders", ["attention_r2unet", "resnet18", "resnet34", "resnet50"]),
    ],
)
def test_whole_study_runs_end_to_end(tmp_path, study, variants):
    out = tmp_path / study
    args = ["experiment", study, "--data", _data(tmp_path), "--out", str(out), *TINY]
    result = CliRunner().invoke(main, [*args, "--encoder-weights", "none", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = _rows(out / "results.csv")
    assert sorted({r["variant"] for r in rows}) == variants
    assert len(rows) == 2 * len(variants)
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    for name in variants:
        assert (out / name / "best.pth").is_file()
        assert name in result.output
