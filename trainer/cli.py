"""`segtrain`: train (`fit`), evaluate and list U-Net models, run studies, draw pictures.

Importing this module does not import torch: each command imports what it needs. Option
choices and defaults come from `trainer.config` (the `TrainConfig` dataclass and its choice
lists), so the command line and the Python API cannot disagree.
"""

from __future__ import annotations

import json
import sys

import click
from click.core import ParameterSource

from runtime.cli_errors import CONTEXT_SETTINGS, SegkitGroup
from runtime.errors import EXIT_INTERRUPTED, ArgumentError
from trainer import __version__
from trainer.config import (
    AUG_PRESETS,
    BAD_SAMPLE_MODES,
    CACHE_MODES,
    LOSSES,
    LR_SCALINGS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TrainConfig,
)
from trainer.data.options import dataset_options

default = TrainConfig.default  # an option's default is its TrainConfig field's
DATA_OPTIONS = (
    "data", "annotations", "images", "masks", "val_images", "val_masks", "coco",
    "resize_masks", "ignore_index",
)  # fmt: skip


class Architecture(click.ParamType):
    """A registered architecture name; checked against the registry only when used (torch)."""

    name = "arch"

    def convert(self, value, param, ctx):
        import difflib

        from trainer.models import list_models

        known = list_models()
        if value in known:
            return value
        close = difflib.get_close_matches(value, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        self.fail(
            f"unknown architecture {value!r}.{hint} Available: {', '.join(known)}", param, ctx
        )


class TrainerGroup(SegkitGroup):
    """segtrain's errors: one line; a full disk during a run says how to continue it."""

    full_disk_hint = "free some space, then continue the run with --resume"


def _command_line(ctx: click.Context, options: dict) -> list[str]:
    """The options given on the command line, spelled out again (for a launcher)."""
    argv = []
    for param in ctx.command.params:
        name = param.name
        if name not in options or ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE:
            continue
        value, flag = options[name], param.opts[-1]
        if getattr(param, "is_flag", False):
            argv += [flag] if value else []
        elif isinstance(value, list):
            argv += [flag, ",".join(value)]
        else:
            argv += [flag, str(value)]
    return argv


def _parse_classes(ctx, param, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [c.strip() for c in value.split(",") if c.strip()]
    if not names or len(set(names)) != len(names):
        raise click.BadParameter("give distinct class names separated by commas, e.g. cat,dog")
    if "background" in names:
        raise click.BadParameter(
            "'background' is class 0 already; list only the foreground classes"
        )
    return names


@click.group(cls=TrainerGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="segtrain")
def main() -> None:
    """Train and evaluate U-Net segmentation models."""


@main.command()
@dataset_options(sample_default=True)
@click.option("--arch", type=Architecture(), default=default("arch"), help="See `segtrain models`.")
@click.option(
    "--width",
    type=click.IntRange(min=1),
    default=None,
    help="Base channel width w (channels w, 2w, 4w, 8w, bottleneck 16w). "
    "[default: 64; 16 on the sample data]",
)
@click.option(
    "--img-size",
    type=click.IntRange(min=8),
    default=None,
    help="Training resolution (square). [default: 256; 96 on the sample data]",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Maximum number of epochs. [default: 50; 30 on the sample data]",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Batch size. [default: 8]"
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Adam learning rate. [default: 1e-3 from scratch (--encoder-weights none included); "
    "1e-4 for the decoder of a pretrained encoder]",
)
@click.option(
    "--encoder-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Learning rate of a pretrained encoder. [default: 1e-5, or --lr/10 when --lr is set; "
    "--lr with --encoder-weights none]",
)
@click.option("--loss", type=click.Choice(LOSSES), default=default("loss"), help="Training loss.")
@click.option(
    "--dice-weight",
    type=click.FloatRange(0, 1),
    default=default("dice_weight"),
    help="alpha of the combined loss: alpha*Dice + (1-alpha)*BCE.",
)
@click.option(
    "--aug", type=click.Choice(AUG_PRESETS), default=default("aug"), help="Augmentation preset."
)
@click.option(
    "--erasing",
    type=click.FloatRange(0, 1),
    default=default("erasing"),
    help="Probability of random erasing of the image in the standard and crop presets "
    "(the original study's: 0.25).",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=default("precision"),
    help="auto: fp16 autocast + GradScaler on CUDA; on the CPU bf16 autocast + channels_last "
    "where it computes bf16 natively (AMX or AVX512-BF16), else fp32.",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=default("schedule"),
    help="Learning rate: cosine decay after a linear warmup (per batch); plateau: halve it "
    "when validation Dice stalls for 5 epochs (the original study's); constant.",
)
@click.option(
    "--warmup-epochs",
    type=click.IntRange(min=0),
    default=default("warmup_epochs"),
    help="Epochs of linear learning-rate warmup (cosine and constant).",
)
@click.option(
    "--ema/--no-ema",
    default=default("ema"),
    help="Validate, save and export an exponential moving average of the weights.",
)
@click.option(
    "--ema-decay",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=default("ema_decay"),
    help="EMA decay per optimizer step.",
)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZERS),
    default=default("optimizer"),
    help="adamw: decoupled weight decay; adam: L2 penalty (none at --weight-decay 0).",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=default("weight_decay"),
    help="Weight decay of the conv and linear weights (never of biases and norms).",
)
@click.option(
    "--cache",
    type=click.Choice(CACHE_MODES),
    default=default("cache"),
    help="ram: decode every image once and keep it, shrunk to just above --img-size; "
    "none: read each image from its file every epoch (datasets larger than memory).",
)
@click.option(
    "--compile/--no-compile",
    default=default("compile"),
    help="Train through torch.compile (the first steps compile for about half a minute). "
    "Measured on a 2-core AVX512-BF16 CPU: 1.4-2.2x the fp32 step, no gain on the bf16 step.",
)
@click.option(
    "--encoder",
    default=None,
    help="ResNet encoder of pretrained_attention_r2unet: resnet18, resnet34 or resnet50. "
    "[default: resnet34]",
)
@click.option(
    "--encoder-weights",
    default=None,
    help="imagenet, none, or a PATH to a ResNet state dict. [default: imagenet]",
)
@click.option(
    "--classes",
    callback=_parse_classes,
    default=None,
    help="Comma-separated labels for multi-class training (class ids 1..N); "
    "without it every label is foreground (binary).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder. [default: runs/<arch>-<timestamp>]",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pth.")
@click.option(
    "--force", is_flag=True, help="With --resume: accept options that differ from the run's."
)
@click.option(
    "--save-every",
    type=click.IntRange(min=0),
    default=default("save_every"),
    help="Also keep epoch_N.pth every K epochs (0: never).",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=default("patience"),
    help="Early stopping: epochs without a better validation Dice.",
)
@click.option(
    "--seed",
    type=int,
    default=default("seed"),
    help="Random seed (splits, shuffling, augmentation).",
)
@click.option("--device", default=default("device"), help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Training loader processes. [default: 0 on the CPU, 4 on CUDA]",
)
@click.option(
    "--on-bad-sample",
    type=click.Choice(BAD_SAMPLE_MODES),
    default=default("on_bad_sample"),
    help="skip: warn and skip unusable samples (counted in the summary); error: stop.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=default("val_fraction"),
    help="Validation share when --data has no train/test split.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=default("threshold"),
    help="Probability threshold for binary masks (stored in the checkpoint).",
)
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=1,
    help="Data-parallel processes on this machine (one per GPU; gloo processes on the CPU): "
    "launches torchrun --standalone --nproc_per_node=N -m trainer fit ...",
)
@click.option("--sync-bn", is_flag=True, help="Distributed runs: synchronize BatchNorm statistics.")
@click.option(
    "--lr-scaling",
    type=click.Choice(LR_SCALINGS),
    default=default("lr_scaling"),
    help="Distributed runs: linear multiplies --lr (and --encoder-lr) by the number of "
    "processes, whose combined batch is N x --batch-size.",
)
@click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
@click.pass_context
def fit(ctx: click.Context, quiet: bool, devices: int, **options) -> None:
    """Train a model; writes best.pth, last.pth, metrics.csv, config.json and curves.png."""
    if devices > 1:
        from trainer.distributed import launch

        argv = ["fit", *_command_line(ctx, options), *(["--quiet"] if quiet else [])]
        sys.exit(launch(devices, argv))
    from trainer.fit import fit as run_fit

    given = {
        name: value
        for name, value in options.items()
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }
    result = run_fit(TrainConfig(**options), given=given, progress=not quiet)
    if result.main_process:
        click.echo(result.summary())
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)


