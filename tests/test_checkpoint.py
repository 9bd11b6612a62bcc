"""Checkpoints: self-describing round trips, atomic writes, and refusal of bad files."""

from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

import pytest
import torch

from runtime.metadata import ModelInfo
from trainer import create_model, list_models, load_model
from trainer.checkpoint import (
    CheckpointError,
    build_checkpoint,
    clean_state_dict,
    load_checkpoint,
    save_checkpoint,
)

TINY = {"width": 4}
EXTRA = {"pretrained_attention_r2unet": {"encoder": "resnet18", "encoder_weights": "none"}}


def tiny_model(name: str, **kw):
    torch.manual_seed(0)
    return create_model(name, **TINY, **EXTRA.get(name, {}), **kw)


def make_ckpt(model, epoch: int = 3) -> dict:
    return build_checkpoint(
        model,
        info=ModelInfo(
            num_classes=model.num_classes,
            classes=["background", "foreground"],
            input_size=(32, 32),
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            threshold=0.5,
        ),
        epoch=epoch,
        metrics={"dice": 0.5, "iou": 0.4},
    )


@pytest.mark.parametrize("name", list_models())
def test_round_trip_rebuilds_identical_model(name, tmp_path):
    model = tiny_model(name).eval()
    path = save_checkpoint(make_ckpt(model), tmp_path / "best.pth")

    raw = torch.load(path, weights_only=True)  # plain dict: no code needed to read it
    assert raw["arch"] == name and raw["epoch"] == 3 and raw["input_size"] == [32, 32]
    json.dumps({k: v for k, v in raw.items() if k != "model"})  # metadata is plain data

    loaded = load_model(path)
    assert not loaded.training
    assert loaded.checkpoint_meta["classes"] == ["background", "foreground"]
    x = torch.randn(2, 3, 35, 29)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_multiclass_round_trip(tmp_path):
    model = tiny_model("unet", num_classes=3).eval()
    ckpt = make_ckpt(model)
    ckpt["classes"] = ["background", "cat", "dog"]
    loaded = load_model(save_checkpoint(ckpt, tmp_path / "m.pth"))
    assert loaded.num_classes == 3
    assert loaded(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_wrapper_prefixes_are_removed():
    state = {"module._orig_mod.head.weight": torch.ones(1), "module.x": torch.zeros(1)}
    assert set(clean_state_dict(state)) == {"head.weight", "x"}


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint(make_ckpt(tiny_model("unet"), epoch=1), path)
    before = path.read_bytes()

    real_save = torch.save

    def disk_full(obj, handle, *a, **kw):
        real_save(obj, handle, *a, **kw)
        handle.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(make_ckpt(tiny_model("unet"), epoch=2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]  # no temporary file left
    assert load_checkpoint(path)["epoch"] == 1


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth: no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize("cut", [0, 10, 1000, -100])
def test_truncated_file(tmp_path, cut):
    good = save_checkpoint(make_ckpt(tiny_model("unet")), tmp_path / "good.pth").read_bytes()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(good[:cut] if cut >= 0 else good[:cut])
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_model(bad)


def test_not_a_segkit_checkpoint(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save(tiny_model("unet").state_dict(), path)
    with pytest.raises(CheckpointError, match="plain.pth: not a segkit checkpoint"):
        load_checkpoint(path)


def test_unknown_architecture(tmp_path):
    ckpt = make_ckpt(tiny_model("unet"))
    ckpt["arch"] = "unet3000"
    path = save_checkpoint(ckpt, tmp_path / "u.pth")
    with pytest.raises(CheckpointError, match="unknown architecture 'unet3000'"):
        load_checkpoint(path)


def test_weights_of_another_architecture_fail_loudly(tmp_path):
    ckpt = make_ckpt(tiny_model("unet"))
    ckpt["model"] = tiny_model("attention_unet").state_dict()
    path = save_checkpoint(ckpt, tmp_path / "mixed.pth")
    with pytest.raises(
        CheckpointError, match=r"mixed.pth: weights do not match architecture 'unet'"
    ):
        load_model(path)


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_crafted_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.target = str(marker)
    path = tmp_path / "evil.pth"
    torch.save({"format": "segkit.checkpoint", "model": payload}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="evil.pth: refused to load"):
        load_checkpoint(path)
    assert not marker.exists(), "the pickle payload ran during load"

    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="evil.pkl"):
        load_checkpoint(raw)
    assert not marker.exists()
