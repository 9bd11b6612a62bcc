"""The exported-model metadata schema (runtime/metadata.py): round trips and clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runtime.metadata import (
    FORMAT_VERSION,
    PROP_PREFIX,
    MetadataError,
    ModelMetadata,
    sidecar_path,
)


def sample(**changes) -> ModelMetadata:
    fields = {
        "format": "segkit.model",
        "format_version": FORMAT_VERSION,
        "project_version": "0.1.0",
        "arch": "unet",
        "model_config": {"in_channels": 3, "num_classes": 1, "width": 4},
        "num_classes": 1,
        "classes": ["background", "foreground"],
        "input_size": (64, 96),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "threshold": 0.5,
        "output_kind": "sigmoid",
        "metrics": {"dice": 0.91, "iou": 0.84},
        "source_sha256": "ab" * 32,
        "stride": 16,
        "opset": 18,
        "exporter": "dynamo",
    }
    fields.update(changes)
    return ModelMetadata.from_dict(fields)


def test_props_round_trip_is_exact():
    meta = sample(precision="fp16", dynamic_hw=True)
    props = meta.to_props()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())
    assert all(key.startswith(PROP_PREFIX) for key in props)
    assert json.loads(props["segkit.input_size"]) == [64, 96]
    assert json.loads(props["segkit.format"]) == "segkit.model"
    assert ModelMetadata.from_props(props) == meta


def test_props_of_other_tools_are_ignored():
    props = {**sample().to_props(), "author": "someone", "onnx.infer": "x"}
    assert ModelMetadata.from_props(props) == sample()


def test_json_sidecar_round_trip(tmp_path):
    meta = sample(
        dynamic_batch=False,
        batch_size=4,
        engine={"tensorrt_version": "10.8.0", "profile": {"images": {"min": [4, 3, 64, 96]}}},
    )
    path = sidecar_path(tmp_path / "model.engine")
    assert path.name == "model.engine.json"
    path.write_text(meta.to_json())
    assert ModelMetadata.read_json(path) == meta


def test_fixed_values_are_documented_defaults():
    meta = sample()
    assert (meta.input_name, meta.output_name, meta.color_order) == ("images", "probs", "RGB")
    assert meta.format == "segkit.model" and meta.format_version == FORMAT_VERSION
    assert meta.dynamic_batch and meta.batch_size is None and meta.precision == "fp32"


def test_missing_fields_are_named():
    props = sample().to_props()
    del props["segkit.mean"], props["segkit.threshold"]
    with pytest.raises(MetadataError, match=r"model.onnx: metadata lacks mean, threshold"):
        ModelMetadata.from_props(props, "model.onnx")


def test_file_without_segkit_metadata_is_refused():
    with pytest.raises(MetadataError, match="no segkit metadata.*segexport"):
        ModelMetadata.from_props({"author": "x"}, "model.onnx")


def test_newer_format_version_asks_for_an_upgrade():
    props = sample().to_props()
    props["segkit.format_version"] = json.dumps(FORMAT_VERSION + 1)
    with pytest.raises(MetadataError, match="newer than this runtime supports.*upgrade"):
        ModelMetadata.from_props(props)


def test_broken_json_value_names_the_key():
    props = sample().to_props()
    props["segkit.classes"] = "[not json"
    with pytest.raises(MetadataError, match="segkit.classes is not valid JSON"):
        ModelMetadata.from_props(props)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("input_size", [64], "bad input_size"),
        ("std", [0.2, 0.0, 0.2], "bad std"),
        ("threshold", 1.5, "bad threshold"),
        ("output_kind", "softmax", "output_kind .softmax. does not fit num_classes=1"),
        ("precision", "int4", "bad precision"),
        ("precision", "int8", "bad calibration"),  # int8 without its calibration record
        ("calibration", {"method": "minmax"}, "bad calibration"),  # on a float model
        ("color_order", "BGR", "bad color_order"),
        ("source_sha256", "xyz", "bad source_sha256"),
        ("batch_size", 4, "bad batch_size"),
        ("classes", "foreground", "bad classes"),
    ],
)
def test_bad_values_are_named(field, value, message):
    data = sample().to_dict()
    data[field] = value
    with pytest.raises(MetadataError, match=f"model.engine.json: {message}"):
        ModelMetadata.from_dict(data, "model.engine.json")


def test_int8_metadata_round_trips_its_calibration():
    calibration = {"method": "minmax", "images": 64, "gate": {"passed": True}}
    meta = sample().replace(precision="int8", calibration=calibration)
    again = ModelMetadata.from_props(meta.to_props())
    assert again.precision == "int8" and again.calibration == calibration
    with pytest.raises(MetadataError, match="bad calibration"):
        meta.replace(calibration={**calibration, "method": "kl"})


def test_missing_sidecar_names_the_file(tmp_path):
    with pytest.raises(MetadataError, match="model.engine.json: metadata file not found"):
        ModelMetadata.read_json(tmp_path / "model.engine.json")


def test_runtime_never_imports_torch_or_export():
    code = (
        "import sys, runtime, runtime.metadata, runtime.preprocess; "
        "bad = [m for m in ('torch', 'export', 'trainer') if m in sys.modules]; "
        "sys.exit(f'runtime imported {bad}' if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
