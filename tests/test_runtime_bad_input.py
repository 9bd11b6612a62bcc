"""Bad input to the runtime: every error names the file, image or argument at fault."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from runtime_models import exported_model, scene

from runtime import (
    ArgumentError,
    BackendFallbackWarning,
    ImageError,
    InputError,
    MetadataError,
    ModelError,
    Segmenter,
)
from runtime.backends import open_backend
from runtime.metadata import sidecar_path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return exported_model(tmp_path_factory)


@pytest.fixture(scope="module")
def seg(model):
    with Segmenter(model, threads=1) as segmenter:
        yield segmenter


# --- images ---------------------------------------------------------------------------


def test_missing_and_corrupt_files_are_named(seg, tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError, match=f"{missing}: file not found"):
        seg.predict(missing)
    corrupt = tmp_path / "bad.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageError, match="bad.jpg: cannot decode image: truncated JPEG"):
        seg.predict([scene(0, 20, 20), corrupt])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png: empty file"):
        seg.predict(str(empty))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 10, 3), np.uint8), r"image: empty image \(shape \(0, 10, 3\)\)"),
        (np.zeros((10, 0), np.uint8), "image: empty image"),
        (np.zeros((10, 10, 5), np.uint8), r"image: expected an H x W .* got shape \(10, 10, 5\)"),
        (np.zeros(10, np.uint8), r"image: expected an H x W .* got shape \(10,\)"),
        (np.zeros((8, 8, 3), np.int64), "image: unsupported pixel type int64"),
        (np.zeros((8, 8, 3), bool), "image: unsupported pixel type bool"),
        (np.full((8, 8, 3), 200.0, np.float32), r"float images must hold values in 0..1, got 200"),
        (np.full((8, 8), -0.5), "image: float images must hold values in 0..1"),
        (np.full((8, 8, 3), np.nan, np.float32), "float images must hold values in 0..1, got nan"),
    ],
)
def test_bad_arrays_are_refused(seg, image, message):
    with pytest.raises(InputError, match=message):
        seg.predict(image)


def test_bad_items_are_named_by_their_index(seg):
    with pytest.raises(InputError, match="image 1: expected a path or a numpy array, got int"):
        seg.predict([scene(0, 20, 20), 42])
    with pytest.raises(InputError, match="image 2: empty image"):
        seg.predict_proba([scene(0, 20, 20)] * 2 + [np.zeros((0, 3, 3), np.uint8)])
    with pytest.raises(InputError, match="images: expected a path, a numpy array, or a list"):
        seg.predict({"a": 1})
    batch = np.full((3, 8, 8, 3), 0.5)
    batch[1, 0, 0, 0] = 3.0
    with pytest.raises(InputError, match="image 1: float images .* got 0.5..3"):
        seg.predict(batch)


# --- arguments ------------------------------------------------------------------------


def test_bad_arguments_are_named(model, seg):
    with pytest.raises(ArgumentError, match="backend: unknown value 'onnx'.*did you mean"):
        Segmenter(model, backend="onnx")
    with pytest.raises(ArgumentError, match="device: unknown value 'gpu'"):
        Segmenter(model, device="gpu")
    with pytest.raises(ArgumentError, match="batch_size: expected an integer >= 1, got 0"):
        Segmenter(model, batch_size=0)
    with pytest.raises(ArgumentError, match="threads: expected None or an integer >= 1"):
        Segmenter(model, threads=0)
    with pytest.raises(ArgumentError, match="threshold: expected a number in"):
        Segmenter(model, threshold=1.5)
    with pytest.raises(ArgumentError, match="threshold: expected a number in"):
        seg.predict(scene(0, 9, 9), threshold=-0.1)
    with pytest.raises(ArgumentError, match="input_size: .* was exported for 32x32 only"):
        Segmenter(model, input_size=(64, 64))
    with pytest.raises(ArgumentError, match="tile: expected True, False or 'auto'"):
        seg.predict(scene(0, 9, 9), tile="yes")
    with pytest.raises(ArgumentError, match="tile_overlap"):
        Segmenter(model, tile_overlap=1.0)


def test_multiclass_refuses_a_threshold(tmp_path_factory):
    path = exported_model(tmp_path_factory, num_classes=3)
    with pytest.raises(ArgumentError, match="threshold: this model has 3 classes"):
        Segmenter(path, threshold=0.3)


# --- model files ----------------------------------------------------------------------


def plain_onnx(path):
    """A valid ONNX graph (images -> sigmoid -> probs) without segkit metadata."""
    dims = ["N", 3, 32, 32]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images", "axes"], ["mean"], keepdims=1),
         helper.make_node("Sigmoid", ["mean"], ["probs"])],
        "plain",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 1, 32, 32])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_model_without_segkit_metadata_is_refused(tmp_path):
    path = plain_onnx(tmp_path / "plain.onnx")
    with pytest.raises(MetadataError, match=f"{path}: no segkit metadata"):
        Segmenter(path)


def test_unusable_model_files(model, tmp_path):
    with pytest.raises(ModelError, match="missing.onnx: no such model file"):
        Segmenter(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="garbage.onnx: not a loadable ONNX model"):
        Segmenter(garbage)
    with pytest.raises(ModelError, match=r"model.pth: unknown model type '.pth'"):
        Segmenter(tmp_path / "model.pth")
    with pytest.raises(ModelError, match="the tensorrt backend opens .engine, .plan, .trt files"):
        Segmenter(model, backend="tensorrt")


def test_engine_on_cpu_or_without_tensorrt(model, tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine")
    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    from runtime.metadata import ModelMetadata

    sidecar_path(engine).write_text(ModelMetadata.from_props(props).to_json())
    with pytest.raises(ModelError, match="device: TensorRT engines run on CUDA GPUs only"):
        Segmenter(engine, device="cpu")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(ModelError, match=f"{engine}: TensorRT is not installed"):
            Segmenter(engine)


# --- devices and providers ------------------------------------------------------------

HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(HAS_CUDA_EP, reason="this onnxruntime has a CUDA provider")
def test_cuda_request_without_cuda_is_an_error(model):
    with pytest.raises(ModelError, match="device: device='cuda' but this onnxruntime has no CUDA"):
        Segmenter(model, device="cuda")


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_provider_fallback_warns_or_raises(model, monkeypatch):
    """A CUDA provider that is listed but cannot start: ORT runs on the CPU instead."""
    listed = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    if HAS_CUDA_EP:
        pytest.skip("this onnxruntime really has a CUDA provider")
    with pytest.warns(BackendFallbackWarning, match="session runs on CPUExecutionProvider"):
        backend = open_backend(model)
    assert backend.device == "cpu" and backend.providers == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="strict=True forbids a fallback"):
        open_backend(model, strict=True)
    with pytest.raises(ModelError, match="device: device='cuda': asked ONNX Runtime for"):
        open_backend(model, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_backend(model, device="cpu").close()  # cpu asks for the CPU provider only
