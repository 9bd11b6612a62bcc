"""The metadata an exported model carries, so a runtime needs nothing but the model file.

ONNX files store it in `metadata_props` (string -> string): every field is a JSON value under
the key `segkit.<field>`. TensorRT engines store the same fields in a JSON sidecar
(`model.engine.json`). `ModelMetadata.from_props` / `from_json` validate what they read and
raise `MetadataError` naming the source and the missing or bad field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "segkit.model"
FORMAT_VERSION = 1
PROP_PREFIX = "segkit."

INPUT_NAME = "images"
OUTPUT_NAME = "probs"
OUTPUT_KINDS = ("sigmoid", "softmax")
PRECISIONS = ("fp32", "fp16")
COLOR_ORDER = "RGB"


class MetadataError(ValueError):
    """Model metadata is missing or invalid; the message names the source and the field."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to preprocess inputs for, and interpret outputs of, an exported model.

    The graph's input `images` is (N, 3, H, W) float32, RGB, scaled to [0, 1] and normalized
    with `mean`/`std`; its output `probs` is (N, num_classes, H, W) float32 probabilities:
    a sigmoid for binary models (`num_classes == 1`), a softmax over classes otherwise.
    """

    project_version: str
    arch: str
    model_config: dict[str, Any]
    num_classes: int
    classes: list[str]
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    threshold: float
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
    color_order: str = COLOR_ORDER
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    engine: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        _validate(self, "metadata")

    def replace(self, **changes: Any) -> ModelMetadata:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "metadata") -> ModelMetadata:
        """Build from plain values, reporting missing, unknown-version or bad fields by name."""
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
        names = {f.name: f for f in dataclasses.fields(cls)}
        required = [n for n, f in names.items() if _is_required(f)]
        missing = [n for n in required if n not in data]
        if missing:
            raise MetadataError(source, f"metadata lacks {', '.join(missing)}")
        values = {key: value for key, value in data.items() if key in names}
        for key in ("input_size", "mean", "std"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        try:
            return cls(**values)
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


def _validate(meta: ModelMetadata, source: str) -> None:
    def fail(problem: str) -> None:
        raise MetadataError(source, problem)

    def check(name: str, ok: bool, expected: str) -> None:
        if not ok:
            fail(f"bad {name} {getattr(meta, name)!r}: expected {expected}")

    check("format", meta.format == FORMAT, repr(FORMAT))
    check("project_version", isinstance(meta.project_version, str), "a string")
    check("arch", isinstance(meta.arch, str) and bool(meta.arch), "an architecture name")
    check("model_config", isinstance(meta.model_config, dict), "an object")
    check("num_classes", _is_int(meta.num_classes) and meta.num_classes >= 1, "an integer >= 1")
    check(
        "classes",
        isinstance(meta.classes, list) and all(isinstance(c, str) for c in meta.classes),
        "a list of class names",
    )
    check("input_size", _is_pair_of_positive_ints(meta.input_size), "[height, width] in pixels")
    check("mean", _is_numbers(meta.mean), "a list of numbers")
    check(
        "std", _is_numbers(meta.std) and all(s > 0 for s in meta.std), "a list of positive numbers"
    )
    if len(meta.mean) != len(meta.std):
        fail(f"mean has {len(meta.mean)} values but std has {len(meta.std)}")
    check(
        "threshold",
        _is_number(meta.threshold) and 0.0 <= meta.threshold <= 1.0,
        "a number in [0, 1]",
    )
    check("output_kind", meta.output_kind in OUTPUT_KINDS, " or ".join(OUTPUT_KINDS))
    expected_kind = "sigmoid" if meta.num_classes == 1 else "softmax"
    if meta.output_kind != expected_kind:
        fail(
            f"output_kind {meta.output_kind!r} does not fit "
            f"num_classes={meta.num_classes} ({expected_kind!r})"
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
    check("color_order", meta.color_order == COLOR_ORDER, repr(COLOR_ORDER))
    check("input_name", meta.input_name == INPUT_NAME, repr(INPUT_NAME))
    check("output_name", meta.output_name == OUTPUT_NAME, repr(OUTPUT_NAME))
    check("engine", isinstance(meta.engine, dict), "an object")


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
