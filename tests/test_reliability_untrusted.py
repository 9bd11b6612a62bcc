"""Untrusted files: fuzzed labelme JSON, truncated images, foreign model files, imagePath.

Each reader must answer bad input with its own error naming the file (`DataError`,
`ImageError`, `ModelError` / `MetadataError`, or one `Error:` line from a CLI), never with
another exception, a crash of the interpreter, a hang, or a read outside the dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_models import exported_model, scene

from export.cli import main as segexport
from runtime import images as runtime_images
from runtime.errors import ImageError
from trainer.data import DataError, find_samples, load_labelme, load_sample, read_image

REPO_ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=30),  # "never hangs": every example must finish well within
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- labelme JSON -------------------------------------------------------------------------

HUGE_NUMBERS = st.sampled_from(
    [1e308, -1e308, 2**64 + 1, -(2**70), 10**400, float("inf"), float("nan"), 5e-324]
)
NUMBERS = st.integers(-100, 100) | st.floats(-100, 100) | HUGE_NUMBERS
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=8)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=25,
)
POINT = st.lists(NUMBERS, min_size=2, max_size=2) | JSON
SHAPE = st.fixed_dictionaries(
    {"points": st.lists(POINT, max_size=8) | JSON},
    optional={
        "shape_type": st.sampled_from(["polygon", "rectangle", "circle", "mask", "point"]) | JSON,
        "label": st.sampled_from(["a", "b"]) | JSON,
        "mask": JSON,
        "imagePath": st.text(max_size=20),
    },
)
DOC = st.fixed_dictionaries(
    {"shapes": st.lists(SHAPE | JSON, max_size=4) | JSON},
    optional={"imageHeight": NUMBERS | JSON, "imageWidth": NUMBERS | JSON},
)


def _nested(depth: int, where: str) -> str:
    """labelme-ish raw JSON text with `depth` nested lists at `where` (not parsed by Python)."""
    deep = "[" * depth + "1" + "]" * depth
    return {
        "top": deep,
        "shapes": '{"shapes": ' + deep + "}",
        "points": '{"shapes": [{"points": ' + deep + "}]}",
        "point": '{"shapes": [{"points": [' + deep + ", [1, 2], [3, 4]]}]}",
        "label": '{"shapes": [{"label": ' + deep + ', "points": [[1, 1], [5, 1], [5, 5]]}]}',
    }[where]


def _json_bytes(doc: object, encoding: str) -> bytes:
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode(encoding, "replace")


RAW_FILES = st.one_of(
    st.binary(max_size=300),  # random bytes
    st.builds(_json_bytes, DOC, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"])),
    st.builds(_json_bytes, DOC, st.just("utf-8")).map(lambda b: b[:-1] + b"\xff\xfe" + b[-1:]),
    st.builds(
        lambda depth, where: _nested(depth, where).encode(),
        st.integers(1, 10_000) | st.just(10_000),
        st.sampled_from(["top", "shapes", "points", "point", "label"]),
    ),
    st.builds(_json_bytes, DOC, st.just("utf-8")).map(lambda b: b[: len(b) // 2]),  # cut short
)


def _check_labelme(path: Path, shape: tuple[int, int], class_map: dict | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mask = load_labelme(path, image_shape=shape, class_map=class_map)
        except DataError as err:
            assert str(err).startswith(f"{path}: "), str(err)
        else:
            assert mask.shape == shape and mask.dtype == np.uint8


@FUZZ
@given(
    raw=RAW_FILES,
    shape=st.tuples(st.integers(1, 48), st.integers(1, 48)),
    multiclass=st.booleans(),
)
def test_labelme_fuzz_raw_files_only_raise_data_error(tmp_path, raw, shape, multiclass):
    path = tmp_path / "fuzz.json"
    path.write_bytes(raw)
    _check_labelme(path, shape, {"a": 1, "b": 2} if multiclass else None)


def _b64_png(height: int, width: int, seed: int) -> str:
    import base64

    bitmap = (np.random.default_rng(seed).random((height, width)) > 0.5).astype(np.uint8)
    return base64.b64encode(cv2.imencode(".png", bitmap * 255)[1].tobytes()).decode()


# Near-valid files that get past the parser into the drawing code: 32x32 images, mostly
# in-range points, now and then a huge or slightly-out-of-range one, and mask bitmaps.
IN_RANGE = st.floats(-1, 33) | st.integers(-1, 33)


def _spoil(points: list[list], spoiler: tuple | None) -> list[list]:
    """`points` with one coordinate replaced by `spoiler`'s odd value, when there is one."""
    if spoiler is None or not points:
        return points
    index, axis, value = spoiler
    points[index % len(points)][axis] = value
    return points


