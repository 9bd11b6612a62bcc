"""`segexport`: checkpoint -> ONNX / TensorRT, and parity checks against PyTorch.

Bad input (a missing or broken checkpoint, an unknown architecture, weights that do not fit
their config, an unsupported opset, an unwritable output, an engine from another TensorRT
version) prints one `Error: <file or option>: <problem>` line and exits with code 2; a parity
check that misses its tolerance exits with code 1. Importing this module does not import
torch: each command imports what it needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from export.errors import ExportError
from export.params import (
    BATCH,
    DEFAULT_MAX_DICE_DROP,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_OPSET,
    EXPORTERS,
    RANGE,
    SIZE,
)
from runtime.cli_errors import CONTEXT_SETTINGS, SegkitGroup
from runtime.errors import EXIT_FAILED
from runtime.metadata import CALIBRATION_METHODS
from trainer.data.options import dataset_options, pop_source


@click.group(cls=SegkitGroup, context_settings=CONTEXT_SETTINGS)
def main() -> None:
    """Export segkit checkpoints to ONNX / TensorRT and check them against PyTorch."""


@main.command("onnx")
@click.option(
    "--ckpt",
    "checkpoint",
    required=True,
    type=click.Path(path_type=Path),
    help="Checkpoint (.pth).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output file [default: checkpoint name with .onnx].",
)
@click.option("--opset", default=DEFAULT_OPSET, show_default=True, help="ONNX opset version.")
@click.option(
    "--batch",
    type=BATCH,
    default="dynamic",
    show_default=True,
    help="'dynamic' or a fixed batch size.",
)
@click.option(
    "--dynamic-hw", is_flag=True, help="Dynamic height/width (any size >= the model's stride)."
)
@click.option("--fp16", is_flag=True, help="float16 graph with float32 input and output.")
@click.option("--simplify", is_flag=True, help="Fold constants and remove redundant nodes.")
@click.option(
    "--preprocess",
    is_flag=True,
    help="Preprocessing in the graph: input `pixels`, uint8 NHWC RGB of any size.",
)
@click.option(
    "--exporter",
    type=click.Choice(EXPORTERS),
    default="auto",
    show_default=True,
    help="torch.onnx exporter: dynamo (needs onnxscript) or the legacy torchscript tracer.",
)
def onnx_command(
    checkpoint, output, opset, batch, dynamic_hw, fp16, simplify, preprocess, exporter
) -> None:
    """Export a checkpoint to ONNX (input `images`, output `probs`, metadata embedded)."""
    from export.onnx_export import export_onnx

    result = export_onnx(
        checkpoint,
        output,
        opset=opset,
        batch=batch,
        dynamic_hw=dynamic_hw,
        fp16=fp16,
        simplify=simplify,
        exporter=exporter,
        preprocess=preprocess,
    )
    if result.simplify_summary:
        click.echo(result.simplify_summary)
    click.echo(result.summary())


@main.command("trt")
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(path_type=Path),
    help="ONNX model from `segexport onnx`, or an INT8 QDQ model from `segexport quantize` "
    "(explicit quantization).",
)
@click.option(
    "--ckpt",
    "checkpoint",
    type=click.Path(path_type=Path),
    help="Checkpoint (exported to ONNX first).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Engine file [default: input name with .engine].",
)
@click.option("--fp16", is_flag=True, help="FP16 engine (TensorRT 11: needs an --fp16 ONNX graph).")
@click.option(
    "--batch",
    type=RANGE,
    default="1:4:16",
    show_default=True,
    help="Batch profile MIN:OPT:MAX (or one number).",
)
@click.option(
    "--dynamic-hw",
    is_flag=True,
    help="With --ckpt: export dynamic H/W (an --onnx graph must have it).",
)
@click.option(
    "--height",
    type=RANGE,
    help="Height profile MIN:OPT:MAX [default: stride:input:2*input] (dynamic H/W only).",
)
@click.option(
    "--width",
    type=RANGE,
    help="Width profile MIN:OPT:MAX [default: stride:input:2*input] (dynamic H/W only).",
)
@click.option("--workspace", type=float, help="Builder workspace limit in GB.")
@click.option(
    "--timing-cache",
    type=click.Path(path_type=Path),
    help="Timing cache file [default: in ~/.cache/segkit].",
)
@click.option(
    "--opset",
    default=DEFAULT_OPSET,
    show_default=True,
    help="ONNX opset when building from --ckpt.",
)
def trt_command(
    onnx_path,
    checkpoint,
    output,
    fp16,
    batch,
    dynamic_hw,
    height,
    width,
    workspace,
    timing_cache,
    opset,
):
    """Build a TensorRT engine plus its `<engine>.json` metadata sidecar."""
    from export.tensorrt_build import (
        build_engine,
        build_engine_from_checkpoint,
        read_onnx_metadata,
    )

    if (onnx_path is None) == (checkpoint is None):
        raise ExportError(
            "--onnx/--ckpt", "give exactly one of --onnx MODEL.onnx or --ckpt CHECKPOINT.pth"
        )
    source = onnx_path or checkpoint
    output = output or source.with_suffix(".engine")
    options = {
        "batch": batch,
        "height": height,
        "width": width,
        "workspace_gb": workspace,
        "timing_cache": timing_cache,
    }
    if checkpoint is not None:
        result = build_engine_from_checkpoint(
            checkpoint, output, fp16=fp16, dynamic_hw=dynamic_hw, opset=opset, **options
        )
    else:
        if dynamic_hw and not read_onnx_metadata(onnx_path).dynamic_hw:
            raise ExportError(
                onnx_path, "--dynamic-hw: this graph has a fixed H/W; export it with --dynamic-hw"
            )
        result = build_engine(onnx_path, output, fp16=fp16, **options)
    click.echo(result.summary())


@main.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--ckpt",
    "checkpoint",
    required=True,
    type=click.Path(path_type=Path),
    help="The source checkpoint.",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(path_type=Path),
    help="Folder of images [default: random].",
)
@click.option("--n", "n", default=32, show_default=True, help="Number of images.")
@click.option(
    "--batch-size", type=int, help="Images per run [default: 8, or the model's fixed batch]."
)
@click.option(
    "--size",
    type=SIZE,
    help="HEIGHT,WIDTH to run at [default: the model's input size; others need --dynamic-hw].",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the random images.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_command(model, checkpoint, images_dir, n, batch_size, size, seed, as_json) -> None:
    """Compare an exported model (.onnx / .engine) with its checkpoint in PyTorch."""
    from export.parity import check_parity

    report = check_parity(
        model,
        checkpoint,
        images_dir=images_dir,
        n=n,
        batch_size=batch_size,
        size=size,
        seed=seed,
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    if not report.passed:
        sys.exit(EXIT_FAILED)


@main.command("triton")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", "repo", required=True, type=click.Path(path_type=Path),
    help="Model repository folder (REPO/NAME/config.pbtxt, REPO/NAME/1/model.*).",
)  # fmt: skip
@click.option("--name", help="Model name [default: the file's stem].")
@click.option(
    "--max-batch", default=8, show_default=True, type=click.IntRange(min=1),
    help="max_batch_size (models with a dynamic batch).",
)  # fmt: skip
@click.option("--instances", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--kind", default="auto", show_default=True,
    type=click.Choice(["auto", "KIND_CPU", "KIND_GPU"]),
    help="instance_group kind (auto: GPU for engines, CPU for ONNX).",
)  # fmt: skip
@click.option("--preprocess", is_flag=True, help="Preprocessing in the graph (uint8 pixels in).")
def triton_command(model, repo, name, max_batch, instances, kind, preprocess) -> None:
    """Write a Triton model repository for MODEL (.onnx or .engine): config.pbtxt from the
    model itself, with its segkit metadata as parameters."""
    from export.triton import write_repository

    result = write_repository(
        model, repo, name=name, max_batch=max_batch, instances=instances, kind=kind,
        preprocess=preprocess,
    )  # fmt: skip
    click.echo(result.summary())


@main.command("evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@dataset_options()
@click.option("--split", default="val", show_default=True, help="Dataset split to score.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--threshold", type=click.FloatRange(0, 1), default=None,
    help="Mask threshold of a binary model. [default: the model's own]",
)  # fmt: skip
@click.option(
    "--backend", default="auto", show_default=True,
    help="auto, onnxruntime, openvino or tensorrt (a .pth runs in PyTorch).",
)  # fmt: skip
@click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
    show_default=True, help="OpenVINO's inference precision.",
)  # fmt: skip
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads.")
@click.option(
    "--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
    help="Validation share of a single-folder dataset. [default: a checkpoint's own, else 0.2]",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=None,
    help="Seed of the split of a single-folder dataset. [default: a checkpoint's own, else 0]",
)  # fmt: skip
def evaluate_command(model, **options) -> None:
    """Score MODEL (.pth, .onnx, .int8.onnx, .xml, .engine) against a dataset's ground truth:
    acc, dice, iou, map at the model's input size, as `segtrain evaluate` gives them, and at
    each image's own size (native_size), as JSON."""
    from export.evaluate import evaluate_model

    source = pop_source(options)
    click.echo(json.dumps(evaluate_model(model, source, **options), indent=2))


