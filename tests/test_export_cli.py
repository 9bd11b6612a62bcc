"""`segexport`: the commands, their reports, and one clear error line (exit 2) for bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from export.cli import main
from runtime.metadata import ModelInfo
from trainer.checkpoint import build_checkpoint, save_checkpoint
from trainer.models import create_model

SIZE = 32
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def make_checkpoint(path: Path, seed: int = 0, **changes) -> Path:
    """A tiny unet checkpoint; `changes` overwrite its keys (to make broken ones)."""
    torch.manual_seed(seed)
    model = create_model("unet", width=4)
    ckpt = build_checkpoint(
        model,
        info=ModelInfo(
            num_classes=model.num_classes,
            classes=["background", "foreground"],
            input_size=(SIZE, SIZE),
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            threshold=0.5,
        ),
        epoch=3,
        metrics={"dice": 0.5},
    )
    ckpt.update(changes)
    return save_checkpoint(ckpt, path)


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result) -> str:
    """The single line on stderr, checked to be the only output of a failed command."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and not result.stdout, (result.stdout, result.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    ckpt = make_checkpoint(folder / "best.pth")
    result = run("onnx", "--ckpt", ckpt)
    assert result.exit_code == 0, result.output
    return ckpt, folder / "best.onnx"


def test_onnx_then_check_passes(exported):
    ckpt, model = exported
    assert model.is_file()
    result = run("check", model, "--ckpt", ckpt, "--n", 4)
    assert result.exit_code == 0, result.output
    assert "max abs diff" in result.stdout and "mask IoU" in result.stdout
    assert result.stdout.strip().endswith("PASS")


