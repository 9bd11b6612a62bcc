"""Figures for the pictures and charts, without pyplot: importing this changes no global state.

Each picture builds its own `matplotlib.figure.Figure` (rendered by the Agg canvas when
saved), so a notebook's or an application's matplotlib backend is never switched.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from runtime.errors import ArgumentError
from runtime.io import atomic_open


def new_figure(width: float, height: float) -> Figure:
    """A figure of `width` x `height` inches, detached from pyplot."""
    return Figure(figsize=(width, height))


def save_figure(fig: Figure, out_png: str | Path, dpi: int = 100, tight_box: bool = False) -> Path:
    """Write the figure as PNG atomically (a crash never leaves half a file)."""
    if dpi <= 0:
        raise ArgumentError("--dpi", f"expected a positive number, got {dpi}")
    with atomic_open(out_png, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight" if tight_box else None)
    return Path(out_png)
