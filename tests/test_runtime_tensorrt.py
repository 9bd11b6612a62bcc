"""The TensorRT backend: predictions on a GPU machine with TensorRT, error paths everywhere.

The GPU tests build an engine from a tiny ONNX model and compare the Segmenter's masks with
ONNX Runtime's; they skip with the reason where TensorRT, cuda-python or a GPU is missing.
The error-path tests put a stand-in `tensorrt` module in `sys.modules`.
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from fake_tensorrt import fake_tensorrt, needs_gpu
from runtime_models import exported_model, scene

from runtime import MetadataError, ModelError, Segmenter
from runtime.metadata import ModelMetadata, sidecar_path


@needs_gpu
def test_engine_predictions_match_onnxruntime(tmp_path_factory, tmp_path):
    from export.tensorrt_build import build_engine

    onnx_path = exported_model(tmp_path_factory, dynamic_hw=True, gain=50.0)
    engine = tmp_path / "model.engine"
    build_engine(onnx_path, engine, batch=(1, 2, 4), timing_cache=tmp_path / "timing.cache")
    images = [scene(i, 30 + 7 * i, 50) for i in range(7)]  # 7 > the profile's maximum of 4
    with Segmenter(engine, batch_size=8) as trt, Segmenter(onnx_path, device="cpu") as cpu:
        assert trt.backend.name == "tensorrt" and trt.backend.max_batch == 4
        for a, b in zip(trt.predict_proba(images), cpu.predict_proba(images), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3)
        tiled = trt.predict(scene(9, 100, 120), tile=True)
        assert tiled.shape == (100, 120)
    trt.close()  # closing twice is harmless


@pytest.fixture
def engine_file(tmp_path_factory, tmp_path):
    onnx_path = exported_model(tmp_path_factory)
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    meta = ModelMetadata.from_props(props).replace(engine={"tensorrt_version": "10.8.0"})
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine")
    sidecar_path(engine).write_text(meta.to_json())
    return engine


def test_engine_from_another_tensorrt_version(engine_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.9.1"))
    with pytest.raises(ModelError, match=f"{engine_file}: engine was built with TensorRT 10.8.0"):
        Segmenter(engine_file)


def test_engine_that_does_not_deserialize(engine_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.8.0", engine=None))
    with pytest.raises(ModelError, match="TensorRT could not deserialize the engine"):
        Segmenter(engine_file, backend="tensorrt", device="cuda")


def test_engine_without_sidecar(tmp_path):
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"serialized engine")
    with pytest.raises(MetadataError, match="model.plan.json: metadata file not found"):
        Segmenter(engine)
