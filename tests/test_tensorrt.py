"""TensorRT engines: build, sidecar, parity (GPU machines with TensorRT), and the error paths.

The build/parity tests need the `tensorrt` package and an NVIDIA GPU and skip otherwise. The
error-path tests run everywhere: they put a stand-in `tensorrt` module in `sys.modules` to
reach the version check and the failed-deserialization branch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
import torch
from click.testing import CliRunner
from fake_tensorrt import fake_tensorrt, needs_gpu

from export.cli import main
from export.errors import ExportError
from export.onnx_export import export_onnx
from export.params import parse_range
from export.tensorrt_build import PrecisionPlan, build_engine, plan_precision
from runtime.metadata import ModelInfo, ModelMetadata, sidecar_path
from trainer.checkpoint import build_checkpoint, save_checkpoint
from trainer.models import create_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("trt")
    torch.manual_seed(0)
    ckpt = build_checkpoint(
        create_model("unet", width=4),
        info=ModelInfo(
            num_classes=1,
            classes=["background", "foreground"],
            input_size=(64, 64),
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            threshold=0.5,
        ),
        epoch=1,
        metrics={"dice": 0.5},
    )
    ckpt_path = save_checkpoint(ckpt, folder / "best.pth")
    return ckpt_path, export_onnx(ckpt_path, dynamic_hw=True).path


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


# --- on a GPU machine with TensorRT ---------------------------------------------------------


@needs_gpu
def test_fp32_engine_matches_pytorch(exported, tmp_path):
    import tensorrt

    ckpt, onnx_path = exported
    engine = tmp_path / "model.engine"
    result = run("trt", "--onnx", onnx_path, "-o", engine, "--batch", "1:2:4",
                 "--timing-cache", tmp_path / "timing.cache")  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = ModelMetadata.read_json(sidecar_path(engine))
    assert meta.precision == "fp32" and meta.engine["tensorrt_version"] == tensorrt.__version__
    assert meta.engine["profile"]["images"]["min"][0] == 1 and meta.dynamic_hw
    assert (tmp_path / "timing.cache").is_file()
    result = run("check", engine, "--ckpt", ckpt, "--n", 6, "--batch-size", 3, "--json")
    assert result.exit_code == 0, result.output
    result = run("check", engine, "--ckpt", ckpt, "--n", 2, "--size", "48,80")
    assert result.exit_code == 0, result.output


@needs_gpu
def test_fp16_engine_from_checkpoint(exported, tmp_path):
    ckpt, _ = exported
    engine = tmp_path / "half.engine"
    result = run("trt", "--ckpt", ckpt, "--fp16", "-o", engine, "--batch", "1:2:4")
    assert result.exit_code == 0, result.output
    assert ModelMetadata.read_json(sidecar_path(engine)).precision == "fp16"
    result = run("check", engine, "--ckpt", ckpt, "--n", 4)
    assert result.exit_code == 0, result.output


@needs_gpu
def test_int8_engine_from_a_qdq_graph(exported, tmp_path):
    import cv2
    from runtime_models import scene

    from export.quantize import quantize_model

    _, onnx_path = exported
    calib = tmp_path / "calib"
    calib.mkdir()
    for seed in range(12):
        cv2.imwrite(str(calib / f"{seed}.png"), scene(seed, 64, 64))
    int8 = quantize_model(onnx_path, calib, tmp_path / "m.int8.onnx", n=8, force=True).path
    engine = tmp_path / "m.int8.engine"
    result = run("trt", "--onnx", int8, "-o", engine, "--batch", "1:2:4")
    assert result.exit_code == 0, result.output
    meta = ModelMetadata.read_json(sidecar_path(engine))
    assert meta.precision == "int8" and meta.calibration["method"] == "minmax"


# --- everywhere --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("major", "graph", "fp16", "plan"),
    [
        (10, "int8", False, PrecisionPlan(False, ("INT8",), "int8")),
        (10, "int8", True, PrecisionPlan(False, ("INT8", "FP16"), "int8")),
        (11, "int8", False, PrecisionPlan(True, (), "int8")),
        (10, "fp16", False, PrecisionPlan(True, (), "fp16")),
        (10, "fp32", True, PrecisionPlan(False, ("FP16",), "fp16")),
        (10, "fp32", False, PrecisionPlan(False, (), "fp32")),
        (11, "fp32", False, PrecisionPlan(True, (), "fp32")),
    ],
)
def test_precision_plan_uses_explicit_quantization(major, graph, fp16, plan):
    """INT8 comes from the QDQ graph: the INT8 flag on TensorRT 10, never a calibrator."""
    assert plan_precision(major, graph, fp16, Path("m.onnx")) == plan


def test_tensorrt_11_takes_fp16_from_the_graph_only():
    with pytest.raises(ExportError, match="strongly typed, so FP16 must come from the graph"):
        plan_precision(11, "int8", True, Path("m.onnx"))


def test_parse_range():
    assert parse_range("1:8:32", "--batch") == (1, 8, 32)
    assert parse_range("4", "--batch") == (4, 4, 4)
    for bad in ("8:1:32", "0:1:2", "a:b:c", "1:2"):
        with pytest.raises(ExportError, match="--batch: expected MIN:OPT:MAX"):
            parse_range(bad, "--batch")


def test_ranges_are_checked_against_the_onnx_graph(exported, tmp_path):
    ckpt, _ = exported
    fixed = export_onnx(ckpt, tmp_path / "fixed.onnx", batch=2).path
    with pytest.raises(ExportError, match="fixed batch of 2; use --batch 2"):
        build_engine(fixed, tmp_path / "m.engine", batch=(1, 2, 4))
    with pytest.raises(ExportError, match="exported for a fixed input size"):
        build_engine(fixed, tmp_path / "m.engine", batch=(2, 2, 2), height=(32, 64, 128))
    result = run("trt", "--onnx", fixed, "--dynamic-hw", "--batch", "2")
    assert result.exit_code == 2 and "this graph has a fixed H/W" in result.stderr
    assert not (tmp_path / "m.engine").exists()


def test_onnx_without_metadata_is_refused(exported, tmp_path):
    _, onnx_path = exported
    bare = onnx.load(str(onnx_path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    result = run("trt", "--onnx", tmp_path / "bare.onnx")
    assert result.exit_code == 2 and "no segkit metadata" in result.stderr


def write_engine(exported, folder: Path, built_with: str) -> Path:
    _, onnx_path = exported
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    meta = ModelMetadata.from_props(props).replace(engine={"tensorrt_version": built_with})
    engine = folder / "model.engine"
    engine.write_bytes(b"serialized engine")
    sidecar_path(engine).write_text(meta.to_json())
    return engine


def test_engine_from_another_tensorrt_version(exported, tmp_path, monkeypatch):
    ckpt, _ = exported
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.8.0"))
    engine = write_engine(exported, tmp_path, built_with="10.3.0")
    result = run("check", engine, "--ckpt", ckpt)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith(f"Error: {engine}: engine was built with TensorRT 10.3.0")
    assert "TensorRT 10.8.0 is installed" in line and "rebuild it with `segexport trt`" in line


def test_engine_that_does_not_deserialize(exported, tmp_path, monkeypatch):
    ckpt, _ = exported
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.8.0", engine=None))
    engine = write_engine(exported, tmp_path, built_with="10.8.0")
    result = run("check", engine, "--ckpt", ckpt)
    assert result.exit_code == 2
    assert "TensorRT could not deserialize the engine" in result.stderr


def test_engine_without_sidecar(exported, tmp_path):
    ckpt, _ = exported
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine")
    result = run("check", engine, "--ckpt", ckpt)
    assert result.exit_code == 2
    assert f"Error: {sidecar_path(engine)}: metadata file not found" in result.stderr
