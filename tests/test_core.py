"""The core every stage stands on: one error base, torch-free CLIs, one model-info record,
the registry's capabilities, options from the code, and imports without side effects."""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.errors import EXIT_FAILED, ArgumentError, ImageError, SegkitError
from runtime.metadata import IMAGENET_MEAN, IMAGENET_STD, MetadataError, ModelInfo
from trainer.checkpoint import build_checkpoint, load_checkpoint, save_checkpoint
from trainer.config import TrainConfig
from trainer.models import create_model, list_models, model_spec
from trainer.models.blocks import AttentionGate

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "trainer", "export", "serving", "benchmarks")
OPTIONAL = {"ray"}  # the serve extra: its modules are left out where it is not installed


def _modules() -> list[str]:
    """Every importable module of the project's packages (not pytest files)."""
    names = []
    for package in PACKAGES:
        names.append(package)
        path = [str(REPO_ROOT / package)]
        for info in pkgutil.walk_packages(path, prefix=f"{package}."):
            leaf = info.name.rsplit(".", 1)[-1]
            if not leaf.startswith(("test_", "conftest")) and leaf != "__main__":
                names.append(info.name)
    return names


def _exception_classes() -> list[type[BaseException]]:
    found = {}
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name in OPTIONAL:
                continue
            raise
        for _, value in inspect.getmembers(module, inspect.isclass):
            is_error = issubclass(value, Exception) and not issubclass(value, Warning)
            if is_error and value.__module__ == name:
                found[f"{name}.{value.__qualname__}"] = value
    return list(found.values())


# --- one error base -------------------------------------------------------------------------


def test_every_exception_class_of_the_project_is_a_segkit_error():
    classes = _exception_classes()
    assert len(classes) >= 10  # the walk really found the project's errors
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, SegkitError)]
    assert not strays, f"not SegkitError subclasses: {strays}"
    builtin_less = [c.__qualname__ for c in classes if c.__bases__ == (SegkitError,)]
    assert not builtin_less, f"should also derive from the builtin they stand for: {builtin_less}"


def test_errors_name_their_subject_survive_pickling_and_carry_exit_codes():
    from trainer.engine import TrainingDiverged

    err = ImageError(Path("a b.png"), "cannot decode image")
    assert str(err) == "a b.png: cannot decode image" and err.path == Path("a b.png")
    copy = pickle.loads(pickle.dumps(err))  # DataLoader workers and Ray replicas pickle them
    assert type(copy) is ImageError and copy.subject == err.subject
    assert isinstance(err, ValueError) and err.exit_code == 2
    assert TrainingDiverged("loss", "nan").exit_code == EXIT_FAILED


# --- torch-free command lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    "module", ["trainer.cli", "export.cli", "runtime.cli", "benchmarks.report"]
)
def test_importing_a_cli_leaves_torch_out(module):
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True)
    assert result.returncode == 0, f"importing {module} imported torch: {result.stderr!r}"


def test_lazy_package_names_still_work():
    import trainer

    assert trainer.create_model is create_model and "unet" in trainer.list_models()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        trainer.nope  # noqa: B018


# --- the model-info record ------------------------------------------------------------------


def _info(**changes) -> ModelInfo:
    fields = dict(
        num_classes=1,
        classes=["background", "foreground"],
        input_size=(32, 32),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        threshold=0.5,
    )
    return ModelInfo(**{**fields, **changes})


def test_checkpoint_stores_the_record_and_loading_validates_it(tmp_path):
    model = create_model("unet", width=4)
    info = _info(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), threshold=0.3)
    path = save_checkpoint(
        build_checkpoint(model, info=info, epoch=1, metrics={}), tmp_path / "a.pth"
    )
    assert ModelInfo.from_dict(load_checkpoint(path)) == info

    ckpt = torch.load(path, weights_only=True)
    ckpt["std"] = [0.2, 0.0, 0.2]
    bad = tmp_path / "bad.pth"
    torch.save(ckpt, bad)
    with pytest.raises(MetadataError, match=r"bad.pth: bad std \(0.2, 0.0, 0.2\)"):
        load_checkpoint(bad)


def test_a_checkpoint_evaluates_with_its_own_normalization(tmp_path):
    """evaluate reads mean/std from the checkpoint: with other values than ImageNet's the
    metrics follow the checkpoint's values, and equal a direct computation with them."""
    from trainer.data import make_sample_dataset
    from trainer.evaluate import evaluate_checkpoint

    data = make_sample_dataset(tmp_path / "data", n_train=2, n_test=3, size=32, seed=3)
    torch.manual_seed(0)
    model = create_model("unet", width=4)
    results = {}
    for name, (mean, std) in {
        "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
        "own": ((0.9, 0.1, 0.5), (0.05, 0.5, 0.1)),
    }.items():
        info = _info(mean=mean, std=std)
        ckpt = build_checkpoint(model, info=info, epoch=1, metrics={})
        path = save_checkpoint(ckpt, tmp_path / f"{name}.pth")
        results[name] = evaluate_checkpoint(str(path), str(data), device="cpu")
        results[name + "_direct"] = _direct_metrics(model, data, mean, std)
    assert results["own"]["dice"] == pytest.approx(results["own_direct"]["dice"], abs=1e-6)
    assert results["imagenet"]["dice"] == pytest.approx(
        results["imagenet_direct"]["dice"], abs=1e-6
    )
    assert results["own"]["map"] != pytest.approx(results["imagenet"]["map"], abs=1e-4)


