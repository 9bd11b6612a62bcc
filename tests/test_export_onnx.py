"""ONNX export of every architecture, checked against PyTorch in ONNX Runtime."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.errors import ExportError
from export.onnx_export import (
    DEFAULT_OPSET,
    SUPPORTED_OPSETS,
    default_onnx_path,
    export_onnx,
    resolve_exporter,
)
from export.parity import check_parity
from export.simplify import simplify as simplify_graph
from export.source import file_sha256
from runtime.metadata import ModelInfo, ModelMetadata
from trainer.checkpoint import build_checkpoint, save_checkpoint
from trainer.models import create_model, list_models

EXTRA = {"pretrained_attention_r2unet": {"encoder": "resnet18", "encoder_weights": "none"}}
SIZE = 64


def make_checkpoint(path: Path, arch: str = "unet", num_classes: int = 1, size: int = SIZE) -> Path:
    torch.manual_seed(0)
    model = create_model(arch, width=4, num_classes=num_classes, **EXTRA.get(arch, {}))
    classes = ["background", "foreground"] if num_classes == 1 else ["background", "a", "b"]
    ckpt = build_checkpoint(
        model,
        info=ModelInfo(
            num_classes=model.num_classes,
            classes=classes,
            input_size=(size, size),
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            threshold=0.5,
        ),
        epoch=7,
        metrics={"dice": 0.75, "iou": 0.6},
    )
    return save_checkpoint(ckpt, path)


def read_metadata(path: Path) -> ModelMetadata:
    model = onnx.load(str(path))
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(path))


@pytest.mark.parametrize("arch", list_models())
def test_fp32_dynamic_batch_and_hw_matches_pytorch(arch, tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", arch)
    result = export_onnx(ckpt, dynamic_hw=True)
    assert result.path == tmp_path / "best.onnx"
    onnx.checker.check_model(onnx.load(str(result.path)), full_check=True)

    meta = read_metadata(result.path)
    assert (meta.arch, meta.precision, meta.opset) == (arch, "fp32", DEFAULT_OPSET)
    assert meta.dynamic_batch and meta.dynamic_hw and meta.input_size == (SIZE, SIZE)
    assert meta.source_sha256 == file_sha256(ckpt) and meta.metrics == {"dice": 0.75, "iou": 0.6}

    stride = meta.stride
    for size, batch_size in [(None, 8), ((stride + 3, 2 * stride + 5), 3)]:
        report = check_parity(result.path, ckpt, n=5, batch_size=batch_size, size=size)
        assert report.passed, report.format()
        assert report.max_abs_diff <= 1e-4 and report.agreement >= 0.9999


@pytest.mark.parametrize("arch", list_models())
def test_fp16_graph_runs_on_cpu_and_agrees(arch, tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", arch)
    result = export_onnx(ckpt, tmp_path / "half.onnx", fp16=True)
    model = onnx.load(str(result.path))
    weights = [init for init in model.graph.initializer if init.dims and np.prod(init.dims) > 8]
    assert weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    io_types = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io_types == {onnx.TensorProto.FLOAT}

    report = check_parity(result.path, ckpt, n=6)
    assert report.precision == "fp16" and report.passed, report.format()
    assert report.agreement >= 0.995


def test_multiclass_softmax_output(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", "unet", num_classes=3, size=32)
    result = export_onnx(ckpt)
    assert read_metadata(result.path).output_kind == "softmax"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (probs,) = session.run(["probs"], {"images": np.random.rand(2, 3, 32, 32).astype(np.float32)})
    assert probs.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert check_parity(result.path, ckpt, n=4).passed


def test_fixed_batch_and_size_are_declared(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", size=32)
    result = export_onnx(ckpt, batch=3)
    graph = onnx.load(str(result.path)).graph
    dims = [
        [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (graph.input[0], graph.output[0])
    ]
    assert dims == [[3, 3, 32, 32], [3, 1, 32, 32]]
    meta = read_metadata(result.path)
    assert not meta.dynamic_batch and meta.batch_size == 3 and not meta.dynamic_hw
    report = check_parity(result.path, ckpt, n=5)  # 5 images in fixed batches of 3
    assert report.n_images == 5 and report.passed


def test_two_opsets_and_both_exporters(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", size=32)
    exporter = resolve_exporter("auto")
    for opset in (DEFAULT_OPSET, max(SUPPORTED_OPSETS[exporter])):
        out = export_onnx(ckpt, tmp_path / f"op{opset}.onnx", opset=opset).path
        assert onnx.load(str(out)).opset_import[0].version == opset
        assert check_parity(out, ckpt, n=2).passed
    legacy = export_onnx(ckpt, tmp_path / "legacy.onnx", exporter="torchscript", dynamic_hw=True)
    assert read_metadata(legacy.path).exporter == "torchscript"
    assert check_parity(legacy.path, ckpt, n=2, size=(48, 80)).passed


@pytest.mark.parametrize("opset", [9, 99])
def test_unsupported_opset_is_refused_before_any_work(opset, tmp_path):
    with pytest.raises(ExportError, match=f"--opset: unsupported opset {opset}"):
        export_onnx(tmp_path / "missing.pth", opset=opset)


def test_simplify_folds_constants_and_keeps_results(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", size=32)
    plain = export_onnx(ckpt, tmp_path / "plain.onnx", exporter="torchscript")
    slim = export_onnx(ckpt, tmp_path / "slim.onnx", exporter="torchscript", simplify=True)
    assert slim.simplify_summary and "->" in slim.simplify_summary
    assert slim.nodes < plain.nodes
    assert check_parity(slim.path, ckpt, n=3).passed


def test_simplify_keeps_the_segkit_metadata(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", size=32)
    plain = export_onnx(ckpt, tmp_path / "plain.onnx", exporter="torchscript")
    model = onnx.load(plain.path)
    props = {p.key: p.value for p in model.metadata_props}
    assert any(key.startswith("segkit.") for key in props)
    slim = simplify_graph(model).model
    assert {p.key: p.value for p in slim.metadata_props} == props
    assert ModelMetadata.from_props(props) == plain.metadata


def test_failed_export_leaves_the_existing_file_intact(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "best.pth", size=32)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous model")

    def broken_check(*args, **kwargs):
        raise onnx.checker.ValidationError("simulated checker failure")

    monkeypatch.setattr(onnx.checker, "check_model", broken_check)
    with pytest.raises(ExportError, match="model.onnx: the exported graph failed onnx.checker"):
        export_onnx(ckpt, out)
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "model.onnx"]


def test_successful_export_replaces_the_existing_file(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", size=32)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous model")
    export_onnx(ckpt, out)
    assert read_metadata(out).arch == "unet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "model.onnx"]


def test_default_output_is_beside_the_checkpoint():
    assert default_onnx_path("runs/x/best.pth") == Path("runs/x/best.onnx")


def test_dynamic_hw_needs_an_input_size_of_at_least_the_stride(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth", size=8)
    with pytest.raises(
        ExportError, match=r"--dynamic-hw needs an input size of at least the stride"
    ):
        export_onnx(ckpt, dynamic_hw=True)
    assert not (tmp_path / "best.onnx").exists()


def test_exporter_failure_is_one_clear_error(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "best.pth", size=32)

    def failing_export(*args, **kwargs):
        raise RuntimeError("Constraints violated (height)\nlong traceback text")

    monkeypatch.setattr(torch.onnx, "export", failing_export)
    with pytest.raises(ExportError) as info:
        export_onnx(ckpt, dynamic_hw=True, exporter="torchscript")
    message = str(info.value)
    assert message.startswith(
        f"{ckpt}: torch.onnx (torchscript exporter, opset 18) could not export"
    )
    assert "Constraints violated (height)" in message and "long traceback" not in message
    assert "H, W >= 16" in message


def test_dynamo_without_onnxscript_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else real_find_spec(name, *a),
    )
    assert resolve_exporter("auto") == "torchscript"
    with pytest.raises(ExportError, match="--exporter: the dynamo exporter needs the onnxscript"):
        resolve_exporter("dynamo")
