"""`segexport quantize`: static INT8 (QDQ, per-channel weights) with `onnxruntime.quantization`.

Activations are uint8 (asymmetric), weights int8 per output channel: the U8S8 form ONNX
Runtime's x86 kernels (VNNI) and OpenVINO's CPU plugin run natively. The calibration images
go through the runtime's own preprocessing (`export.calibration`). The graph's output
activation (sigmoid / softmax) and the last convolution, the head, stay in float
(`float_nodes`). Measured on the butterfly width-16 model (128 px, 64 calibration images,
MinMax, scored on its 100 test images at their own size, fp32 Dice 0.8661): everything
quantized, Dice drop 0.00015; the sigmoid kept in float, 0.00014; the head convolution and
the sigmoid kept, 0.00010. The differences are small on this model; the head is kept because
a uint8 sigmoid output rounds probabilities to steps of 1/255 (ties in mAP, thresholds other
than 0.5 shift) and the head is 1 of 23 convolutions (no measurable speed to win).

Nothing is written before the accuracy gate passed (`export.gate`); `force` writes anyway.
The output carries every `segkit.*` key of the input, with precision "int8" and the
calibration record (method, image count, the gate's result), and is written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from export.calibration import CalibrationSplit, PreprocessedReader, calibration_split
from export.errors import ExportError
from export.gate import GateResult, agreement_gate, dice_gate
from export.onnx_export import embed_metadata, write_model_bytes
from export.params import DEFAULT_MAX_DICE_DROP, DEFAULT_MIN_AGREEMENT
from export.simplify import simplify
from runtime.errors import EXIT_FAILED
from runtime.metadata import CALIBRATION_METHODS, ModelMetadata
from trainer.data.source import DataSource


class GateFailed(ExportError):
    """The INT8 model missed the accuracy gate; nothing was written (exit code 1)."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class QuantizeResult:
    path: Path | None  # None: the gate failed and nothing was written
    metadata: ModelMetadata
    gate: GateResult
    split: CalibrationSplit

    def summary(self) -> str:
        size_mb = self.path.stat().st_size / 1e6 if self.path else 0.0
        where = f"wrote {self.path} ({size_mb:.1f} MB)" if self.path else "wrote nothing"
        calibration = self.metadata.calibration
        return (
            f"{where}: int8, {calibration['method']} calibration on {calibration['images']} "
            f"images ({self.split.source}), {len(self.split.held_back)} held back"
        )


def default_int8_path(model: str | os.PathLike) -> Path:
    """`best.onnx` -> `best.int8.onnx`."""
    model = Path(model)
    return model.with_name(f"{model.stem}.int8.onnx")


def read_metadata(path: Path) -> tuple[onnx.ModelProto, ModelMetadata]:
    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError, OSError, ValidationError, ...
        raise ExportError(path, f"not a readable ONNX model ({err})") from err
    props = {p.key: p.value for p in model.metadata_props}
    meta = ModelMetadata.from_props(props, str(path))
    if meta.precision != "fp32" or meta.preprocess:
        raise ExportError(
            path, f"quantize takes a plain fp32 export; this one is {meta.precision}"
            + (" with preprocessing inside" if meta.preprocess else "")
        )  # fmt: skip
    return model, meta


def float_nodes(model: onnx.ModelProto, output_name: str) -> list[str]:
    """The node that produces the output (sigmoid / softmax) and the last Conv before it."""
    producer = {out: node for node in model.graph.node for out in node.output}
    keep, pending, seen = [], [output_name], set()
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        keep.append(node.name)
        if node.op_type == "Conv":
            break
        pending.extend(name for name in node.input if name in producer)
    return keep


def quantize_model(
    model_path: str | os.PathLike,
    calib: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    n: int = 200,
    method: str = "minmax",
    exclude: list[str] | None = None,
    val: DataSource | None = None,
    max_dice_drop: float = DEFAULT_MAX_DICE_DROP,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    force: bool = False,
) -> QuantizeResult:
    """Quantize `model_path`, gate it, and write it to `output` when it passes (or `force`)."""
    model_path = Path(model_path)
    output = Path(output) if output else default_int8_path(model_path)
    if method not in CALIBRATION_METHODS:
        raise ExportError("--method", f"expected one of {', '.join(CALIBRATION_METHODS)}")
    model, meta = read_metadata(model_path)
    split = calibration_split(calib, n)
    with tempfile.TemporaryDirectory(prefix="segkit-quantize-") as tmp:
        # constants folded first, so every bias is an initializer the quantizer can scale
        folded, staged = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        model = simplify(model).model
        onnx.save(model, str(folded))
        excluded = float_nodes(model, meta.output_name) + list(exclude or [])
        reader = PreprocessedReader(split.calibrate, meta)
        run_quantization(folded, staged, reader, method, excluded)
        if val is not None:
            gate = dice_gate(model_path, staged, val, max_dice_drop)
        else:
            gate = agreement_gate(model_path, staged, split.held_back, min_agreement)
        calibration = {"method": method, "images": len(split.calibrate), "gate": gate.to_dict()}
        int8_meta = meta.replace(precision="int8", calibration=calibration)
        if not gate.passed and not force:
            return QuantizeResult(None, int8_meta, gate, split)
        quantized = onnx.load(str(staged))
        embed_metadata(quantized, int8_meta)
        write_model_bytes(output, quantized.SerializeToString())
    return QuantizeResult(output, int8_meta, gate, split)


def run_quantization(
    source: Path, staged: Path, reader: PreprocessedReader, method: str, excluded: list[str]
) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    try:
        with _without_preprocessing_hint():
            quantize_static(
                str(source),
                str(staged),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[method],
                nodes_to_exclude=excluded,
                extra_options={"CalibMovingAverage": False},
            )
    except Exception as err:  # onnxruntime.quantization raises many unrelated types
        raise ExportError(source, f"quantization failed ({type(err).__name__}: {err})") from err


class _PreprocessingHint(logging.Filter):
    """Drops onnxruntime.quantization's advice to run its `quant_pre_process` first: the
    exported graph is already shape-inferred and the hint would be printed on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_hint():
    hint = _PreprocessingHint()
    logging.getLogger().addFilter(hint)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(hint)
