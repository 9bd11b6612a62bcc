"""Prediction pictures (`trainer.viz`) and `segtrain plot compare|evolution|attention`."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torchvision.transforms.v2 import functional as F

from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.cli import main
from trainer.config import TrainConfig
from trainer.data import read_image, resolve_splits
from trainer.fit import fit
from trainer.viz import (
    GREEN,
    RED,
    WHITE,
    attention_gates,
    dice,
    evolution,
    evolution_map,
    expand_checkpoints,
    load_images,
    predict,
)


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory):
    """A 2-epoch attention_unet run keeping epoch_1.pth and epoch_2.pth."""
    out = tmp_path_factory.mktemp("viz") / "run"
    cfg = TrainConfig(
        data=str(tiny_dataset),
        arch="attention_unet",
        width=4,
        img_size=32,
        epochs=2,
        batch_size=4,
        save_every=1,
        device="cpu",
        out=str(out),
    )
    fit(cfg, progress=False)
    return out


def _png_shape(path):
    return matplotlib.image.imread(path).shape


def test_evolution_map_colours_each_change():
    before = np.array([[True, True, False, False]])
    after = np.array([[True, False, True, False]])
    change = evolution_map(before, after)
    assert change[0].tolist() == [list(WHITE), list(RED), list(GREEN), [0, 0, 0]]
    first = evolution_map(None, after)
    assert first[0].tolist() == [list(GREEN), [0, 0, 0], list(GREEN), [0, 0, 0]]


def test_dice_of_masks():
    truth = np.array([[1, 1, 0, 0]])
    assert dice(np.array([[1, 0, 0, 0]]), truth) == pytest.approx(2 / 3)
    assert dice(np.zeros((2, 2), int), np.zeros((2, 2), int)) == 1.0
    assert dice(np.ones((2, 2), int), np.zeros((2, 2), int)) == 0.0


def test_run_folder_expands_to_checkpoints_in_epoch_order(run, tmp_path):
    for name in ("epoch_10.pth", "epoch_2.pth", "last.pth"):
        (tmp_path / name).write_bytes(b"")  # only best.pth is read
    best = load_checkpoint(run / "best.pth")
    best["epoch"] = 5
    save_checkpoint(best, tmp_path / "best.pth")
    names = [p.name for p in expand_checkpoints([tmp_path])]
    assert names == ["epoch_2.pth", "best.pth", "epoch_10.pth"]
    best["epoch"] = 10
    save_checkpoint(best, tmp_path / "best.pth")
    assert [p.name for p in expand_checkpoints([tmp_path])] == ["epoch_2.pth", "best.pth"]
    given = [tmp_path / "epoch_10.pth", tmp_path / "epoch_2.pth"]
    assert expand_checkpoints(given) == given
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no epoch_N.pth"):
        expand_checkpoints([tmp_path / "empty"])


def test_images_are_what_the_model_saw(run, tiny_dataset):
    ckpt = load_checkpoint(run / "best.pth")
    shown = load_images(ckpt, tiny_dataset, [1, 2])
    sample = resolve_splits(tiny_dataset)[0]["val"][2]
    assert shown[1].name == sample.image.name
    resized = F.resize(torch.from_numpy(read_image(sample.image)).permute(2, 0, 1), [32, 32])
    diff = np.abs(shown[1].image.astype(int) - resized.permute(1, 2, 0).numpy().astype(int))
    assert shown[1].image.shape == (32, 32, 3) and diff.max() <= 1
    assert shown[1].mask.shape == (32, 32) and set(np.unique(shown[1].mask)) <= {0, 1}


class _Fixed(torch.nn.Module):
    """A 'model' returning fixed logits, to check how predictions are read."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(logits, requires_grad=False)

    def forward(self, x):
        return self.logits.expand(len(x), -1, -1, -1)


def test_binary_and_multiclass_predictions(run, tiny_dataset):
    shown = load_images(load_checkpoint(run / "best.pth"), tiny_dataset, [0])
    binary = torch.full((1, 1, 32, 32), -3.0)
    binary[..., :16] = 3.0
    (p,) = predict(_Fixed(binary), shown, threshold=0.5)
    assert p.labels[:, :16].all() and not p.labels[:, 16:].any()
    assert p.foreground[0, 0] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    three = torch.zeros((1, 3, 32, 32))
    three[:, 2, :, 20:] = 5.0
    (q,) = predict(_Fixed(three), shown, threshold=0.5)
    assert (q.labels[:, 20:] == 2).all() and (q.labels[:, :20] == 0).all()
    assert q.foreground[0, 0] == pytest.approx(2 / 3, abs=1e-6)


