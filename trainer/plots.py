"""Training curves from one or more runs' `metrics.csv` (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runtime.errors import NotFoundError
from trainer.figures import new_figure, save_figure
from trainer.runlog import read_metrics_csv

PANELS = (
    ("loss", ("train_loss", "val_loss")),
    ("Dice / IoU", ("dice", "iou")),
    ("accuracy / mAP", ("acc", "map")),
    ("learning rate", ("lr",)),
)


def plot_curves(runs: Sequence[Path | tuple[str, list[dict]]], out_png: Path) -> Path:
    """Plot loss, Dice/IoU, accuracy/mAP and lr per epoch; several runs share the axes.

    Each run is a folder (or metrics.csv path) or a `(label, rows)` pair.
    """
    series = [_load(run) for run in runs]
    fig = new_figure(4.2 * len(PANELS), 3.4)
    axes = fig.subplots(1, len(PANELS))
    for ax, (title, columns) in zip(axes, PANELS, strict=True):
        for label, rows in series:
            epochs = [r["epoch"] for r in rows]
            for column in columns:
                name = column if len(series) == 1 else f"{label} {column}"
                ax.plot(epochs, [r.get(column, float("nan")) for r in rows], marker=".", label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if title == "learning rate":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_png)


def _load(run: Path | tuple[str, list[dict]]) -> tuple[str, list[dict]]:
    if isinstance(run, tuple):
        return run
    path = Path(run)
    csv_path = path / "metrics.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise NotFoundError(csv_path, "no metrics.csv")
    return (csv_path.parent.name, read_metrics_csv(csv_path))