def test_check_json_report_on_real_images(exported, tmp_path):
    ckpt, model = exported
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(
            str(tmp_path / f"img{i}.png"), rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
        )
    (tmp_path / "notes.txt").write_text("not an image")
    result = run("check", model, "--ckpt", ckpt, "--images", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["n_images"] == 3 and report["backend"] == "onnxruntime"
    assert (
        report["max_abs_diff"] <= 1e-4 and report["agreement"] >= 0.9999 and report["same_source"]
    )


def test_check_against_other_weights_fails_with_exit_1(exported, tmp_path):
    _, model = exported
    other = make_checkpoint(tmp_path / "other.pth", seed=1)
    result = run("check", model, "--ckpt", other, "--n", 2)
    assert result.exit_code == 1, result.output
    assert "FAIL: max abs diff" in result.stdout
    assert "exported from a different checkpoint" in result.stdout


def test_fp16_export_and_check(exported, tmp_path):
    ckpt, _ = exported
    out = tmp_path / "half.onnx"
    result = run("onnx", "--ckpt", ckpt, "-o", out, "--fp16", "--batch", "2", "--simplify")
    assert result.exit_code == 0, result.output
    assert "fp16" in result.stdout and "batch 2" in result.stdout and "simplified" in result.stdout
    result = run("check", out, "--ckpt", ckpt, "--n", 3, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["precision"] == "fp16"


def test_dynamic_hw_check_at_another_size(exported, tmp_path):
    ckpt, _ = exported
    out = tmp_path / "dyn.onnx"
    assert run("onnx", "--ckpt", ckpt, "-o", out, "--dynamic-hw").exit_code == 0
    result = run("check", out, "--ckpt", ckpt, "--n", 2, "--size", "48,80")
    assert result.exit_code == 0, result.output
    assert "at 48x80" in result.stdout


def test_check_at_another_size_needs_dynamic_hw(exported):
    ckpt, model = exported
    result = run("check", model, "--ckpt", ckpt, "--size", "48,80")
    assert result.exit_code == 2
    assert error_line(result).startswith("Error: --size: ") and "--dynamic-hw" in result.stderr


# --- bad input: one "Error: <file>: <problem>" line, exit 2, no output file ---------------


def truncated(tmp_path: Path) -> Path:
    good = make_checkpoint(tmp_path / "good.pth")
    bad = tmp_path / "best.pth"
    bad.write_bytes(good.read_bytes()[:1000])
    good.unlink()
    return bad


def not_a_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "best.pth"
    torch.save({"weights": torch.zeros(2)}, path)
    return path


def unknown_arch(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "best.pth", arch="vnet")


def other_arch_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    foreign = create_model("attention_unet", width=4).state_dict()
    return make_checkpoint(tmp_path / "best.pth", model=foreign)


@pytest.mark.parametrize(
    ("make_bad", "problem"),
    [
        (lambda tmp: tmp / "best.pth", "no such checkpoint file"),
        (truncated, "not a readable checkpoint"),
        (not_a_checkpoint, "not a segkit checkpoint"),
        (unknown_arch, "unknown architecture 'vnet'"),
        (other_arch_weights, "weights do not match architecture 'unet'"),
    ],
    ids=["missing", "truncated", "not-a-checkpoint", "unknown-arch", "other-arch-state-dict"],
)
def test_bad_checkpoint_fails_loudly(make_bad, problem, tmp_path):
    ckpt = make_bad(tmp_path)
    result = run("onnx", "--ckpt", ckpt)
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith(f"Error: {ckpt}: ") and problem in line
    assert not (tmp_path / "best.onnx").exists()
    assert not list(tmp_path.glob(".best.onnx*"))


@pytest.mark.parametrize("opset", ["7", "99"])
def test_unsupported_opset(opset, tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth")
    result = run("onnx", "--ckpt", ckpt, "--opset", opset)
    assert result.exit_code == 2
    assert error_line(result).startswith(f"Error: --opset: unsupported opset {opset}")
    assert not (tmp_path / "best.onnx").exists()


def test_bad_batch_option(tmp_path):
    result = run("onnx", "--ckpt", make_checkpoint(tmp_path / "best.pth"), "--batch", "many")
    assert result.exit_code == 2
    assert error_line(result).startswith("Error: --batch: ")


@pytest.mark.parametrize("target", ["file-as-folder", "folder"])
def test_unwritable_output(target, tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pth")
    blocker = tmp_path / "blocker"
    if target == "folder":
        blocker.mkdir()
        out = blocker
    else:
        blocker.write_text("a file where a folder should be")
        out = blocker / "model.onnx"
    result = run("onnx", "--ckpt", ckpt, "-o", out)
    assert result.exit_code == 2
    assert error_line(result).startswith(f"Error: {out}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "blocker"]


def test_check_refuses_unknown_and_broken_models(exported, tmp_path):
    ckpt, _ = exported
    odd = tmp_path / "model.tflite"
    odd.write_bytes(b"x")
    result = run("check", odd, "--ckpt", ckpt)
    assert result.exit_code == 2 and "unknown model type '.tflite'" in error_line(result)

    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a protobuf")
    result = run("check", broken, "--ckpt", ckpt)
    assert result.exit_code == 2 and error_line(result).startswith(f"Error: {broken}: ")


def test_check_refuses_onnx_without_segkit_metadata(exported, tmp_path):
    import onnx

    ckpt, model = exported
    bare = onnx.load(str(model))
    del bare.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(bare, str(path))
    result = run("check", path, "--ckpt", ckpt)
    assert result.exit_code == 2 and "no segkit metadata" in error_line(result)


@pytest.mark.skipif(
    HAS_TENSORRT, reason="tensorrt is installed: the missing-package error cannot occur"
)
def test_trt_without_tensorrt_is_one_clear_error(exported, tmp_path):
    ckpt, model = exported
    engine = tmp_path / "model.engine"
    for args in (["trt", "--onnx", model, "-o", engine], ["trt", "--ckpt", ckpt, "-o", engine]):
        result = run(*args)
        assert result.exit_code == 2
        assert "TensorRT is not installed: install the gpu extra" in error_line(result)
        assert not engine.exists()


def test_trt_needs_exactly_one_source(exported):
    ckpt, model = exported
    for args in (["trt"], ["trt", "--onnx", model, "--ckpt", ckpt]):
        result = run(*args)
        assert result.exit_code == 2 and "give exactly one of --onnx" in error_line(result)


def test_python_module_entry_point(exported):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "export", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "onnx" in result.stdout and "check" in result.stdout
