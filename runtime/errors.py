"""The one error base of segkit, and the exit codes its command-line tools use.

Every error the project raises for something a user can fix is a `SegkitError(subject,
problem)`: `subject` names the file, option, image or request at fault, `problem` says what
is wrong, and `str(err)` is `<subject>: <problem>`. Each class also derives from the builtin
it stands for (`ValueError` for bad values, `RuntimeError` for a failed run), so code that
catches the builtin keeps working, and carries the exit code a CLI ends with (`exit_code`).

The classes defined here: `ModelError` covers the model file and what this machine can run
(backend, device, missing packages); `InputError` an image or array given to `predict`;
`DataError` a file of training or evaluation data; `ImageError` an image file (both an input
and a data error); `ArgumentError` any other bad argument or option. The trainer and the
exporter define theirs on the same base (`CheckpointError`, `ExportError`, ...). This module
imports nothing beyond the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1  # the work itself failed: a tolerance missed, training diverged, a full disk
EXIT_BAD_INPUT = 2  # bad arguments, files or data: nothing was done
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class SegkitError(Exception):
    """Base of every segkit error: `subject` is what is at fault, `problem` says why."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT

    def __init__(self, subject: str | os.PathLike, problem: str):
        self.subject = os.fspath(subject) if isinstance(subject, os.PathLike) else str(subject)
        self.problem = str(problem)
        super().__init__(f"{self.subject}: {self.problem}")

    @property
    def path(self) -> Path:
        """The subject as a path (for errors about a file)."""
        return Path(self.subject)

    def __reduce__(self):  # picklable across processes (DataLoader workers, Ray replicas)
        return (type(self), (self.subject, self.problem))


SegmenterError = SegkitError  # the runtime's former base class name


class ModelError(SegkitError, ValueError):
    """The model file cannot be opened or run here (bad file, backend or device)."""


class ArgumentError(SegkitError, ValueError):
    """An argument or option (backend name, device, batch size, threshold, ...) is invalid."""


class InputError(SegkitError, ValueError):
    """An image or array passed for prediction cannot be used."""


class NotFoundError(SegkitError, FileNotFoundError):
    """A file or folder that the command needs is not there."""


class DataError(SegkitError, ValueError):
    """A file of data (image, annotation, mask, dataset folder) cannot be used; names the file."""


class ImageError(InputError, DataError):
    """An image file is missing, unreadable or cannot be decoded; `path` is the file."""


class ImageTooLarge(ImageError):
    """An image has more pixels than the limit (`max_pixels`); refused before decoding."""


class BackendFallbackWarning(RuntimeWarning):
    """A session runs on fewer execution providers than were asked for (e.g. CPU, not CUDA)."""


def os_error_message(err: OSError, full_disk_hint: str = "free some space and run it again") -> str:
    """`<file>: <problem>` for an OSError; a full disk says that earlier files are intact."""
    import errno

    where = f"{err.filename}: " if err.filename else ""
    problem = (err.strerror or str(err)).lower() if err.errno else str(err)
    if err.errno == errno.ENOSPC:
        problem += f" (files written before are intact; {full_disk_hint})"
    return where + problem
