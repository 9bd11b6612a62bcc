"""`segexport quantize`: INT8 QDQ calibrated through the runtime's preprocessing, gated."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from runtime_models import exported_model, scene

from export.calibration import PreprocessedReader, calibration_split
from export.cli import main
from runtime import Segmenter
from runtime.metadata import ModelMetadata
from runtime.preprocess import preprocess


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantize")
    return shutil.copy(exported_model(tmp_path_factory, gain=50.0), folder / "best.onnx")


def write_images(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        cv2.imwrite(str(folder / f"{index:02d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    images = [scene(seed, 40 + seed, 56 - seed) for seed in range(20)]
    return write_images(tmp_path_factory.mktemp("calib") / "images", images)


@pytest.fixture(scope="module")
def pseudo_labelled(model, tmp_path_factory):
    """A dataset (images/ + masks/) whose masks are the fp32 model's own: its Dice is 1, so
    any change the INT8 model makes to the masks is a Dice drop."""
    folder = tmp_path_factory.mktemp("val") / "pseudo"
    images = [scene(100 + seed, 44, 52) for seed in range(30)]
    with Segmenter(model, backend="onnxruntime") as seg:
        masks = seg.predict(images)
    write_images(folder / "images", images)
    (folder / "masks").mkdir()
    for index, mask in enumerate(masks):
        cv2.imwrite(str(folder / "masks" / f"{index:02d}.png"), mask * 255)
    return folder


def props_of(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_reader_feeds_the_runtime_preprocessing(model, calib):
    split = calibration_split(calib, n=8)
    assert len(split.held_back) == 4 and len(split.calibrate) == 8
    assert not set(split.held_back) & set(split.calibrate)
    with Segmenter(model, backend="onnxruntime") as seg:
        meta = seg.metadata
    batch = PreprocessedReader(split.calibrate, meta).get_next()[meta.input_name]
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in split.calibrate]
    np.testing.assert_array_equal(batch, preprocess(images, meta.input_size, meta.mean, meta.std))


def test_quantized_model_keeps_its_metadata_and_runs(model, calib):
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(calib), "--n", "16"])
    assert result.exit_code == 0, result.output
    assert "mask agreement" in result.output and "PASS" in result.output
    out = model.with_name("best.int8.onnx")
    before, after = props_of(model), props_of(out)
    assert set(before) <= set(after)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"segkit.precision", "segkit.calibration"}
    meta = ModelMetadata.from_props(after)
    assert meta.precision == "int8" and meta.calibration["method"] == "minmax"
    assert meta.calibration["images"] == 16 and meta.calibration["gate"]["passed"]
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Sigmoid"} <= ops
    image = scene(99, 48, 64)
    with (
        Segmenter(model, backend="onnxruntime") as fp32,
        Segmenter(out, backend="onnxruntime") as q,
    ):
        assert q.backend.precision == "int8" and "precision='int8'" in repr(q)
        assert (q.predict(image) == fp32.predict(image)).mean() > 0.95


def test_gate_passes_a_good_calibration_against_ground_truth(
    model, calib, pseudo_labelled, tmp_path
):
    out = tmp_path / "good.int8.onnx"
    args = ["quantize", str(model), "--calib", str(calib), "--val", str(pseudo_labelled)]
    # a random width-4 model with small objects loses about 0.06 of Dice to INT8 (a broken
    # calibration about 0.7); the trained butterfly model loses 0.0001
    result = CliRunner().invoke(main, [*args, "-o", str(out), "--max-dice-drop", "0.15"])
    assert result.exit_code == 0, result.output
    assert "dice (native size) | 1.0000" in result.output and "PASS" in result.output


def test_gate_refuses_a_broken_calibration(model, tmp_path, pseudo_labelled):
    black = write_images(tmp_path / "black", [np.zeros((40, 40, 3), np.uint8)] * 10)
    out = tmp_path / "broken.int8.onnx"
    args = ["quantize", str(model), "--calib", str(black), "--val", str(pseudo_labelled)]
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "Dice drop" in result.output and "FAIL" in result.output
    assert "missed the accuracy gate" in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == [black]
    forced = CliRunner().invoke(main, [*args, "-o", str(out), "--force"])
    assert forced.exit_code == 0 and out.is_file(), forced.output
    assert not ModelMetadata.from_props(props_of(out)).calibration["gate"]["passed"]


def test_bad_inputs_are_named(model, tmp_path):
    one = write_images(tmp_path / "one", [scene(0, 40, 40)])
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(one)])
    assert result.exit_code == 2 and "calibration needs at least 2" in result.output
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(tmp_path / "no")])
    assert result.exit_code == 2
