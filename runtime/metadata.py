"""What a model needs around it (`ModelInfo`), and the metadata an exported model carries.

`ModelInfo` is the one record of a model's preprocessing and output facts: its classes, input
size, mean, std, colour order and threshold. Training builds it once; the checkpoint stores
its fields; evaluation, the pictures, the export and the runtime all read it from there.

`ModelMetadata` embeds a `ModelInfo` and adds what an export adds (architecture, precision,
shapes, exporter, source checkpoint). ONNX files store it in `metadata_props` (string ->
string): every field, the `ModelInfo` ones included, is a JSON value under the key
`segkit.<field>`. TensorRT engines store the same fields in a JSON sidecar
(`model.engine.json`). `from_props` / `from_json` / `from_dict` validate what they read and
raise `MetadataError` naming the source and the missing or bad field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import ArgumentError, SegkitError

FORMAT = "segkit.model"
FORMAT_VERSION = 1
PROP_PREFIX = "segkit."

INPUT_NAME = "images"
PIXELS_NAME = "pixels"  # the input of a graph with its preprocessing inside (`--preprocess`)
OUTPUT_NAME = "probs"
OUTPUT_KINDS = ("sigmoid", "softmax")
PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
COLOR_ORDER = "RGB"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MetadataError(SegkitError, ValueError):
    """Model metadata is missing or invalid; the message names the source and the field."""

    @property
    def source(self) -> str:
        return self.subject


@dataclass(frozen=True)
class ModelInfo:
    """A model's preprocessing and output facts, torch-free (timm's `PretrainedCfg`).

    Inputs are `color_order` images of `input_size` (height, width), scaled to [0, 1] and
    normalized with `mean`/`std`; the output has `num_classes` channels (1: binary, whose
    mask is `p >= threshold`), named `classes` (background first).
    """

    num_classes: int
    classes: list[str]
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    threshold: float
    color_order: str = COLOR_ORDER

    def __post_init__(self) -> None:
        _validate_info(self, "model info")

    @property
    def binary(self) -> bool:
        return self.num_classes == 1

    @property
    def output_kind(self) -> str:
        """ "sigmoid" for binary models, "softmax" for multi-class ones."""
        return "sigmoid" if self.binary else "softmax"

    def replace(self, **changes: Any) -> ModelInfo:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model info") -> ModelInfo:
        """The record's fields out of `data` (other keys are ignored), validated; a missing or
        bad field raises `MetadataError` naming `source`."""
        if not isinstance(data, dict):
            raise MetadataError(source, f"expected an object, got {type(data).__name__}")
        missing = [
            f.name for f in dataclasses.fields(cls) if _is_required(f) and f.name not in data
        ]
        if missing:
            raise MetadataError(source, f"lacks {', '.join(missing)}")
        values = {name: data[name] for name in INFO_FIELDS if name in data}
        for key in ("input_size", "mean", "std"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except MetadataError as err:
            raise MetadataError(source, err.problem) from None


INFO_FIELDS = tuple(f.name for f in dataclasses.fields(ModelInfo))


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to preprocess inputs for, and interpret outputs of, an exported model.

    The graph's input `images` is (N, 3, H, W) float32, RGB, scaled to [0, 1] and normalized
    with `mean`/`std`; its output `probs` is (N, num_classes, H, W) float32 probabilities:
    a sigmoid for binary models (`num_classes == 1`), a softmax over classes otherwise.
    The preprocessing facts are the embedded `info`; `meta.mean` and the like read them.
    """

    project_version: str
    arch: str
    model_config: dict[str, Any]
    info: ModelInfo
    output_kind: str
    metrics: dict[str, float]
    source_sha256: str
    stride: int
    precision: str = "fp32"
    dynamic_batch: bool = True
    batch_size: int | None = None
    dynamic_hw: bool = False
    opset: int | None = None
    exporter: str = ""
    preprocess: bool = False  # the graph takes uint8 NHWC `pixels` and preprocesses them
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    engine: dict[str, Any] = field(default_factory=dict)
    # int8 models: {"method": minmax|percentile|entropy, "images": N, "gate": {...}}
    calibration: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        _validate(self, "metadata")

    # the embedded record's facts, read through
    num_classes = property(lambda self: self.info.num_classes)
    classes = property(lambda self: self.info.classes)
    input_size = property(lambda self: self.info.input_size)
    mean = property(lambda self: self.info.mean)
    std = property(lambda self: self.info.std)
    threshold = property(lambda self: self.info.threshold)
    color_order = property(lambda self: self.info.color_order)

    def run_size(
        self, size: tuple[int, int] | None, subject: str, model: str | os.PathLike = "the model"
    ) -> tuple[int, int]:
        """The (height, width) to run `model` at: `size`, checked against what was exported
        (ArgumentError naming `subject`), or the input size the model was trained at."""
        if size is None:
            return int(self.input_size[0]), int(self.input_size[1])
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(_is_int(v) for v in size)
        ):
            raise ArgumentError(subject, f"expected (height, width), got {size!r}")
        if tuple(size) != tuple(self.input_size) and not self.dynamic_hw:
            raise ArgumentError(
                subject,
                f"{os.fspath(model)} was exported for {self.input_size[0]}x"
                f"{self.input_size[1]} only; export with --dynamic-hw to run at other sizes",
            )
        if min(size) < self.stride:
            raise ArgumentError(
                subject,
                f"height and width must be at least {self.stride} for {self.arch}, got "
                f"{size[0]}x{size[1]}",
            )
        return int(size[0]), int(size[1])

    def replace(self, **changes: Any) -> ModelMetadata:
        """A copy with `changes` applied (validated again); `ModelInfo` fields may be given."""
        info_changes = {k: changes.pop(k) for k in list(changes) if k in INFO_FIELDS}
        if info_changes:
            changes["info"] = self.info.replace(**info_changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values, flat: the `ModelInfo` fields sit beside the others."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "info"}
        data.update(self.info.to_dict())
        return json.loads(json.dumps(data))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "metadata") -> ModelMetadata:
        """Build from plain (flat) values, reporting missing, unknown-version or bad fields."""
        if not isinstance(data, dict):
            raise MetadataError(
                source, f"expected an object of metadata fields, got {type(data).__name__}"
            )
        if data.get("format") != FORMAT:
            raise MetadataError(
                source,
                f"not a segkit model (format is {data.get('format')!r}, expected {FORMAT!r})",
            )
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise MetadataError(source, f"bad format_version {version!r}")
        if version > FORMAT_VERSION:
            raise MetadataError(
                source,
                f"model metadata version {version} is newer than this runtime supports "
                f"({FORMAT_VERSION}); upgrade segkit",
            )
        fields = [f for f in dataclasses.fields(cls) if f.name != "info"]
        fields += list(dataclasses.fields(ModelInfo))
        missing = [f.name for f in fields if _is_required(f) and f.name not in data]
        if missing:
            raise MetadataError(source, f"metadata lacks {', '.join(missing)}")
        own = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in own and key != "info"}
        try:
            return cls(info=ModelInfo.from_dict(data, source), **values)
        except MetadataError as err:
            raise MetadataError(source, err.problem) from None

    def to_props(self) -> dict[str, str]:
        """ONNX `metadata_props`: `segkit.<field>` -> the field's JSON value."""
        return {PROP_PREFIX + key: json.dumps(value) for key, value in self.to_dict().items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> ModelMetadata:
        """Read metadata written by `to_props`; other keys are ignored."""
        if PROP_PREFIX + "format" not in props:
            raise MetadataError(
                source,
                f"no segkit metadata ({PROP_PREFIX}format is missing); "
                "was it exported by segexport?",
            )
        data = {}
        for key, text in props.items():
            if not key.startswith(PROP_PREFIX):
                continue
            try:
                data[key[len(PROP_PREFIX) :]] = json.loads(text)
            except json.JSONDecodeError as err:
                raise MetadataError(
                    source, f"metadata {key} is not valid JSON ({err.msg})"
                ) from None
        return cls.from_dict(data, source)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "metadata") -> ModelMetadata:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise MetadataError(
                source, f"not valid JSON ({err.msg} at line {err.lineno})"
            ) from None
        return cls.from_dict(data, source)

    @classmethod
    def read_json(cls, path: str | Path) -> ModelMetadata:
        """Read a sidecar file such as `model.engine.json`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MetadataError(str(path), "metadata file not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise MetadataError(str(path), f"cannot read metadata ({err})") from None
        return cls.from_json(text, str(path))


def sidecar_path(engine_path: str | Path) -> Path:
    """`model.engine` -> `model.engine.json`."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _checker(record: Any, source: str):
    def check(name: str, ok: bool, expected: str) -> None:
        if not ok:
            raise MetadataError(
                source, f"bad {name} {getattr(record, name)!r}: expected {expected}"
            )

    return check


