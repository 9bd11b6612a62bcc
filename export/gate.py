"""The accuracy gate of `segexport quantize`: the INT8 model is scored against fp32 first.

- With a validation dataset: both models are scored against its ground truth at each
  image's own size (`export.evaluate`); the INT8 Dice may drop by at most `max_dice_drop`.
- Without one: the masks of both models on the held-back calibration images must agree on at
  least `min_agreement` of the pixels.

Both models run on ONNX Runtime's CPU provider, the reference for a QDQ graph.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.calibration import load_images
from export.params import DEFAULT_MAX_DICE_DROP, DEFAULT_MIN_AGREEMENT
from runtime import Segmenter
from trainer.data.source import DataSource

REFERENCE = {"backend": "onnxruntime", "device": "cpu"}
METRICS = ("acc", "dice", "iou", "map")


@dataclass
class GateResult:
    """What the gate measured: `rows` of (measure, fp32, int8), and the judged figure."""

    kind: str  # "dice" (against ground truth) or "agreement" (against the fp32 masks)
    value: float  # the Dice drop, or the mask agreement
    limit: float
    images: int
    rows: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        if self.kind == "dice":
            return self.value <= self.limit
        return self.value >= self.limit

    def verdict(self) -> str:
        if self.kind == "dice":
            judged = f"Dice drop {self.value:+.4f} (limit {self.limit:.4f})"
        else:
            judged = f"mask agreement {self.value:.2%} (limit {self.limit:.2%})"
        return f"{judged} on {self.images} images -> {'PASS' if self.passed else 'FAIL'}"

    def table(self) -> str:
        lines = ["| measure | fp32 | int8 | difference |", "| --- | --- | --- | --- |"]
        for label, fp32, int8 in self.rows:
            lines.append(f"| {label} | {fp32:.4f} | {int8:.4f} | {int8 - fp32:+.4f} |")
        return "\n".join([*lines, "", self.verdict()])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [list(row) for row in self.rows]
        data["passed"] = self.passed
        return data


def agreement_gate(
    fp32: Path, int8: Path, images: list[Path], minimum: float = DEFAULT_MIN_AGREEMENT
) -> GateResult:
    """Pixel agreement of the two models' masks on `images`, at each image's size."""
    pictures = load_images(images)
    with Segmenter(fp32, **REFERENCE) as reference, Segmenter(int8, **REFERENCE) as quantized:
        want, got = reference.predict(pictures), quantized.predict(pictures)
    same = sum(int((a == b).sum()) for a, b in zip(want, got, strict=True))
    pixels = sum(a.size for a in want)
    foreground = [float(np.mean([(m > 0).mean() for m in masks])) for masks in (want, got)]
    agreement = same / pixels
    rows = [("foreground fraction", *foreground), ("mask agreement", 1.0, agreement)]
    return GateResult("agreement", agreement, minimum, len(images), rows)


def dice_gate(
    fp32: Path, int8: Path, data: DataSource, max_drop: float = DEFAULT_MAX_DICE_DROP
) -> GateResult:
    """Both models against the ground truth of `data`'s validation split."""
    from export.evaluate import model_samples, score_segmenter

    samples = model_samples(fp32, data, "val")
    scores = []
    for path in (fp32, int8):
        with Segmenter(path, **REFERENCE) as seg:
            scores.append(score_segmenter(seg, samples))
    base, quantized = scores
    rows = [(f"{key} (input size)", base[key], quantized[key]) for key in METRICS]
    rows += [
        (f"{key} (native size)", base["native_size"][key], quantized["native_size"][key])
        for key in METRICS
    ]
    drop = base["native_size"]["dice"] - quantized["native_size"]["dice"]
    return GateResult("dice", drop, max_drop, base["images"], rows)
