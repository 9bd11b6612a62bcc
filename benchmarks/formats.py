"""`segbench formats`: one checkpoint in every format and precision this machine runs, side by side.

From `--ckpt best.pth` it writes, into the output folder: the fp32 and fp16 ONNX exports, the
INT8 QDQ model (`export.quantize`, calibrated on the dataset's training images, its gate
result recorded but not enforced here) and the OpenVINO IR. Each row opens one of them on one
backend and precision and measures:

- file size; Dice at each image's own size on the dataset's validation split
  (`export.evaluate`), and its difference from the PyTorch checkpoint's;
- batch-1 latency (p50 of `--rounds` runs) and images/s at batch 8 (p50), the model alone on
  preprocessed batches of the validation images.

Rows are printed as one Markdown table and each is appended to `formats.jsonl` as it is
measured; `formats.md` holds the table with the CPU's instruction set, because the ratios
between precisions depend on it (VNNI for int8, AVX512_BF16 or AMX for bf16).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime import Segmenter
from runtime.cpu import has_native_bf16, instruction_set

BATCH = 8
ROUNDS = 5


@dataclass(frozen=True)
class Case:
    """One row to measure: a file opened on a backend in a precision."""

    format: str
    precision: str
    backend: str
    path: Path
    open: Callable[[], Segmenter]


@dataclass
class Row:
    format: str
    precision: str
    backend: str
    file: str
    size_mb: float
    dice: float
    dice_vs_pytorch: float
    p50_ms_batch1: float
    images_per_s_batch8: float


def build_files(ckpt: Path, data: str, out: Path, calib_n: int) -> dict[str, Path]:
    """The exports of `ckpt` in `out`: onnx, onnx fp16, int8 onnx and (with OpenVINO) IR."""
    from export.onnx_export import export_onnx
    from export.quantize import quantize_model
    from runtime.backends.openvino import openvino_available, save_ir

    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = {
            "onnx": export_onnx(ckpt, out / "model.onnx").path,
            "onnx-fp16": export_onnx(ckpt, out / "model.fp16.onnx", fp16=True).path,
        }
    files["int8"] = quantize_model(files["onnx"], data, out / "model.int8.onnx", n=calib_n,
                                   force=True).path  # fmt: skip
    if openvino_available():
        files["ir"] = save_ir(files["onnx"], out / "model.xml")
    return files


def cases(ckpt: Path, files: dict[str, Path], threads: int | None) -> list[Case]:
    """Every (file, backend, precision) this machine runs."""
    from export.evaluate import open_model
    from runtime.backends.openvino import openvino_available

    def seg(path: Path, **options: Any) -> Callable[[], Segmenter]:
        return lambda: open_model(path, threads=threads, batch_size=BATCH, **options)

    ort = {"backend": "onnxruntime"}
    rows = [
        Case("PyTorch .pth", "fp32", "pytorch", ckpt, seg(ckpt)),
        Case("ONNX", "fp32", "onnxruntime", files["onnx"], seg(files["onnx"], **ort)),
        Case("ONNX", "fp16", "onnxruntime", files["onnx-fp16"], seg(files["onnx-fp16"], **ort)),
        Case("ONNX INT8 QDQ", "int8", "onnxruntime", files["int8"], seg(files["int8"], **ort)),
    ]
    if openvino_available():
        ov = {"backend": "openvino"}
        rows.append(Case("ONNX", "fp32", "openvino", files["onnx"],
                         seg(files["onnx"], precision="fp32", **ov)))  # fmt: skip
        if has_native_bf16():
            rows.append(Case("ONNX", "bf16", "openvino", files["onnx"],
                             seg(files["onnx"], precision="bf16", **ov)))  # fmt: skip
        rows.append(Case("ONNX INT8 QDQ", "int8", "openvino", files["int8"],
                         seg(files["int8"], **ov)))  # fmt: skip
        rows.append(Case("OpenVINO IR", "fp32", "openvino", files["ir"],
                         seg(files["ir"], precision="fp32")))  # fmt: skip
    return rows


def p50_seconds(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50))


def measure(case: Case, samples: list, batch: np.ndarray, rounds: int) -> dict[str, Any]:
    """Dice at native size, batch-1 latency and batch-8 throughput of one case."""
    from export.evaluate import score_segmenter

    with case.open() as seg:
        dice = score_segmenter(seg, samples, batch_size=BATCH)["native_size"]["dice"]
        one = p50_seconds(lambda: seg.backend.run(batch[:1]), rounds)
        eight = p50_seconds(lambda: seg.backend.run(batch), rounds)
        precision = seg.backend.precision
    return {"dice": dice, "p50_ms": one * 1e3, "images_per_s": len(batch) / eight,
            "precision": precision}  # fmt: skip


def run_formats(
    ckpt: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    rounds: int = ROUNDS,
    threads: int | None = None,
    calib_n: int = 64,
    echo: Callable[[str], None] = print,
) -> list[Row]:
    """Export, measure every case, write `formats.jsonl` row by row and `formats.md`."""
    from export.evaluate import class_map_of, model_samples
    from runtime.preprocess import preprocess
    from trainer.data.dataset import load_sample
    from trainer.data.source import DataSource

    ckpt, out = Path(ckpt), Path(out)
    files = build_files(ckpt, str(data), out, calib_n)
    samples = model_samples(ckpt, DataSource(data=str(data)), "val")
    with Segmenter(files["onnx"], backend="onnxruntime") as seg:
        meta = seg.metadata
    images = [load_sample(s, class_map_of(meta))[0] for s in samples[:BATCH]]
    images = [images[i % len(images)] for i in range(BATCH)]  # a small split, repeated
    batch = preprocess(images, meta.input_size, meta.mean, meta.std)
    log = out / "formats.jsonl"
    log.write_text("")
    rows: list[Row] = []
    for case in cases(ckpt, files, threads):
        echo(f"measuring {case.format} {case.precision} on {case.backend} ...")
        result = measure(case, samples, batch, rounds)
        reference = rows[0].dice if rows else result["dice"]
        row = Row(case.format, result["precision"], case.backend, case.path.name,
                  _size_mb(case.path), result["dice"], result["dice"] - reference,
                  result["p50_ms"], result["images_per_s"])  # fmt: skip
        rows.append(row)
        with log.open("a") as handle:
            handle.write(json.dumps(asdict(row)) + "\n")
    (out / "formats.md").write_text(report(rows, ckpt, data, threads))
    return rows


def _size_mb(path: Path) -> float:
    size = path.stat().st_size
    if path.suffix == ".xml":
        size += path.with_suffix(".bin").stat().st_size
    return size / 1e6


def report(rows: list[Row], ckpt: Path, data: str | os.PathLike, threads: int | None) -> str:
    """The Markdown report: the machine's instruction set, then the table."""
    from benchmarks.machine import lscpu_fields

    cpu = lscpu_fields().get("Model name", "unknown CPU")
    lines = [
        "# segkit formats",
        "",
        f"- checkpoint: `{ckpt.name}`, data: `{Path(data).name}` (validation split)",
        f"- CPU: {cpu}, {os.cpu_count()} cores, threads: {threads or 'library default'}",
        f"- instruction set: {instruction_set()}",
        f"- load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "- Dice at each image's own size; latency and throughput of the model alone",
        "",
        table(rows),
    ]
    return "\n".join(lines) + "\n"


def table(rows: list[Row]) -> str:
    head = ("format", "precision", "backend", "file", "MB", "Dice", "vs PyTorch",
            "p50 ms (b1)", "images/s (b8)")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = (r.format, r.precision, r.backend, r.file, f"{r.size_mb:.2f}", f"{r.dice:.4f}",
                 f"{r.dice_vs_pytorch:+.4f}", f"{r.p50_ms_batch1:.1f}",
                 f"{r.images_per_s_batch8:.1f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
