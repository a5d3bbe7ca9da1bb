"""The calls a streamed transfer makes to the bulk engine (or the export), many in flight.

:class:`Calls` keeps them: it waits for room before each new call, advances the progress
bar as each ends, and ends the transfer at the first failure. How much one call covers
is :class:`CallSize`'s to say. Each call the engine finishes wakes the event loop, and
with transfer threads that wake-up costs them a turn of the GIL each: over TLS, 4 MiB
calls (256 per GiB) left `nbdtui read` about 7 % slower than 64 MiB calls
(bench/bench_tls.py). Small calls keep a slow transfer's progress bar moving, large ones
let a fast one run; so a call covers what the transfer moves in about :data:`EVERY`
seconds at the speed seen so far: a whole number of ``unit`` pieces (the granularity at
which zero ranges are skipped and buffers are sized), between one and ``most``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from nbdtui.cli.progress import ProgressBar

EVERY = 1 / 16  # seconds of transfer per call: the bar moves some 16 times a second


class CallSize:
    """The size of the next call, from the bytes done so far and the time since this
    was made."""

    def __init__(self, unit: int, most: int, *, clock: Callable[[], float] = time.monotonic):
        self.unit = unit
        self.most = max(unit, most - most % unit)
        self._clock = clock
        self._start = clock()

    def next(self, done: int) -> int:
        """The most the next call should cover (a multiple of ``unit``), ``done`` bytes
        having arrived so far."""
        elapsed = self._clock() - self._start
        if elapsed <= 0 or done <= 0 or self.most == self.unit:
            return self.unit
        want = int(done / elapsed * EVERY)
        return max(self.unit, min(self.most, want - want % self.unit))


class Calls:
    """Calls in flight, each with the bytes it covers: at most ``in_flight`` of them and
    ``bytes_in_flight`` bytes (beyond one call) at once."""

    def __init__(
        self,
        bar: ProgressBar,
        *,
        unit: int,
        most: int,
        in_flight: int,
        bytes_in_flight: int | None = None,
    ) -> None:
        self._bar = bar
        self._sizes = CallSize(unit, most)
        self._in_flight = in_flight
        self._bytes_in_flight = bytes_in_flight
        self._pending: dict[asyncio.Future[None], int] = {}
        self._asked = 0

    def size(self) -> int:
        """How much the next call should cover at most (see :class:`CallSize`)."""
        return self._sizes.next(self._asked - sum(self._pending.values()))

    async def add(self, n: int, call: Callable[[], Awaitable[None]]) -> None:
        """Start ``call()`` (covering ``n`` bytes) once there is room for it."""
        pending, most = self._pending, self._bytes_in_flight
        while pending and (
            len(pending) >= self._in_flight
            or (most is not None and sum(pending.values()) + n > most)
        ):
            await reap(pending, self._bar)
        pending[asyncio.ensure_future(call())] = n
        self._asked += n

    async def finish(self) -> None:
        """Wait for every call (the first failure raised)."""
        while self._pending:
            await reap(self._pending, self._bar)

    async def cancel(self) -> None:
        """Cancel the calls still in flight and wait for them to end (after a failure,
        or when the transfer is given up)."""
        pending = self._pending
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        pending.clear()


async def reap(pending: dict[asyncio.Future[None], int], bar: ProgressBar) -> None:
    """Wait for one or more of ``pending`` (each with its length in bytes) to end and
    advance ``bar`` by theirs; the first failure ends the transfer (raised here, the
    others' retrieved)."""
    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    errors = [(task.exception(), pending.pop(task)) for task in done]
    for error, n in errors:
        if error is not None:
            raise error
        bar.advance(n)
