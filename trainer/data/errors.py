"""The data error raised for any unreadable or invalid sample."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A sample (image, annotation or mask) cannot be used; the message names the file."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
