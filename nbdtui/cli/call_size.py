"""How much of a streamed transfer to hand the bulk engine per call.

Each call the engine finishes wakes the event loop, and on threads that wake-up costs
the transfer threads a turn of the GIL each: over TLS, 4 MiB calls (256 per GiB) left
the transfer about 6 % slower than 64 MiB calls (bench/bench_tls.py). Small calls keep
a slow transfer's progress bar moving, large ones let a fast one run. So a call is sized
to what the transfer moves in about :data:`EVERY` seconds at the speed seen so far: a
whole number of ``unit`` pieces (the granularity at which zero ranges are skipped),
between one of them and ``largest``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

EVERY = 1 / 16  # seconds of transfer per call: the bar moves some 16 times a second


class CallSize:
    """The size of the next call, from the bytes done so far and the time since this
    was made."""

    def __init__(
        self, unit: int, largest: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.unit = unit
        self.largest = max(unit, largest - largest % unit)
        self._clock = clock
        self._start = clock()

    def next(self, done: int) -> int:
        """The most the next call should cover (a multiple of ``unit``), ``done``
        bytes having arrived so far."""
        elapsed = self._clock() - self._start
        if elapsed <= 0 or done <= 0:
            return self.unit
        want = int(done / elapsed * EVERY)
        return max(self.unit, min(self.largest, want - want % self.unit))
