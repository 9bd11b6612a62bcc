"""`segexport evaluate`: any model file scored against ground truth, at input and native size."""

from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner

from export.cli import main
from export.evaluate import evaluate_model
from export.onnx_export import export_onnx
from runtime.metadata import ModelInfo
from trainer.checkpoint import build_checkpoint, save_checkpoint
from trainer.data.source import DataSource
from trainer.evaluate import evaluate_checkpoint

METRICS = ("acc", "dice", "iou", "map")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from trainer.models import create_model

    torch.manual_seed(0)
    model = create_model("unet", width=4)
    with torch.no_grad():
        model.head.weight *= 50.0  # masks that depend on the image
    info = ModelInfo(1, ["background", "foreground"], (32, 32), (0.5,) * 3, (0.25,) * 3, 0.5)
    ckpt = build_checkpoint(model, info=info, epoch=1, metrics={})
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("eval") / "best.pth")


@pytest.fixture(scope="module")
def onnx_model(checkpoint):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(checkpoint, exporter="torchscript").path


def test_checkpoint_scores_as_segtrain_evaluate(checkpoint, tiny_dataset):
    report = evaluate_model(checkpoint, DataSource(data=str(tiny_dataset)))
    trained = evaluate_checkpoint(str(checkpoint), tiny_dataset)
    assert report["backend"] == "pytorch" and report["images"] == trained["images"] == 4
    for key in METRICS:
        assert report[key] == pytest.approx(trained[key], abs=1e-3)
        assert 0.0 <= report["native_size"][key] <= 1.0


def test_onnx_scores_as_its_checkpoint(checkpoint, onnx_model, tiny_dataset):
    source = DataSource(data=str(tiny_dataset))
    torch_report = evaluate_model(checkpoint, source)
    onnx_report = evaluate_model(onnx_model, source, backend="onnxruntime")
    assert onnx_report["backend"] == "onnxruntime" and onnx_report["precision"] == "fp32"
    for key in METRICS:
        assert onnx_report[key] == pytest.approx(torch_report[key], abs=1e-3)
        assert onnx_report["native_size"][key] == pytest.approx(
            torch_report["native_size"][key], abs=1e-3
        )


def test_cli_prints_json_and_takes_the_data_options(onnx_model, tiny_dataset):
    result = CliRunner().invoke(
        main, ["evaluate", str(onnx_model), "--data", str(tiny_dataset), "--split", "train"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["split"] == "train" and report["images"] == 8
    assert set(METRICS) <= set(report) and set(METRICS) == set(report["native_size"])
    missing = CliRunner().invoke(main, ["evaluate", str(onnx_model)])
    assert missing.exit_code == 2 and "--data: give a dataset" in missing.output
