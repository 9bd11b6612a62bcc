"""The model zoo: registry, shapes at odd sizes, training, rebuilding, pretrained encoders."""

from __future__ import annotations

import inspect
import json
from urllib.error import URLError

import pytest
import torch
import torchvision
from torch import nn

from trainer.models import create_model, list_models, model_entrypoint, register_model
from trainer.models.base import SegmentationModel, pad_to_multiple, remove_padding
from trainer.models.blocks import AttentionGate

ALL_MODELS = list_models()
ATTENTION_MODELS = list_models("*attention*")
PRETRAINED = "pretrained_attention_r2unet"


def tiny(name: str, **kwargs) -> SegmentationModel:
    """A small, fast instance of model `name` (width 4, resnet18 for pretrained encoders)."""
    torch.manual_seed(0)
    params = inspect.signature(model_entrypoint(name)).parameters
    small = {k: v for k, v in {"width": 4, "encoder": "resnet18"}.items() if k in params}
    return create_model(name, **{**small, **kwargs})


# --- registry ---------------------------------------------------------------------------------


def test_list_models_is_sorted_and_complete():
    expected = {"unet", "unet_pp", "attention_unet", "r2unet", "attention_r2unet", PRETRAINED}
    assert set(ALL_MODELS) == expected
    assert ALL_MODELS == sorted(ALL_MODELS)
    assert list_models("*r2unet") == ["attention_r2unet", PRETRAINED, "r2unet"]


def test_duplicate_registration_raises():
    def unet(*, width: int = 1) -> SegmentationModel:
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="'unet'"):
        register_model(unet)


def test_positional_factory_arguments_are_refused():
    def not_keyword_only(width: int = 1) -> SegmentationModel:
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="width"):
        register_model(not_keyword_only)
    assert "not_keyword_only" not in list_models()


def test_unknown_model_suggests_close_name():
    with pytest.raises(ValueError, match=r"did you mean 'unet_pp'") as info:
        create_model("unetpp")
    assert "attention_unet" in str(info.value)  # the list of available names


def test_none_kwargs_are_dropped():
    model = create_model("unet", width=4, num_classes=None, in_channels=None)
    assert model.config == {"in_channels": 3, "num_classes": 1, "width": 4}


def test_unknown_kwarg_is_named_with_accepted_ones():
    with pytest.raises(TypeError, match="widht") as info:
        create_model("unet", widht=4)
    assert "width" in str(info.value) and "num_classes" in str(info.value)


@pytest.mark.parametrize(
    ("name", "argument"),
    [
        ("unet", "width"),
        ("unet_pp", "num_classes"),
        ("attention_unet", "in_channels"),
        ("r2unet", "t"),
        (PRETRAINED, "width"),
    ],
)
def test_invalid_values_name_the_argument(name, argument):
    with pytest.raises(ValueError, match=argument):
        tiny(name, **{argument: 0})


def test_unknown_encoder_is_named():
    with pytest.raises(ValueError, match="resnet101"):
        tiny(PRETRAINED, encoder="resnet101")


# --- padding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "stride"), [((37, 45), 16), ((5, 3), 16), ((64, 64), 32)])
def test_padding_round_trip(size, stride):
    x = torch.randn(1, 2, *size)
    padded, padding = pad_to_multiple(x, stride)
    assert padded.shape[-2] % stride == 0 and padded.shape[-1] % stride == 0
    assert torch.equal(remove_padding(padded, padding), x)


def test_padding_reflects_when_the_input_is_large_enough():
    x = torch.arange(20.0).reshape(1, 1, 1, 20).expand(1, 1, 20, 20)
    padded, _ = pad_to_multiple(x, 16)
    assert padded[0, 0, 0, 20].item() == 18.0  # reflection of column 18 around column 19


