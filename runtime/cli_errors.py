"""The one error path of every segkit command line: `Error: <subject>: <problem>` and its code.

`segtrain`, `segexport`, `segpredict`, `segbench` and `segserve` are click groups or commands
of the classes below. A `SegkitError` raised anywhere inside a command prints one line on
stderr and exits with the error's own `exit_code`; an `OSError` (a full disk, an unwritable
folder) prints `<file>: <problem>` and exits with `EXIT_FAILED`. Tracebacks are kept for
real bugs only.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import click

from runtime.errors import EXIT_FAILED, SegkitError, os_error_message


def fail(message: str, code: int) -> None:
    """Print `Error: message` on stderr and exit with `code`."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


class _ReportsErrors:
    """Mixin for click commands: turns segkit errors and OSErrors into one line and an exit code."""

    full_disk_hint: ClassVar[str] = "free some space and run it again"

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except SegkitError as err:
            fail(str(err), err.exit_code)
        except OSError as err:
            fail(os_error_message(err, self.full_disk_hint), EXIT_FAILED)


class SegkitGroup(_ReportsErrors, click.Group):
    """A click group whose subcommands report errors through `_ReportsErrors`."""


class SegkitCommand(_ReportsErrors, click.Command):
    """A single click command that reports errors through `_ReportsErrors`."""


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}
