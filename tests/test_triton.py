"""`segexport triton`: model repositories whose config.pbtxt Triton's own protobuf parses, and
`--preprocess` graphs that match the runtime's preprocessing.

No Triton server runs here: the configuration is checked with Triton's `ModelConfig`
protobuf (from tritonclient) and the ONNX files with ONNX Runtime."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from runtime_models import exported_model

from export.cli import main
from export.onnx_export import export_onnx
from export.preprocess_graph import preprocessing_graph
from export.triton import write_repository
from runtime import ModelError, Segmenter
from runtime.images import read_image
from runtime.metadata import ModelMetadata, sidecar_path
from runtime.preprocess import preprocess

text_format = pytest.importorskip("google.protobuf.text_format")
model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (the serve extra) is needed"
)
TOLERANCE_LEVELS = 1.05  # float resize against two uint8-rounded passes: about one level
BUTTERFLY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "nature-butterfly"


def parse(path: Path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def metadata_of(path: Path) -> ModelMetadata:
    proto = onnx.load(str(path))
    return ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props}, str(path))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return exported_model(tmp_path_factory, gain=8.0)


def test_config_comes_from_the_model_and_carries_its_metadata(model, tmp_path):
    result = CliRunner().invoke(
        main, ["triton", str(model), "-o", str(tmp_path), "--name", "seg", "--max-batch", "16",
               "--instances", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = parse(tmp_path / "seg" / "config.pbtxt")
    assert (config.name, config.platform, config.max_batch_size) == ("seg", "onnxruntime_onnx", 16)
    (image,), (probs,) = config.input, config.output
    assert (image.name, image.data_type, list(image.dims)) == (
        "images", model_config_pb2.TYPE_FP32, [3, 32, 32]
    )  # fmt: skip
    assert (probs.name, list(probs.dims)) == ("probs", [1, 32, 32])
    assert list(config.dynamic_batching.preferred_batch_size) == [1, 2, 4, 8, 16]
    group = config.instance_group[0]
    assert (group.count, group.kind) == (2, model_config_pb2.ModelInstanceGroup.KIND_CPU)
    props = {key: value.string_value for key, value in config.parameters.items()}
    assert ModelMetadata.from_props(props) == metadata_of(model)
    copied = tmp_path / "seg" / "1" / "model.onnx"
    assert copied.read_bytes() == model.read_bytes()


def test_fixed_batch_and_dynamic_size_models(tmp_path_factory, tmp_path):
    fixed = exported_model(tmp_path_factory, batch=3)
    config = parse(write_repository(fixed, tmp_path / "a").config)
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [3, 3, 32, 32]
    assert not config.HasField("dynamic_batching")
    dynamic = exported_model(tmp_path_factory, dynamic_hw=True)
    config = parse(write_repository(dynamic, tmp_path / "b").config)
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.output[0].dims) == [1, -1, -1]


def test_an_engine_gets_the_tensorrt_platform_and_its_sidecar_metadata(model, tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine bytes")
    meta = metadata_of(model).replace(engine={"tensorrt_version": "10.8.0"})
    sidecar_path(engine).write_text(meta.to_json())
    repo = write_repository(engine, tmp_path / "repo")
    config = parse(repo.config)
    assert config.platform == "tensorrt_plan" and repo.model.name == "model.plan"
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert repo.model.read_bytes() == b"serialized engine bytes"


def _photos() -> list[np.ndarray]:
    """Generated photos of several sizes, and the butterflies when they are present."""
    rng = np.random.default_rng(0)
    photos = []
    for height, width in ((97, 131), (40, 64), (300, 220), (32, 32), (21, 75)):
        coarse = rng.integers(0, 256, (max(2, height // 6), max(2, width // 6), 3), np.uint8)
        photos.append(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC))
    if BUTTERFLY.is_dir():
        photos += [read_image(p) for p in sorted(BUTTERFLY.glob("test/*.png"))[:40]]
    return photos


@pytest.mark.parametrize("size", [(32, 32), (128, 96)])
def test_preprocessing_in_the_graph_matches_the_runtime_within_one_grey_level(model, size):
    meta = metadata_of(model).replace(input_size=size)
    graph = preprocessing_graph(meta, 18, onnx.load(str(model)).ir_version)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    grey = np.asarray(meta.std, np.float32).reshape(1, -1, 1, 1) * 255
    for photo in _photos():
        expected = preprocess([photo], size, meta.mean, meta.std)
        (got,) = session.run(None, {"pixels": photo[None]})
        assert got.shape == expected.shape
        assert (np.abs(got - expected) * grey).max() <= TOLERANCE_LEVELS


def test_onnx_preprocess_export_takes_pixels_and_agrees_with_the_plain_model(model, tmp_path):
    source = model.with_name("best.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export_onnx(
            source, tmp_path / "pixels.onnx", preprocess=True, exporter="torchscript"
        )
    meta = result.metadata
    assert meta.preprocess and meta.input_name == "pixels"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert (graph_input.name, graph_input.type) == ("pixels", "tensor(uint8)")
    agree = []
    with Segmenter(model) as plain:
        for photo in _photos()[:5]:
            (probs,) = session.run(None, {"pixels": photo[None]})
            reference = plain.backend.run(preprocess([photo], (32, 32), meta.mean, meta.std))
            agree.append(((probs >= 0.5) == (reference >= 0.5)).mean())
            assert np.abs(probs - reference).max() < 0.1
    assert min(agree) >= 0.99
    with pytest.raises(ModelError, match="preprocesses inside .* takes raw uint8 pixels"):
        Segmenter(result.path)
    assert "uint8 RGB of any size" in onnx.load(str(result.path)).doc_string