POINTS = st.builds(
    _spoil,
    st.lists(st.lists(IN_RANGE, min_size=2, max_size=2), max_size=12),
    st.none()
    | st.none()
    | st.tuples(st.integers(0, 11), st.integers(0, 1), HUGE_NUMBERS)
    | st.tuples(st.integers(0, 11), st.integers(0, 1), st.floats(-3, 36)),
)
PLAUSIBLE_SHAPE = st.fixed_dictionaries(
    {
        "label": st.sampled_from(["a", "b", "c"]),
        "points": POINTS,
        "shape_type": st.sampled_from(["polygon", "rectangle", "circle", "mask", None]),
    },
    optional={
        "mask": st.builds(_b64_png, st.integers(1, 34), st.integers(1, 34), st.integers(0, 9))
        | st.text(max_size=12)
    },
)
PLAUSIBLE_DOC = st.fixed_dictionaries(
    {"shapes": st.lists(PLAUSIBLE_SHAPE, max_size=4)},
    optional={"imageHeight": st.just(32), "imageWidth": st.just(32)},
)


@FUZZ
@given(doc=PLAUSIBLE_DOC, multiclass=st.booleans())
def test_labelme_fuzz_plausible_files_only_raise_data_error(tmp_path, doc, multiclass):
    path = tmp_path / "plausible.json"
    path.write_text(json.dumps(doc))
    _check_labelme(path, (32, 32), {"a": 1, "b": 2} if multiclass else None)


@pytest.mark.parametrize("depth", [100, 900, 5_000, 10_000, 100_000])
@pytest.mark.parametrize("where", ["top", "shapes", "points", "point", "label"])
def test_labelme_deep_nesting(tmp_path, depth, where):
    path = tmp_path / "deep.json"
    path.write_text(_nested(depth, where))
    _check_labelme(path, (16, 16), {"a": 1} if where == "label" else None)


# --- truncated and corrupted images -------------------------------------------------------


