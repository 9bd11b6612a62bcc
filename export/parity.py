"""Parity of an exported model with its PyTorch checkpoint on the same preprocessed images.

Both run on identical float32 batches (real images preprocessed as in training, or seeded
random ones). The report gives the max and mean absolute difference of the probabilities, the
share of pixels whose masks agree (threshold for binary models, argmax for multi-class) and
the IoU between the two masks (foreground for binary, mean over foreground classes present
otherwise), and whether the tolerance for the backend and precision was met.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from export.errors import ExportError
from export.runners import open_runner
from export.runners.torch_runner import TorchRunner
from export.source import load_source
from runtime.backends import Backend
from runtime.images import is_image_file, read_image
from runtime.preprocess import preprocess, resize_bilinear


@dataclass(frozen=True)
class Tolerance:
    """Limits a parity check must meet; None means the figure is reported, not judged."""

    max_abs_diff: float | None
    min_agreement: float | None


TOLERANCES = {
    ("onnxruntime", "fp32"): Tolerance(max_abs_diff=1e-4, min_agreement=0.9999),
    ("onnxruntime", "fp16"): Tolerance(max_abs_diff=None, min_agreement=0.995),
    ("onnxruntime", "int8"): Tolerance(max_abs_diff=None, min_agreement=0.995),
    ("openvino", "fp32"): Tolerance(max_abs_diff=1e-4, min_agreement=0.9999),
    ("openvino", "fp16"): Tolerance(max_abs_diff=None, min_agreement=0.995),
    ("openvino", "int8"): Tolerance(max_abs_diff=None, min_agreement=0.995),
    ("tensorrt", "fp32"): Tolerance(max_abs_diff=1e-3, min_agreement=None),
    ("tensorrt", "fp16"): Tolerance(max_abs_diff=None, min_agreement=0.995),
}


@dataclass
class ParityReport:
    model: str
    checkpoint: str
    backend: str
    precision: str
    images: str
    n_images: int
    size: tuple[int, int]
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float
    iou: float
    tolerance: Tolerance
    same_source: bool
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        data = asdict(self)
        data["size"] = list(self.size)
        data["passed"] = self.passed
        return data

    def format(self) -> str:
        """A short human-readable report ending in PASS or FAIL."""
        tol = self.tolerance

        diff_limit, diff_verdict = _judged(
            tol.max_abs_diff, self.max_abs_diff, "{:.0e}", upper=True
        )
        agree_limit, agree_verdict = _judged(
            tol.min_agreement, self.agreement, "{:.2%}", upper=False
        )
        lines = [
            f"parity: {self.model} ({self.backend}, {self.precision}) "
            f"vs {self.checkpoint} (PyTorch fp32)",
            f"  images          {self.n_images} {self.images} at {self.size[0]}x{self.size[1]}",
            f"  max abs diff    {self.max_abs_diff:.3e}  {diff_limit} {diff_verdict}".rstrip(),
            f"  mean abs diff   {self.mean_abs_diff:.3e}",
            f"  mask agreement  {self.agreement:.4%}  {agree_limit} {agree_verdict}".rstrip(),
            f"  mask IoU        {self.iou:.6f}",
        ]
        if not self.same_source:
            lines.append(
                "  warning: the model was exported from a different checkpoint (SHA-256 differs)"
            )
        lines.append("PASS" if self.passed else "FAIL: " + "; ".join(self.failures))
        return "\n".join(lines)


def _judged(limit: float | None, value: float, fmt: str, upper: bool) -> tuple[str, str]:
    """("(limit X)", "ok"/"FAIL") for a judged figure, ("", "") for a reported-only one."""
    if limit is None:
        return "", ""
    ok = value <= limit if upper else value >= limit
    return f"(limit {fmt.format(limit)})", "ok" if ok else "FAIL"


class _Stats:
    """Running sums over batches, so no full-size arrays are kept."""

    def __init__(self, num_classes: int, threshold: float):
        self.num_classes, self.threshold = num_classes, threshold
        self.max_diff, self.sum_diff, self.count = 0.0, 0.0, 0
        self.agree, self.pixels = 0, 0
        self.intersection = np.zeros(max(num_classes, 2), dtype=np.int64)
        self.union = np.zeros(max(num_classes, 2), dtype=np.int64)

    def add(self, reference: np.ndarray, exported: np.ndarray) -> None:
        diff = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
        self.max_diff = max(self.max_diff, float(diff.max()))
        self.sum_diff += float(diff.sum())
        self.count += diff.size
        ref_mask, exp_mask = self._mask(reference), self._mask(exported)
        self.agree += int((ref_mask == exp_mask).sum())
        self.pixels += ref_mask.size
        for cls in range(1, len(self.intersection)):
            a, b = ref_mask == cls, exp_mask == cls
            self.intersection[cls] += int((a & b).sum())
            self.union[cls] += int((a | b).sum())

    def _mask(self, probs: np.ndarray) -> np.ndarray:
        if self.num_classes == 1:
            return (probs[:, 0] > self.threshold).astype(np.int64)
        return probs.argmax(axis=1)

    def iou(self) -> float:
        present = self.union[1:] > 0
        if not present.any():
            return 1.0
        return float((self.intersection[1:][present] / self.union[1:][present]).mean())


def check_parity(
    model_path: str | os.PathLike,
    checkpoint: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
    n: int = 32,
    batch_size: int | None = None,
    size: tuple[int, int] | None = None,
    seed: int = 0,
) -> ParityReport:
    """Compare the exported model at `model_path` with the PyTorch model of `checkpoint`.

    `size` (height, width) defaults to the model's input size; other sizes need a model
    exported with `--dynamic-hw`. `batch_size` defaults to 8, or the model's fixed batch.
    """
    if n < 1:
        raise ExportError("--n", f"need at least one image, got {n}")
    source = load_source(checkpoint)
    with open_runner(model_path) as runner:
        meta = runner.metadata
        size = meta.run_size(size, "--size", runner.path)
        batch_size = _check_batch_size(runner, batch_size)
        if images_dir is not None:
            images, description = _read_folder(Path(images_dir), n), f"images from {images_dir}"
        else:
            images, description = _random_images(n, size, seed), f"random images (seed {seed})"
        reference = TorchRunner(source)
        stats = _Stats(meta.num_classes, meta.threshold)
        for start in range(0, len(images), batch_size):  # Backend.run pads a fixed batch
            inputs = preprocess(images[start : start + batch_size], size, meta.mean, meta.std)
            stats.add(reference.run(inputs), runner.run(inputs))
        report = ParityReport(
            model=str(model_path),
            checkpoint=str(checkpoint),
            backend=runner.name,
            precision=meta.precision,
            images=description,
            n_images=len(images),
            size=size,
            max_abs_diff=stats.max_diff,
            mean_abs_diff=stats.sum_diff / stats.count,
            agreement=stats.agree / stats.pixels,
            iou=stats.iou(),
            tolerance=TOLERANCES[(runner.name, meta.precision)],
            same_source=meta.source_sha256 == source.sha256,
        )
    report.failures = _failures(report)
    return report


def _failures(report: ParityReport) -> list[str]:
    tol, failures = report.tolerance, []
    if tol.max_abs_diff is not None and report.max_abs_diff > tol.max_abs_diff:
        failures.append(f"max abs diff {report.max_abs_diff:.3e} > {tol.max_abs_diff:.0e}")
    if tol.min_agreement is not None and report.agreement < tol.min_agreement:
        failures.append(
            f"mask agreement {100 * report.agreement:.4f}% < {100 * tol.min_agreement:.2f}%"
        )
    return failures


def _check_batch_size(runner: Backend, batch_size: int | None) -> int:
    meta = runner.metadata
    if meta.dynamic_batch:
        batch_size = 8 if batch_size is None else batch_size
        if batch_size < 1:
            raise ExportError("--batch-size", f"must be >= 1, got {batch_size}")
        return batch_size
    if batch_size not in (None, meta.batch_size):
        raise ExportError(
            "--batch-size",
            f"{runner.path} has a fixed batch of {meta.batch_size}; got --batch-size {batch_size}",
        )
    return meta.batch_size


def _read_folder(folder: Path, n: int) -> list[np.ndarray]:
    """The first `n` images of `folder` (sorted by name), read as training reads them."""
    if not folder.is_dir():
        raise ExportError(folder, "no such image folder")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))[:n]
    if not paths:
        raise ExportError(folder, "no images (.jpg .jpeg .png .bmp .tif .tiff) in this folder")
    return [read_image(p) for p in paths]


def _random_images(n: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Seeded smooth random RGB images: low-resolution noise upsampled to `size`."""
    rng = np.random.default_rng(seed)
    height, width = size
    coarse = rng.integers(0, 256, (n, max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    fine = rng.integers(-24, 25, (n, height, width, 3))
    return [
        np.clip(resize_bilinear(c, (height, width)).astype(np.int64) + f, 0, 255).astype(np.uint8)
        for c, f in zip(coarse, fine, strict=True)
    ]
