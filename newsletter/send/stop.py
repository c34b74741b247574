"""Stopping a send on request: SIGTERM or Ctrl-C lets the batches in flight finish, a second one stops at once.

A `Stop` is shared by whoever sends in this process (the `send` command, the scheduler's jobs,
`serve`'s background sends). The first request asks senders to wind down: hand over nothing
more, record what the transport already answered, give back what was claimed and not handed
over. The second asks them to stop at once, leaving what is in flight to the claim lease.
A signal that comes while nothing is sending interrupts as it always did (KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

# Exit code of a command stopped by a signal: 128 + the signal's number, as shells report it.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    def __init__(self) -> None:
        self.winding_down = threading.Event()
        self.at_once = threading.Event()
        self.signum: int | None = None
        self._active = 0
        self._lock = threading.Lock()

    def request(self, signum: int | None = None) -> None:
        """First call: wind down; any later one: stop at once."""
        if self.winding_down.is_set():
            self.at_once.set()
            return
        self.signum = signum
        self.winding_down.set()

    @property
    def requested(self) -> bool:
        return self.winding_down.is_set()

    @property
    def reason(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}" if self.signum else "stopped on request"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum else 1

    @contextmanager
    def sending(self) -> Iterator[None]:
        """Mark the block as a send in progress: a signal then winds it down instead of interrupting."""
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def _on_signal(self, signum: int, _frame: object) -> None:
        with self._lock:
            idle = self._active == 0
        if idle and not self.requested:
            raise KeyboardInterrupt
        self.request(signum)

    @contextmanager
    def on_signals(self) -> Iterator["Stop"]:
        """Route SIGINT and SIGTERM here for the block (main thread only), then restore."""
        previous = {s: signal.signal(s, self._on_signal) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
