"""The error every export step raises for bad input: it names the file or option at fault."""

from __future__ import annotations

import os


class ExportError(ValueError):
    """An export, build or check cannot go on; `str()` is `<file or option>: <problem>`."""

    def __init__(self, subject: str | os.PathLike, problem: str):
        self.subject = os.fspath(subject)
        self.problem = problem
        super().__init__(f"{self.subject}: {problem}")