def _encoded(suffix: str) -> bytes:
    ok, data = cv2.imencode(suffix, cv2.cvtColor(scene(7, 40, 56), cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


ENCODED = {suffix: _encoded(suffix) for suffix in (".png", ".jpg")}


def _check_image(path: Path) -> None:
    """trainer's and runtime's readers: an HxWx3 uint8 image or their error naming the file."""
    for read, error in ((read_image, DataError), (runtime_images.read_image, ImageError)):
        try:
            image = read(path)
        except error as err:
            assert str(err).startswith(f"{path}: "), str(err)
        else:
            assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


@FUZZ
@given(suffix=st.sampled_from([".png", ".jpg"]), data=st.data())
def test_truncated_images_only_raise_the_readers_errors(tmp_path, suffix, data):
    encoded = ENCODED[suffix]
    cut = data.draw(st.integers(0, len(encoded)), label="cut")
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(encoded[:cut])
    _check_image(path)


@FUZZ
@given(suffix=st.sampled_from([".png", ".jpg"]), data=st.data())
def test_corrupted_images_only_raise_the_readers_errors(tmp_path, suffix, data):
    encoded = bytearray(ENCODED[suffix])
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / f"flipped{suffix}"
    path.write_bytes(bytes(encoded))
    _check_image(path)


# --- model files that are truncated or not ours -------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, its ONNX export) of a tiny seeded model."""
    model = exported_model(tmp_path_factory)
    return model.with_name("best.pth"), model


def _plain_onnx(path: Path) -> Path:
    """A valid ONNX graph (images -> sigmoid -> probs) without segkit metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["images"], ["probs"])],
        "plain",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3, 32, 32])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def _installed_tensorrt_version() -> str:
    try:
        import tensorrt
    except ImportError:
        return "10.0.0"
    return tensorrt.__version__


def _random_engine_with_sidecar(folder: Path, model: Path) -> Path:
    """Random bytes named .engine beside a valid sidecar that claims this TensorRT built it."""
    import onnx

    from runtime.metadata import ModelMetadata, sidecar_path

    engine = folder / "sidecar.engine"
    engine.write_bytes(np.random.default_rng(1).bytes(4096))
    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    meta = ModelMetadata.from_props(props, str(model))
    meta = meta.replace(engine={"tensorrt_version": _installed_tensorrt_version()})
    sidecar_path(engine).write_text(meta.to_json())
    return engine


# Without TensorRT the missing package is reported; with it, the failed deserialization.
ENGINE_PROBLEMS = ("TensorRT is not installed", "could not deserialize", "CUDA")


def _bad_models(folder: Path, model: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """name -> (file, the problems one of which its error must state)."""
    rng = np.random.default_rng(0)
    data = model.read_bytes()
    truncated = folder / "truncated.onnx"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    random_onnx = folder / "random.onnx"
    random_onnx.write_bytes(rng.bytes(4096))
    random_engine = folder / "random.engine"
    random_engine.write_bytes(rng.bytes(4096))
    return {
        "truncated": (truncated, ("not a loadable ONNX model",)),
        "random-bytes": (random_onnx, ("not a loadable ONNX model",)),
        "no-metadata": (_plain_onnx(folder / "plain.onnx"), ("no segkit metadata",)),
        "random-engine": (random_engine, ("random.engine.json: metadata file not found",)),
        "random-engine-with-sidecar": (
            _random_engine_with_sidecar(folder, model),
            ENGINE_PROBLEMS,
        ),
    }


_OPEN_IN_SUBPROCESS = """
import sys
from runtime import Segmenter
from runtime.errors import SegmenterError
from runtime.metadata import MetadataError
for path in sys.argv[1:]:
    try:
        Segmenter(path)
    except (SegmenterError, MetadataError) as err:
        print(f"REFUSED {err}")
    else:
        print(f"OPENED {path}")
"""


def test_foreign_model_files_give_one_clear_error_without_a_crash(exported, tmp_path):
    bad = _bad_models(tmp_path, exported[1])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _OPEN_IN_SUBPROCESS, *(str(p) for p, _ in bad.values())],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr  # a segfault would be a negative return code
    lines = proc.stdout.splitlines()
    assert len(lines) == len(bad), proc.stdout
    for line, (path, problems) in zip(lines, bad.values(), strict=True):
        assert line.startswith(f"REFUSED {path}") and any(p in line for p in problems), line


def test_segexport_check_refuses_foreign_model_files(exported, tmp_path):
    ckpt, model = exported
    for name, (path, problems) in _bad_models(tmp_path, model).items():
        result = CliRunner().invoke(segexport, ["check", str(path), "--ckpt", str(ckpt)])
        assert result.exit_code == 2, (name, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and any(p in errors[0] for p in problems), (name, result.output)
        assert "Traceback" not in result.output


# --- imagePath never leads outside the dataset folder -------------------------------------


class _OpenRecorder:
    """Records the paths opened through Python (audit event "open") while active."""

    def __init__(self) -> None:
        self.paths: list[Path] | None = None
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if self.paths is not None and event == "open" and isinstance(args[0], (str, Path)):
            self.paths.append(Path(os.path.abspath(args[0])))

    def __enter__(self) -> list[Path]:
        self.paths = []
        return self.paths

    def __exit__(self, *exc_info: object) -> None:
        self.paths = None


_RECORDER = _OpenRecorder()


def test_image_path_in_json_never_escapes_the_dataset(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    sentinel = scene(1, 24, 24)
    cv2.imwrite(str(outside / "sentinel.png"), sentinel)
    cv2.imwrite(str(outside / "a.png"), sentinel)  # same stem as an image inside
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    escapes = {
        "a": "../../outside/a.png",
        "b": str(outside / "sentinel.png"),
        "c": "/etc/passwd",
        "d": "..\\..\\outside\\sentinel.png",
    }
    for index, (stem, image_path) in enumerate(escapes.items()):
        cv2.imwrite(str(data / f"{stem}.png"), scene(10 + index, 20, 30)[:, :, ::-1])  # BGR
        doc = {
            "shapes": [{"label": "x", "points": [[2, 2], [20, 3], [10, 15]]}],
            "imagePath": image_path,
            "imageHeight": 20,
            "imageWidth": 30,
        }
        (data / f"{stem}.json").write_text(json.dumps(doc))

    with _RECORDER as opened:
        samples, problems = find_samples(data)
        loaded = [load_sample(sample) for sample in samples]
    assert problems == []
    assert [s.image.name for s in samples] == ["a.png", "b.png", "c.png", "d.png"]
    for sample in samples:
        assert sample.image.resolve().parent == data.resolve()
        assert sample.annotation.resolve().parent == data.resolve()
    for (image, mask), index in zip(loaded, range(len(escapes)), strict=True):
        assert image.shape == (20, 30, 3) and mask.shape == (20, 30) and mask.any()
        np.testing.assert_array_equal(image, scene(10 + index, 20, 30))  # PNG is lossless
    assert opened, "the audit hook saw no file being opened"
    in_test_folders = [p for p in opened if p.is_relative_to(tmp_path.resolve())]
    assert in_test_folders and all(p.is_relative_to(data.resolve()) for p in in_test_folders)
    assert Path("/etc/passwd") not in opened