def test_same_checkpoint_twice_changes_nothing(run, tiny_dataset):
    shown = load_images(load_checkpoint(run / "best.pth"), tiny_dataset, [0, 1])
    stages = evolution([run / "epoch_1.pth", run / "epoch_1.pth", run / "epoch_2.pth"], shown)
    assert [s.label for s in stages] == ["epoch 1", "epoch 1", "epoch 2"]
    for change in stages[1].maps:
        assert not (change == GREEN).all(-1).any() and not (change == RED).all(-1).any()
    for change, score, s in zip(stages[0].maps, stages[0].dices, shown, strict=True):
        assert (change == GREEN).all(-1).sum() + (change == 0).all(-1).sum() == s.mask.size
        assert 0.0 <= score <= 1.0


def test_attention_maps_cover_every_gate(run, tiny_dataset):
    from trainer.checkpoint import load_model

    model = load_model(run / "best.pth")
    gates = attention_gates(model)
    assert len(gates) == 4
    shown = load_images(load_checkpoint(run / "best.pth"), tiny_dataset, [0, 1, 2])
    predict(model, shown, 0.5)
    shapes = sorted(tuple(g.last_attention.shape) for _, g in gates)
    assert shapes == [(3, 1, 4, 4), (3, 1, 8, 8), (3, 1, 16, 16), (3, 1, 32, 32)]
    assert all(0 <= g.last_attention.min() and g.last_attention.max() <= 1 for _, g in gates)


def test_plot_commands_write_pngs(run, tiny_dataset, tmp_path):
    data = ["--data", str(tiny_dataset)]
    commands = {
        "compare": ["compare", str(run / "best.pth"), *data, "--index", "0,1"],
        "evolution": ["evolution", str(run), *data, "--index", "0", "--index", "3"],
        "attention": ["attention", str(run / "best.pth"), *data, "--count", "2", "--dpi", "50"],
    }
    for name, args in commands.items():
        out = tmp_path / f"{name}.png"
        result = CliRunner().invoke(main, ["plot", *args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        height, width, _ = _png_shape(out)
        assert height > 100 and width > 300, (name, height, width)
    assert not list(tmp_path.glob(".*.tmp"))


def test_plot_errors_are_one_line(run, tiny_dataset, tmp_path):
    def plot(*args):
        out = ["--out", str(tmp_path / "x.png"), "--data", str(tiny_dataset)]
        return CliRunner().invoke(main, ["plot", *args, *out])

    result = plot("compare", str(run / "best.pth"), "--index", "99")
    assert result.exit_code == 2 and "--index: 99 out of range" in result.output
    assert "has 4 images" in result.output
    result = plot("compare", str(run / "best.pth"), "--index", "one")
    assert result.exit_code == 2 and "--index" in result.output
    result = plot("compare", str(run / "best.pth"), "--dpi", "0")
    assert result.exit_code == 2 and "--dpi" in result.output
    result = plot("compare", str(tmp_path / "missing.pth"))
    assert result.exit_code == 2 and "missing.pth" in result.output
    assert "Traceback" not in result.output

    unet_ckpt = load_checkpoint(run / "best.pth")
    unet_ckpt["arch"] = "unet"
    unet_ckpt["model"] = {k: v for k, v in unet_ckpt["model"].items() if ".gate." not in k}
    save_checkpoint(unet_ckpt, tmp_path / "unet.pth")
    result = plot("attention", str(tmp_path / "unet.pth"))
    assert result.exit_code == 2 and "no attention gates" in result.output
    assert not (tmp_path / "x.png").exists()


def test_pictures_default_to_the_built_in_sample(run, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "compare.png"
    result = CliRunner().invoke(
        main, ["plot", "compare", str(run / "best.pth"), "--count", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache" / "sample-v1" / "test").is_dir()
    assert _png_shape(out)[0] > 100


def test_a_flat_folder_is_split_as_the_run_split_it(run, tiny_dataset, tmp_path):
    import shutil

    flat = tmp_path / "flat"
    shutil.copytree(tiny_dataset / "train", flat)
    ckpt = load_checkpoint(run / "best.pth")
    ckpt["train_config"] = {**ckpt["train_config"], "val_fraction": 0.5, "seed": 3}
    names = [s.name for s in load_images(ckpt, flat, count=99)]
    expected = resolve_splits(flat, val_fraction=0.5, seed=3)[0]["val"]
    assert names == [s.image.name for s in expected] and len(names) == 4
    default = resolve_splits(flat)[0]["val"]
    assert names != [s.image.name for s in default]
