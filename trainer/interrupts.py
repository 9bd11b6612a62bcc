"""Ctrl-C that cannot be lost.

Python ignores an exception raised inside a finalizer or weakref callback (it only prints
"Exception ignored in ..."), so a SIGINT that arrives while, say, matplotlib's weakref
callbacks run would be dropped and training would go on. `SigintLatch` raises
KeyboardInterrupt as usual and also remembers the signal; `check()` at safe points raises it
again if it was swallowed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class SigintLatch:
    """Between `install()` and `restore()`, SIGINT raises KeyboardInterrupt and sets `caught`.

    It only replaces Python's default SIGINT handler, and only in the main thread; any other
    handler (set by the application or a launcher) is left alone.
    """

    def __init__(self) -> None:
        self.caught = False
        self._installed = False
        self._deferring = False

    def install(self) -> None:
        in_main = threading.current_thread() is threading.main_thread()
        if in_main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False

    def _handle(self, signum, frame) -> None:
        self.caught = True
        if not self._deferring:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a SIGINT does not cut short (an epoch's log row and checkpoints are
        written together); the KeyboardInterrupt comes when it ends."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        self.check()

    def check(self) -> None:
        """Raise KeyboardInterrupt if a SIGINT arrived, even one an ignored exception ate."""
        if self.caught:
            raise KeyboardInterrupt
