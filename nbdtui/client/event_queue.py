"""The events a stream's receiver (called by the transport) hands to the one task that
waits for them, and the first failure, which ends the queue once it is drained."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from typing import Generic, TypeVar

_E = TypeVar("_E", bound=BaseException)


class EventQueue(Generic[_E]):
    """Events in order; :meth:`next` returns the oldest, waiting for one, and raises the
    failure (the first one given to :meth:`fail`) once no event is left."""

    def __init__(self) -> None:
        self._events: collections.deque[object] = collections.deque()
        self.error: _E | None = None
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._events)

    def extend(self, events: Iterable[object]) -> None:
        self._events.extend(events)
        if self._events:
            self._wake()

    def fail(self, exc: _E) -> None:
        """End the queue with ``exc`` (a later failure is ignored)."""
        if self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> object:
        while True:
            if self._events:
                return self._events.popleft()
            if self.error is not None:
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
