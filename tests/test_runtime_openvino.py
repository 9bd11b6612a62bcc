"""The OpenVINO backend: .onnx and IR files, precision, threads, the cache, `auto`, no OpenVINO."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from runtime_models import exported_model, scene

from runtime import ArgumentError, ModelError, Segmenter
from runtime.backends import auto_backend, open_backend
from runtime.cpu import has_native_bf16

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")
openvino_backend = pytest.importorskip("runtime.backends.openvino")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return exported_model(tmp_path_factory, gain=50.0)


@pytest.fixture(scope="module")
def images():
    return [scene(seed, 40 + 7 * seed, 60 - 3 * seed) for seed in range(6)]


def test_fp32_matches_onnxruntime(model, images):
    with (
        Segmenter(model, backend="onnxruntime") as ort_seg,
        Segmenter(model, backend="openvino", precision="fp32") as ov_seg,
    ):
        assert ov_seg.backend.precision == "fp32" and "precision='fp32'" in repr(ov_seg)
        for want, got in zip(
            ort_seg.predict_proba(images), ov_seg.predict_proba(images), strict=True
        ):
            np.testing.assert_allclose(got, want, atol=1e-4)


def test_auto_precision_is_bf16_where_the_cpu_has_it(model, monkeypatch):
    with Segmenter(model, backend="openvino") as seg:
        assert seg.backend.precision == ("bf16" if has_native_bf16() else "fp32")
    monkeypatch.setattr(openvino_backend, "has_native_bf16", lambda: False)
    with Segmenter(model, backend="openvino") as seg:
        assert seg.backend.precision == "fp32" and "precision='fp32'" in repr(seg)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_set_inference_threads(model, threads):
    with Segmenter(model, backend="openvino", threads=threads) as seg:
        assert seg.backend.threads == threads
        assert int(seg.backend.compiled.get_property("INFERENCE_NUM_THREADS")) == threads


def test_compiled_models_are_cached(model, tmp_path):
    open_backend(model, "openvino").close()
    assert any((tmp_path / "cache" / "openvino").iterdir())


def test_ir_round_trip_gives_the_same_masks(model, images, tmp_path):
    xml = openvino_backend.save_ir(model, tmp_path / "ir" / "model.xml")
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    with (
        Segmenter(model, backend="openvino", precision="fp32") as from_onnx,
        Segmenter(xml, precision="fp32") as from_ir,
    ):
        assert from_ir.backend.name == "openvino" and from_ir.metadata == from_onnx.metadata
        for a, b in zip(from_onnx.predict(images), from_ir.predict(images), strict=True):
            np.testing.assert_array_equal(a, b)
    xml.with_suffix(".bin").unlink()
    with pytest.raises(ModelError, match=r"model.xml: the IR's weights .*model.bin are missing"):
        Segmenter(xml)


def test_auto_picks_openvino_on_the_cpu(model):
    assert auto_backend(model, device="cpu") == "openvino"
    assert auto_backend(model, device="cuda") == "onnxruntime"
    with Segmenter(model, device="cpu") as seg:
        assert seg.backend.name == "openvino" and "backend='openvino'" in repr(seg)


def test_bf16_needs_openvino(model):
    with pytest.raises(ArgumentError, match="precision: bf16 runs on the openvino backend only"):
        Segmenter(model, backend="onnxruntime", precision="bf16")
    with pytest.raises(ArgumentError, match="precision: unknown value 'int4'"):
        Segmenter(model, precision="int4")
    with pytest.raises(ModelError, match="the openvino backend runs on the CPU"):
        Segmenter(model, backend="openvino", device="cuda")


def test_missing_openvino_is_a_clear_error(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with pytest.raises(
        ModelError, match=r"needs OpenVINO, which is not installed \(pip install openvino"
    ):
        Segmenter(model, backend="openvino")
    with Segmenter(model, device="cpu") as seg:  # auto falls back to ONNX Runtime
        assert seg.backend.name == "onnxruntime"
