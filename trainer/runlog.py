"""The per-run `metrics.csv`: one row per completed epoch, rewritten atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from runtime.io import atomic_write_text

COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "acc",
    "dice",
    "iou",
    "map",
    "lr",
    "seconds",
    "images_per_s",
)


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats (`epoch` as int); a missing file gives []."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            parsed = {k: float(v) for k, v in row.items() if k in COLUMNS and v not in ("", None)}
            parsed["epoch"] = int(parsed["epoch"])
            rows.append(parsed)
    return rows


class MetricsLog:
    """Keeps the rows in memory and rewrites the whole file after each epoch."""

    def __init__(self, path: Path, rows: list[dict[str, float]] | None = None):
        self.path = Path(path)
        self.rows = list(rows or [])

    @classmethod
    def resume(cls, path: Path, last_epoch: int) -> MetricsLog:
        """The log of a resumed run: rows after the checkpoint's epoch are dropped."""
        return cls(path, [r for r in read_metrics_csv(path) if r["epoch"] <= last_epoch])

    def append(self, row: dict[str, float]) -> None:
        self.rows.append({k: row[k] for k in COLUMNS})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(r[k]) for k in COLUMNS})
        atomic_write_text(self.path, buffer.getvalue())


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"
