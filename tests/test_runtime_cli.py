"""`segpredict`: masks, overlays and labelme JSON for files and folders; failures and exit codes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from runtime_models import exported_model, scene

from runtime import Segmenter
from runtime.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return exported_model(tmp_path_factory, gain=50.0)


def write_png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def read_gray(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_folder_with_a_corrupt_image(model, tmp_path):
    images = tmp_path / "images"
    good = [write_png(images / f"img {i}.png", scene(i, 30 + 5 * i, 40)) for i in range(3)]
    write_png(images / "sub" / "img 0.png", scene(9, 36, 36))  # same name in a subfolder
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    result = run(model, images, "--out", out, "--overlay", "--polygons", "--batch-size", 2)
    assert result.exit_code == 1, result.output
    assert "wrote the masks of 4 of 5 images" in result.stdout
    assert "1 failed:" in result.stderr and "broken.png: cannot decode image" in result.stderr
    assert not (out / "broken.png").exists()
    with Segmenter(model) as seg:
        for path in good:
            mask = read_gray(out / path.name)
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
            np.testing.assert_array_equal(mask, seg.predict(path) * 255)
            overlay = cv2.imread(str(out / f"{path.stem}_overlay.jpg"))
            assert overlay.shape == (*mask.shape, 3)
            annotation = json.loads((out / f"{path.stem}.json").read_text())
            assert (annotation["imageHeight"], annotation["imageWidth"]) == mask.shape
            assert (out / annotation["imagePath"]).resolve() == path.resolve()
            assert {s["label"] for s in annotation["shapes"]} <= {"foreground"}
    assert (out / "sub" / "img 0.png").is_file()


def test_files_multiclass_and_threshold(tmp_path_factory, tmp_path):
    model = exported_model(tmp_path_factory, num_classes=3, gain=50.0)
    image = write_png(tmp_path / "a.png", scene(1, 40, 50))
    result = run(model, image, "--out", tmp_path / "out", "-q")
    assert result.exit_code == 0, result.output
    mask = read_gray(tmp_path / "out" / "a.png")
    with Segmenter(model) as seg:
        np.testing.assert_array_equal(mask, seg.predict(image))
    result = run(model, image, "--out", tmp_path / "out", "--threshold", 0.3)
    assert result.exit_code == 2 and "threshold: this model has 3 classes" in result.stderr


def test_binary_threshold_option(model, tmp_path):
    image = write_png(tmp_path / "a.png", scene(2, 40, 50))
    assert run(model, image, "--out", tmp_path / "o", "--threshold", 0, "-q").exit_code == 0
    assert (read_gray(tmp_path / "o" / "a.png") == 255).all()


def test_bad_arguments_exit_2(model, tmp_path):
    image = write_png(tmp_path / "in" / "a.png", scene(3, 20, 20))
    cases = [
        ((model, tmp_path / "nope.png"), "nope.png: no such file or folder"),
        ((tmp_path / "missing.onnx", image), "missing.onnx: no such model file"),
        ((model, tmp_path / "in", image), "would overwrite those of"),
        ((model, image, "--backend", "onnx"), "Invalid value for '--backend'"),
        ((model, image, "--device", "gpu"), "Invalid value for '--device'"),
        ((model, image, "--batch-size", 0), "Invalid value for '--batch-size'"),
    ]
    for args, message in cases:
        result = run(*args, "--out", tmp_path / "out")
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    result = run(model, image, "--out", tmp_path / "in")  # the mask would replace a.png
    assert result.exit_code == 2 and "would overwrite this input image" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(model, empty, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "no images" in result.stderr
