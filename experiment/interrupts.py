"""Ctrl-C during training stops at the next chunk boundary, so the saved state matches the saved metrics.

A chunk is dispatched asynchronously: by the time the host waits for its
metrics, the runner already holds the chunk's output state. A ``KeyboardInterrupt``
raised inside that wait would leave the runner with the state after the chunk
but the update count before it, and a checkpoint written then would be
mislabelled. :class:`DeferredInterrupt` turns the first SIGINT into a request
that the training loop honours once the chunk in flight is recorded; a second
SIGINT raises at once, for a user who will not wait.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class DeferredInterrupt:
    """Context manager: while active, the first SIGINT sets :attr:`requested`; a second raises ``KeyboardInterrupt``.

    It changes nothing outside the main thread or when SIGINT is not Python's
    default handler (an application that installed its own keeps it).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            if self._previous is signal.default_int_handler:
                signal.signal(signal.SIGINT, self._handle)
                self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
