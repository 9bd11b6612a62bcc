"""The four studies of the original U-Net comparison and a resumable runner for them.

Each variant trains into `OUT/<variant>/` through `trainer.fit.fit`. A variant whose run
folder has a `summary.json` with `interrupted: false` is finished and not retrained; a
half-finished one (a `last.pth` without a finished summary) is resumed with `resume=True`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

from runtime.errors import ArgumentError
from trainer.config import AUG_PRESETS, LEGACY_RECIPE, TrainConfig

RESULT_COLUMNS = ("variant", "weights", "epoch", "loss", "acc", "dice", "iou", "map", "seconds")
DICE_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
ENCODER_BASELINE = "attention_r2unet"  # the encoders study's from-scratch reference
STUDY_ERASING = LEGACY_RECIPE["erasing"]  # the augmentations study's "standard-erasing"


def _weights_for(encoder: str, encoder_weights: str, log: Callable[[str], None]) -> str:
    """ "imagenet" when asked and loadable, else "none"; "auto" tries ImageNet first."""
    if encoder_weights != "auto":
        return encoder_weights
    from trainer.models.encoders import download_imagenet_weights

    try:
        download_imagenet_weights(encoder)
    except Exception as err:  # offline or no cache: train the encoder from scratch
        cause = str(err.__cause__ or err).splitlines()[0]
        log(f"{encoder}: ImageNet weights not available ({cause}); its encoder starts from scratch")
        return "none"
    return "imagenet"


def study_variants(
    study: str,
    base: TrainConfig,
    weights: list[float] | None = None,
    encoder_weights: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, TrainConfig]:
    """The configurations of `study`, by variant name, derived from `base`.

    With `encoder_weights="auto"` each pretrained encoder gets "imagenet" when its weights can
    be loaded and "none" otherwise (logged); the results' `weights` column records which.
    """
    from trainer.models import list_models, model_spec
    from trainer.models.encoders import RESNET_ENCODERS

    replace = dataclasses.replace
    if study == "architectures":
        variants = {}
        for arch in list_models():
            spec = model_spec(arch)
            if spec.pretrained_encoder:
                encoder = spec.default("encoder")
                weights_of = _weights_for(encoder, encoder_weights, log)
                variants[arch] = replace(
                    base, arch=arch, encoder=encoder, encoder_weights=weights_of
                )
            else:
                variants[arch] = replace(base, arch=arch)
        return variants
    if study == "augmentations":
        variants = {aug: replace(base, aug=aug) for aug in AUG_PRESETS}
        # the original study's random erasing, off in the recipe since it cost Dice
        variants["standard-erasing"] = replace(base, aug="standard", erasing=STUDY_ERASING)
        return variants
    if study == "loss-weights":
        chosen = DICE_WEIGHTS if weights is None else weights
        return {f"dice_{w:.1f}": replace(base, loss="combined", dice_weight=w) for w in chosen}
    if study == "encoders":
        variants = {ENCODER_BASELINE: replace(base, arch=ENCODER_BASELINE)}
        for arch in (a for a in list_models() if model_spec(a).pretrained_encoder):
            for name in RESNET_ENCODERS:
                variants[name] = replace(
                    base,
                    arch=arch,
                    encoder=name,
                    encoder_weights=_weights_for(name, encoder_weights, log),
                )
        return variants
    raise ArgumentError("study", f"unknown study {study!r}; choose one of {', '.join(STUDIES)}")


STUDIES = ("architectures", "augmentations", "loss-weights", "encoders")


def is_finished(run_dir: Path) -> bool:
    """True when `run_dir/summary.json` records a run that was not interrupted."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return False
    summary = json.loads(path.read_text())
    return not summary.get("interrupted", True) and summary.get("epochs_done", 0) > 0


def run_study(
    variants: dict[str, TrainConfig],
    out: Path,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Train each variant not yet finished into `out/<variant>/`; write results, chart, table."""
    from trainer.fit import fit

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, cfg in variants.items():
        run_dir = out / name
        if is_finished(run_dir):
            log(f"{name}: finished already, not retrained")
            continue
        resume = (run_dir / "last.pth").is_file()
        log(f"{name}: {'resuming' if resume else 'training'}")
        fit(dataclasses.replace(cfg, out=str(run_dir), resume=resume), progress=False)
    rows = collect_results(variants, out)
    write_results_csv(rows, out / "results.csv")
    plot_study(rows, out / "comparison.png")
    log(summary_table(rows))
    return rows


def _recorded_weights(cfg: TrainConfig) -> str:
    if not cfg.has_pretrained_encoder:
        return "-"
    return cfg.encoder_weights or "imagenet"


def collect_results(variants: dict[str, TrainConfig], out: Path) -> list[dict]:
    """One row per variant per epoch from each run's metrics.csv (`loss` is the val loss)."""
    from trainer.runlog import read_metrics_csv

    rows = []
    for name, cfg in variants.items():
        for r in read_metrics_csv(Path(out) / name / "metrics.csv"):
            rows.append(
                {
                    "variant": name,
                    "weights": _recorded_weights(cfg),
                    "epoch": int(r["epoch"]),
                    "loss": r.get("val_loss", float("nan")),
                    **{k: r.get(k, float("nan")) for k in ("acc", "dice", "iou", "map")},
                    "seconds": r.get("seconds", float("nan")),
                }
            )
    return rows


def write_results_csv(rows: list[dict], path: Path) -> None:
    from runtime.io import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def best_per_variant(rows: list[dict]) -> list[dict]:
    """Per variant: best epoch (by mAP), its Dice and mAP, and the total seconds."""
    best: dict[str, dict] = {}
    for row in rows:
        entry = best.setdefault(row["variant"], {**row, "seconds": 0.0})
        entry["seconds"] += row["seconds"]
        if row["map"] > entry["map"]:
            entry.update({k: row[k] for k in ("epoch", "dice", "map")})
    return list(best.values())


def summary_table(rows: list[dict]) -> str:
    lines = [f"{'variant':<32} {'weights':<9} {'best ep':>7} {'dice':>7} {'map':>7} {'seconds':>8}"]
    for b in best_per_variant(rows):
        lines.append(
            f"{b['variant']:<32} {b['weights']:<9} {b['epoch']:>7d} {b['dice']:>7.4f} "
            f"{b['map']:>7.4f} {b['seconds']:>8.1f}"
        )
    return "\n".join(lines)


def plot_study(rows: list[dict], out_png: Path) -> Path:
    """Val Dice per epoch per variant, and each variant's best mAP as a bar."""
    import matplotlib

    from trainer.figures import new_figure, save_figure

    fig = new_figure(11, 4)
    left, right = fig.subplots(1, 2)
    names = list(dict.fromkeys(r["variant"] for r in rows))
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    for i, name in enumerate(names):
        mine = [r for r in rows if r["variant"] == name]
        epochs, dice = [r["epoch"] for r in mine], [r["dice"] for r in mine]
        left.plot(epochs, dice, marker=".", label=name, color=colours(i % colours.N))
    left.set(title="validation Dice", xlabel="epoch")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    best = best_per_variant(rows)
    values = [b["map"] for b in best]
    bars = right.bar([b["variant"] for b in best], values)
    right.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=7)
    finite = [v for v in values if v == v]
    if finite:  # zoom in: the variants often differ in the second decimal
        right.set_ylim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.02))
    right.set(title="best mAP")
    right.tick_params(axis="x", labelsize=7)
    for label in right.get_xticklabels():
        label.set(rotation=30, ha="right")
    fig.tight_layout()
    return save_figure(fig, out_png)
