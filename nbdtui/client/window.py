"""The request window of a connection: at most ``size`` requests in flight.

Unlike ``asyncio.Semaphore``, a slot is released by whoever completes the request (the
receive path), not by the task that acquired it: a request whose caller was cancelled
keeps its slot until the server has answered it. The size can change at any time, and
:meth:`RequestWindow.fail` wakes every waiting task with an error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from nbdtui.client.request import consume


class RequestWindow:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window must be at least 1")
        self._size = size
        self.used = 0  # slots held: requests in flight + slots granted, not yet used
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def size(self) -> int:
        return self._size

    @size.setter
    def size(self, value: int) -> None:
        if value < 1:
            raise ValueError("window must be at least 1")
        self._size = value
        while self.used < self._size and self._grant_one():
            self.used += 1

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a free slot without waiting; False when the window is full (or tasks
        already wait for a slot: they come first)."""
        if self.used < self._size and not self._waiters:
            self.used += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting in FIFO order when the window is full."""
        if self.used < self._size and not self._waiters:
            self.used += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # on success the slot was handed over: ``used`` counts it
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # granted, then cancelled before running: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back (to the first waiter, if any)."""
        if not (self._waiters and self._grant_one()):
            self.used -= 1

    def _grant_one(self) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False

    def fail(self, exc: BaseException) -> None:
        """Every task waiting for a slot raises ``exc``."""
        waiters, self._waiters = self._waiters, collections.deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.add_done_callback(consume)
