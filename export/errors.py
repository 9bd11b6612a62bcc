"""The error every export step raises for bad input: it names the file or option at fault."""

from __future__ import annotations

from runtime.errors import SegkitError


class ExportError(SegkitError, ValueError):
    """An export, build or check cannot go on; `str()` is `<file or option>: <problem>`."""