def _validate_info(info: ModelInfo, source: str) -> None:
    check = _checker(info, source)
    check("num_classes", _is_int(info.num_classes) and info.num_classes >= 1, "an integer >= 1")
    check(
        "classes",
        isinstance(info.classes, list) and all(isinstance(c, str) for c in info.classes),
        "a list of class names",
    )
    check("input_size", _is_pair_of_positive_ints(info.input_size), "[height, width] in pixels")
    check("mean", _is_numbers(info.mean), "a list of numbers")
    check(
        "std", _is_numbers(info.std) and all(s > 0 for s in info.std), "a list of positive numbers"
    )
    if len(info.mean) != len(info.std):
        raise MetadataError(source, f"mean has {len(info.mean)} values but std has {len(info.std)}")
    check(
        "threshold",
        _is_number(info.threshold) and 0.0 <= info.threshold <= 1.0,
        "a number in [0, 1]",
    )
    check("color_order", info.color_order == COLOR_ORDER, repr(COLOR_ORDER))


def _validate(meta: ModelMetadata, source: str) -> None:
    check = _checker(meta, source)
    check("format", meta.format == FORMAT, repr(FORMAT))
    check("info", isinstance(meta.info, ModelInfo), "a ModelInfo")
    check("project_version", isinstance(meta.project_version, str), "a string")
    check("arch", isinstance(meta.arch, str) and bool(meta.arch), "an architecture name")
    check("model_config", isinstance(meta.model_config, dict), "an object")
    check("output_kind", meta.output_kind in OUTPUT_KINDS, " or ".join(OUTPUT_KINDS))
    if meta.output_kind != meta.info.output_kind:
        raise MetadataError(
            source,
            f"output_kind {meta.output_kind!r} does not fit "
            f"num_classes={meta.num_classes} ({meta.info.output_kind!r})",
        )
    check(
        "metrics",
        isinstance(meta.metrics, dict) and all(_is_number(v) for v in meta.metrics.values()),
        "an object of numbers",
    )
    check(
        "source_sha256",
        isinstance(meta.source_sha256, str)
        and len(meta.source_sha256) == 64
        and all(c in "0123456789abcdef" for c in meta.source_sha256),
        "64 lowercase hex digits",
    )
    check("stride", _is_int(meta.stride) and meta.stride >= 1, "an integer >= 1")
    check("precision", meta.precision in PRECISIONS, " or ".join(PRECISIONS))
    check("dynamic_batch", isinstance(meta.dynamic_batch, bool), "true or false")
    if meta.dynamic_batch:
        check("batch_size", meta.batch_size is None, "null when the batch is dynamic")
    else:
        check("batch_size", _is_int(meta.batch_size) and meta.batch_size >= 1, "an integer >= 1")
    check("dynamic_hw", isinstance(meta.dynamic_hw, bool), "true or false")
    check(
        "opset", meta.opset is None or (_is_int(meta.opset) and meta.opset >= 1), "an opset number"
    )
    check("exporter", isinstance(meta.exporter, str), "a string")
    check("preprocess", isinstance(meta.preprocess, bool), "true or false")
    expected_input = PIXELS_NAME if meta.preprocess else INPUT_NAME
    check("input_name", meta.input_name == expected_input, repr(expected_input))
    check("output_name", meta.output_name == OUTPUT_NAME, repr(OUTPUT_NAME))
    check("engine", isinstance(meta.engine, dict), "an object")
    _validate_calibration(meta, source)


def _validate_calibration(meta: ModelMetadata, source: str) -> None:
    """An int8 model says how it was calibrated; a float model carries no calibration."""
    check = _checker(meta, source)
    calibration = meta.calibration
    check("calibration", isinstance(calibration, dict), "an object")
    if meta.precision != "int8":
        check("calibration", not calibration, "{} for a float model")
        return
    check(
        "calibration",
        calibration.get("method") in CALIBRATION_METHODS
        and _is_int(calibration.get("images"))
        and calibration["images"] >= 1
        and isinstance(calibration.get("gate"), dict),
        f"an object with method ({' or '.join(CALIBRATION_METHODS)}), images (>= 1) and gate",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_numbers(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(_is_number(v) for v in value)


def _is_pair_of_positive_ints(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(_is_int(v) and v > 0 for v in value)
    )
