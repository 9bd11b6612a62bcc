"""Errors the runtime raises for bad input: each names the file, image or argument at fault.

`str(err)` is `<subject>: <problem>`. `ModelError` covers the model file and what this machine
can run (backend, device, missing packages); `InputError` an image or array given to
`predict`; `ArgumentError` any other bad argument.
"""

from __future__ import annotations

import os
from pathlib import Path


class SegmenterError(ValueError):
    """Base of the runtime's errors; `subject` names what is at fault, `problem` says why."""

    def __init__(self, subject: str | os.PathLike, problem: str):
        self.subject = os.fspath(subject)
        self.problem = problem
        super().__init__(f"{self.subject}: {problem}")


class ModelError(SegmenterError):
    """The model file cannot be opened or run here (bad file, backend or device)."""


class ArgumentError(SegmenterError):
    """An argument (backend name, device, batch size, threshold, ...) is invalid."""


class InputError(SegmenterError):
    """An image or array passed for prediction cannot be used."""


class ImageError(InputError):
    """An image file is missing, unreadable or cannot be decoded; `path` is the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        super().__init__(self.path, problem)


class BackendFallbackWarning(RuntimeWarning):
    """A session runs on fewer execution providers than were asked for (e.g. CPU, not CUDA)."""
