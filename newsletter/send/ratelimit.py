"""A token bucket shared by every worker process: messages per second, with bursts."""

from __future__ import annotations

import time
from multiprocessing.context import BaseContext


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; state lives in shared memory so the
    limit holds for the whole send, however many worker processes share it."""

    def __init__(self, rate: float, burst: int, ctx: BaseContext) -> None:
        self.rate = rate
        self.burst = burst
        self._lock = ctx.Lock()
        # [tokens, last refill time]; CLOCK_MONOTONIC is the same clock in every process.
        self._state = ctx.RawArray("d", [float(burst), time.monotonic()])

    def take(self, n: int) -> None:
        """Wait until `n` tokens (or a full bucket, for n > burst) are there, and spend them."""
        need = min(n, self.burst)
        while True:
            with self._lock:
                now = time.monotonic()
                tokens = min(float(self.burst), self._state[0] + (now - self._state[1]) * self.rate)
                self._state[1] = now
                if tokens >= need:
                    self._state[0] = tokens - n
                    return
                self._state[0] = tokens
                wait = (need - tokens) / self.rate
            time.sleep(wait)