# --- every registered model -------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_shapes_at_odd_sizes(name):
    model = tiny(name).eval()
    with torch.no_grad():
        for shape in [(2, 3, 37, 45), (1, 3, 64, 64), (1, 3, 20, 100), (1, 3, 1, 7)]:
            out = model(torch.randn(shape))
            assert out.shape == (shape[0], 1, *shape[2:])
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_shapes_multiclass_single_channel(name):
    model = tiny(name, num_classes=3, in_channels=1).eval()
    assert (model.num_classes, model.in_channels) == (3, 1)
    with torch.no_grad():
        out = model(torch.randn(2, 1, 33, 40))
    assert out.shape == (2, 3, 33, 40)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_training_steps_lower_the_loss(name):
    model = tiny(name).train()
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 32, 32, generator=generator)
    target = (torch.rand(2, 1, 32, 32, generator=generator) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameter_groups(lr=1e-2, encoder_lr=1e-2))
    loss_fn = nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = loss_fn(model(images), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_rebuild_from_config_gives_identical_outputs(name):
    model = tiny(name).eval()
    json.dumps(model.config)
    assert model.arch == name
    rebuilt = create_model(model.arch, **model.config).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_parameter_groups_cover_every_parameter_once(name):
    model = tiny(name)
    groups = model.parameter_groups(lr=1e-3)
    grouped = [id(p) for group in groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    assert len(grouped) == len(set(grouped))


# --- architecture specifics -------------------------------------------------------------------


def test_unet_pp_deep_supervision_returns_a_list_in_training_only():
    model = tiny("unet_pp", deep_supervision=True)
    x = torch.randn(2, 3, 37, 45)
    outputs = model.train()(x)
    assert isinstance(outputs, list) and len(outputs) == 4
    assert all(out.shape == (2, 1, 37, 45) for out in outputs)
    with torch.no_grad():
        final = model.eval()(x)
    assert isinstance(final, torch.Tensor) and final.shape == (2, 1, 37, 45)


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_attention_gates_keep_their_last_coefficients(name):
    model = tiny(name).eval()
    gates = [m for m in model.modules() if isinstance(m, AttentionGate)]
    assert len(gates) == 4
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 48))
    for gate in gates:
        alpha = gate.last_attention
        assert alpha is not None and not alpha.requires_grad
        assert alpha.shape[:2] == (2, 1)
        assert alpha.min() >= 0 and alpha.max() <= 1


# --- pretrained encoder -----------------------------------------------------------------------


def test_pretrained_parameter_groups_split_encoder_and_decoder():
    model = tiny(PRETRAINED)
    groups = {group["name"]: group for group in model.parameter_groups(lr=1e-4, encoder_lr=1e-5)}
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    assert groups["encoder"]["lr"] == 1e-5 and groups["decoder"]["lr"] == 1e-4
    assert {id(p) for p in groups["encoder"]["params"]} == encoder_ids
    assert not encoder_ids & {id(p) for p in groups["decoder"]["params"]}
    assert model.parameter_groups(lr=1e-3)[0]["lr"] == pytest.approx(1e-4)


def test_encoder_reports_one_feature_map_per_stride():
    model = tiny(PRETRAINED)
    features = model.encoder(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == list(model.encoder.out_channels)
    assert [64 // f.shape[-1] for f in features] == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_encoder_weights_from_a_file(tmp_path, wrap):
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(state if wrap is None else {wrap: state}, path)
    model = tiny(PRETRAINED, encoder_weights=str(path))
    assert torch.equal(model.encoder.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.encoder.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert model.config["encoder_weights"] == str(path)


def test_encoder_weights_adapt_to_one_input_channel(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = tiny(PRETRAINED, encoder_weights=str(path), in_channels=1)
    expected = state["conv1.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(model.encoder.conv1.weight.detach(), expected)


def test_missing_encoder_weights_file_is_named(tmp_path):
    path = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        tiny(PRETRAINED, encoder_weights=str(path))


def test_mismatched_encoder_weights_name_the_file(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state["layer1.0.conv1.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="partial.pth.*layer1.0.conv1.weight"):
        tiny(PRETRAINED, encoder_weights=str(path))


def test_imagenet_weights_offline_error_explains_what_to_do(monkeypatch):
    def offline(url, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="could not be downloaded") as info:
        tiny(PRETRAINED, encoder_weights="imagenet")
    message = str(info.value)
    assert "resnet18-" in message and "--encoder-weights PATH" in message
    assert "--encoder-weights none" in message


def test_no_encoder_weights_touch_neither_network_nor_disk(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("encoder_weights='none' must not load anything")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert tiny(PRETRAINED, encoder_weights="none").config["encoder_weights"] == "none"