@main.command("quantize")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--calib", required=True, type=click.Path(path_type=Path, file_okay=False),
    help="Calibration images: an image folder, or a dataset folder (its training images).",
)  # fmt: skip
@click.option(
    "-o", "--output", type=click.Path(path_type=Path),
    help="Output file [default: MODEL's stem with .int8.onnx].",
)  # fmt: skip
@click.option("--n", "n", type=click.IntRange(min=1), default=200, help="Calibration images.")
@click.option(
    "--method", type=click.Choice(CALIBRATION_METHODS), default="minmax",
    help="Calibration: min/max, a percentile of the histogram, or entropy (KL).",
)  # fmt: skip
@click.option(
    "--exclude", default="",
    help="Comma-separated node names kept in float, besides the head and its activation.",
)  # fmt: skip
@click.option(
    "--val", type=click.Path(path_type=Path, file_okay=False),
    help="Validation dataset: gate on its ground truth (Dice) instead of mask agreement.",
)  # fmt: skip
@click.option(
    "--max-dice-drop", type=click.FloatRange(min=0), default=DEFAULT_MAX_DICE_DROP,
    help="With --val: the largest Dice drop (native size) the gate accepts.",
)  # fmt: skip
@click.option(
    "--min-agreement", type=click.FloatRange(0, 1), default=DEFAULT_MIN_AGREEMENT,
    help="Without --val: the least mask agreement with fp32 on held-back images.",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Write the model even when the gate fails.")
def quantize_command(model, calib, output, n, method, exclude, val, max_dice_drop,
                     min_agreement, force) -> None:  # fmt: skip
    """Static INT8 (QDQ, per-channel weights) of an fp32 MODEL.onnx, calibrated on images
    preprocessed as the runtime does; written only when the accuracy gate passes."""
    from export.quantize import GateFailed, quantize_model
    from trainer.data.source import DataSource

    result = quantize_model(
        model, calib, output, n=n, method=method,
        exclude=[name for name in exclude.split(",") if name],
        val=None if val is None else DataSource(data=str(val)),
        max_dice_drop=max_dice_drop, min_agreement=min_agreement, force=force,
    )  # fmt: skip
    click.echo(result.gate.table())
    click.echo(result.summary())
    if not result.gate.passed and not force:
        raise GateFailed(model, "the INT8 model missed the accuracy gate (--force writes it)")