def _direct_metrics(model, data: Path, mean, std) -> dict:
    from trainer.data import SegmentationDataset, build_transform, resolve_splits
    from trainer.metrics import SegmentationMetrics

    splits, _ = resolve_splits(data)
    dataset = SegmentationDataset(
        splits["val"], build_transform("plain", (32, 32), train=False, mean=mean, std=std)
    )
    metrics = SegmentationMetrics(num_classes=1, threshold=0.5)
    model.eval()
    with torch.no_grad():
        for index in range(len(dataset)):
            x, mask = dataset[index]
            metrics.update(model(x[None]), mask[None])
    return metrics.compute()


# --- the registry's capabilities ------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_registry_capabilities_match_the_built_model(name):
    spec = model_spec(name)
    kwargs = {"width": 4, **({"encoder": "resnet18"} if spec.accepts("encoder") else {})}
    model = create_model(name, **kwargs)
    has_gates = any(isinstance(m, AttentionGate) for m in model.modules())
    assert spec.attention_gates == has_gates
    assert spec.pretrained_encoder == spec.accepts("encoder_weights")
    assert spec.deep_supervision == spec.accepts("deep_supervision")
    assert set(spec.arguments) >= {"in_channels", "num_classes", "width"}
    assert set(model.config) == set(spec.arguments)


def test_config_asks_the_registry_not_the_name():
    scratch = TrainConfig(arch="unet", encoder="resnet18").resolved()
    assert "encoder" not in scratch.model_kwargs() and not scratch.has_pretrained_encoder
    pretrained = [n for n in list_models() if model_spec(n).pretrained_encoder]
    cfg = TrainConfig(arch=pretrained[0], data="somewhere").resolved()
    assert cfg.has_pretrained_encoder and cfg.encoder_weights == "imagenet"
    assert cfg.model_kwargs()["encoder_weights"] == "imagenet"


# --- options from the code ------------------------------------------------------------------


def test_unknown_config_keys_are_refused_with_a_suggestion(tmp_path):
    with pytest.raises(ArgumentError, match=r"config: unknown option 'epoch' \(similar: epochs"):
        TrainConfig.from_dict({"epoch": 3})
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TrainConfig().to_dict(), "extra": {}}))  # an older run's file
    assert TrainConfig.load(path) == TrainConfig()


def test_cli_choices_and_defaults_come_from_the_config():
    from click.testing import CliRunner

    from trainer.cli import main
    from trainer.config import AUG_PRESETS, LOSSES

    params = {p.name: p for p in main.commands["fit"].params}
    assert tuple(params["loss"].type.choices) == LOSSES
    assert tuple(params["aug"].type.choices) == AUG_PRESETS
    for name in ("dice_weight", "patience", "seed", "threshold", "val_fraction", "loss", "aug"):
        assert params[name].default == TrainConfig.default(name), name
    result = CliRunner().invoke(main, ["fit", "--loss", "dicee"])
    assert result.exit_code == 2 and "'dicee' is not one of" in result.output


# --- importing changes no global state ------------------------------------------------------


def test_no_module_switches_matplotlib_backend_and_pictures_use_no_pyplot(tmp_path):
    code = f"""
import importlib, sys, matplotlib
matplotlib.use("svg")
for name in {_modules()!r}:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name not in {OPTIONAL!r}:
            raise
from trainer.plots import plot_curves
plot_curves([("run", [{{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "dice": 0.5,
    "iou": 0.4, "acc": 0.9, "map": 0.6, "lr": 0.001}}])], {str(tmp_path / "c.png")!r})
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_gray_rgba_and_16_bit_convert_the_same_from_files_and_arrays(tmp_path):
    import cv2

    from runtime.images import read_image
    from runtime.inputs import to_rgb

    rng = np.random.default_rng(0)
    for array in (
        rng.integers(0, 256, (6, 7), dtype=np.uint8),
        rng.integers(0, 65536, (6, 7, 3), dtype=np.uint16),
        rng.integers(0, 256, (6, 7, 4), dtype=np.uint8),
    ):
        path = tmp_path / "x.png"
        cv2.imwrite(str(path), array)  # OpenCV writes colour in BGR(A) order
        np.testing.assert_array_equal(read_image(path), to_rgb(array, "x", bgr=True))