@main.command()
@click.option("--ckpt", required=True, type=click.Path(dir_okay=False), help="Checkpoint (.pth).")
@dataset_options()
@click.option(
    "--split",
    type=click.Choice(["val", "train"]),
    default="val",
    help="val: the test/ (or val/) folder, or the held-out share of a single folder.",
)
@click.option(
    "--img-size",
    type=click.IntRange(min=8),
    default=None,
    help="Evaluation resolution. [default: the checkpoint's input size]",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="[default: the checkpoint's threshold]",
)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Validation share of a single-folder dataset. [default: the run's own, else 0.2]",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the split for a single-folder dataset. [default: the run's own, else 0]",
)
def evaluate(**options) -> None:
    """Print the metrics (acc, dice, iou, map) of a checkpoint on a dataset split as JSON."""
    from trainer.evaluate import evaluate_checkpoint

    source = _pop_source(options)
    click.echo(json.dumps(evaluate_checkpoint(data=source, **options), indent=2))


@main.command("models")
def models_command() -> None:
    """List the registered architectures."""
    from trainer.models import list_models

    for name in list_models():
        click.echo(name)


@main.command("experiment")
@click.argument(
    "study", type=click.Choice(["architectures", "augmentations", "loss-weights", "encoders"])
)
@click.option("--data", default=None, help="Dataset folder (default: the built-in sample).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Study folder.")
@click.option("--epochs", type=int, default=None)
@click.option("--img-size", type=int, default=None)
@click.option("--width", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--seed", type=int, default=0)
@click.option("--device", default="auto")
@click.option("--weights", default=None, help="Dice weights for loss-weights, e.g. 0.1,0.7.")
@click.option(
    "--encoder-weights",
    default="auto",
    help="imagenet, none, or auto (ImageNet where loadable, else none).",
)
@click.option("--save-every", type=int, default=None, help="Keep epoch_N.pth every N epochs.")
@click.option(
    "--variants", default=None, help="Comma list: run only these variants (default: all)."
)
def experiment(study: str, out: str, weights: str | None, variants: str | None, **options) -> None:
    """Train a study's variants one after another (resumable); write results.csv and a chart."""
    from pathlib import Path

    from trainer.data.sample import default_sample_dir, make_sample_dataset
    from trainer.experiments import run_study, study_variants

    encoder_weights = options.pop("encoder_weights")
    if options["save_every"] is None:
        del options["save_every"]
    if options["data"] is None:
        options["data"] = str(make_sample_dataset(default_sample_dir()))
    try:
        dice_weights = [float(w) for w in weights.split(",")] if weights else None
    except ValueError:
        raise ArgumentError(
            "--weights", f"not a comma-separated list of numbers: {weights}"
        ) from None
    configs = study_variants(
        study, TrainConfig(**options), dice_weights, encoder_weights, log=click.echo
    )
    if variants:
        chosen = variants.split(",")
        unknown = [v for v in chosen if v not in configs]
        if unknown:
            raise ArgumentError(
                "--variants", f"unknown {', '.join(unknown)}; known: {', '.join(configs)}"
            )
        configs = {name: configs[name] for name in chosen}
    run_study(configs, Path(out), log=click.echo)


@main.group("plot")
def plot() -> None:
    """Pictures of runs (PNG)."""


@plot.command("curves")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
def plot_curves_command(runs: tuple[str, ...], out: str) -> None:
    """Loss, Dice/IoU, accuracy/mAP and lr per epoch of one or several runs."""
    from pathlib import Path

    from trainer.plots import plot_curves

    plot_curves([Path(r) for r in runs], Path(out))
    click.echo(out)


def _parse_indices(ctx, param, values: tuple[str, ...]) -> list[int] | None:
    """`--index 0 --index 3` or `--index 0,3`: image positions in the split (sorted by name)."""
    try:
        indices = [int(v) for value in values for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected whole numbers such as 0,3, got {values}") from None
    return indices or None


def _picture_options(function):
    """The options shared by the prediction pictures: data, split, images and output PNG."""
    options = [
        dataset_options(sample_default=True),
        click.option("--split", default="val", show_default=True, help="train or val."),
        click.option(
            "--index",
            "indices",
            multiple=True,
            callback=_parse_indices,
            help="Images to show by position in the split, e.g. 0,3,7 (repeatable).",
        ),
        click.option(
            "--out", "out_png", required=True, type=click.Path(dir_okay=False), help="PNG."
        ),
        click.option("--dpi", default=100, show_default=True, type=click.IntRange(min=1)),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _draw(function, *args, **kwargs) -> None:
    """Run a picture function; bad checkpoints, data or options end in one error line."""
    from trainer.data.sample import default_sample_dir, make_sample_dataset

    source = _pop_source(kwargs)
    if not source.given:
        source = source.replace(data=str(make_sample_dataset(default_sample_dir())))
    click.echo(function(*args, data=source, **kwargs))


def _pop_source(options: dict):
    """The data options of `options` as a DataSource, removed from `options`."""
    from trainer.data.source import DataSource

    source = DataSource.from_options(options)
    for name in DATA_OPTIONS:
        options.pop(name, None)
    return source


@plot.command("compare")
@click.argument("ckpt", type=click.Path())
@_picture_options
@click.option("--count", default=4, show_default=True, help="Images shown without --index.")
def plot_compare_command(ckpt: str, **options) -> None:
    """Image | ground truth | prediction | probability heatmap of CKPT, one row per image."""
    from trainer.viz import plot_compare

    _draw(plot_compare, ckpt, **options)


@plot.command("evolution")
@click.argument("ckpts", nargs=-1, required=True, type=click.Path())
@_picture_options
def plot_evolution_command(ckpts: tuple[str, ...], **options) -> None:
    """How predictions change across checkpoints (files in the given order; a run folder gives
    its epoch_N.pth and best.pth by epoch): green newly correct, red newly wrong, white still
    correct."""
    from trainer.viz import plot_evolution

    _draw(plot_evolution, ckpts, **options)


@plot.command("attention")
@click.argument("ckpt", type=click.Path())
@_picture_options
@click.option("--count", default=4, show_default=True, help="Images shown without --index.")
def plot_attention_command(ckpt: str, **options) -> None:
    """Attention-gate coefficients of an attention_* checkpoint over the images."""
    from trainer.viz import plot_attention

    _draw(plot_attention, ckpt, **options)


if __name__ == "__main__":
    main()
