"""Surviving a bad network and a bad server: request timeouts, reconnecting, replay.

The :class:`Recovery` an :class:`~nbdtui.client.group.ExportGroup` holds:

* a request whose connection is lost before its reply arrives is *sent again* on a new
  connection when the group reconnects (NBD reads, writes, zeroes, trims and flushes are
  idempotent, so a write whose fate is unknown is simply written again): the group asks
  :meth:`Recovery.may_replay`. When the group gives up, the request fails with
  :class:`~nbdtui.errors.ConnectionLostError`. Nothing is dropped silently: every request
  ends with its reply or with an error. Errors a server reports for one request
  (:class:`~nbdtui.errors.RequestError`) and protocol violations
  (:class:`~nbdtui.errors.ProtocolError`) are never replayed.
* :class:`Watchdog` remembers when each request in flight was sent, gives the age of the
  oldest one per connection (the pool screen shows a *stalled* connection), and with a
  per-request timeout fails a request that waits too long with
  :class:`~nbdtui.errors.RequestTimeoutError`; its connection is then closed
  (:meth:`Recovery.abort_connection`: a timed-out request's cookie is never reused on the
  same stream) and a new one opened; the other requests that were in flight on it fail
  with :class:`ClosedByClient` and are sent again.
* when every connection is lost, the group reconnects with backoff (:class:`Backoff`,
  0.1 s doubling to 2 s) for up to ``reconnect_delay`` seconds, checks the export did not
  change in a way that matters (:func:`check_compatible`), and otherwise gives up: every
  waiting request, and every later one, fails with ConnectionLostError ("gave up
  reconnecting after N s");
* changes acknowledged on a connection that is then lost are counted: the next flush
  reports them (a server that crashed may have lost them; nothing can vouch for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from nbdtui.client.connection import Connection
from nbdtui.client.messages import describe
from nbdtui.client.request import PendingRequest, consume
from nbdtui.errors import (
    ClosedByClient,
    ConnectionLostError,
    ExportChangedError,
    NbdError,
    RequestTimeoutError,
)
from nbdtui.proto.client_events import Negotiated
from nbdtui.proto.constants import BASE_ALLOCATION, DEFAULT_BLOCK_MAX, Command
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.uri import Endpoint

log = logging.getLogger("nbdtui.client.recovery")

BACKOFF_START = 0.1
BACKOFF_MAX = 2.0
# A request in flight for longer than this shows its connection as stalled.
STALL_SECONDS = 3.0
# A reconnect attempt near the end of reconnect_delay still gets this long to connect.
MIN_ATTEMPT = 1.0
# A request is sent at most this many times: a server that dies on one request every
# time it gets it must not be fed it forever.
MAX_SENDS = 5

# Commands whose success changes the export (counted until the next flush).
CHANGES = frozenset({int(Command.WRITE), int(Command.WRITE_ZEROES), int(Command.TRIM)})

# Capabilities whose loss across a reconnect breaks what the export promised its users.
_CAPABILITIES = {
    TF.SEND_FLUSH: "flush",
    TF.SEND_FUA: "FUA",
    TF.SEND_TRIM: "trim",
    TF.SEND_WRITE_ZEROES: "write zeroes",
    TF.SEND_FAST_ZERO: "fast zero",
    TF.SEND_DF: "DF",
    TF.CAN_MULTI_CONN: "multi-conn",
    TF.SEND_CACHE: "cache",
}


class Backoff:
    """Delays between reconnect attempts: ``start`` doubling up to ``maximum``."""

    def __init__(self, start: float = BACKOFF_START, maximum: float = BACKOFF_MAX) -> None:
        self.start = start
        self.maximum = maximum
        self._next = start

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.start


def check_compatible(before: Negotiated, after: Negotiated, where: str) -> None:
    """Raise :class:`ExportChangedError` when the export a reconnect reached is not one
    the open :class:`~nbdtui.client.export.Export` can keep using. A bigger size is fine
    (the export keeps its size); anything it relied on must still be there."""
    old, new = before.info, after.info
    name = repr(old.name or "")
    problems = []
    if new.size < old.size:
        problems.append(f"its size shrank from {old.size} to {new.size} bytes")
    if new.read_only and not old.read_only:
        problems.append("it became read-only")
    lost = [w for flag, w in _CAPABILITIES.items() if old.flags & flag and not new.flags & flag]
    if lost:
        problems.append(f"it no longer supports {', '.join(lost)}")
    if (new.block_minimum or 1) > (old.block_minimum or 1):
        problems.append(
            f"its minimum block size grew from {old.block_minimum or 1} to {new.block_minimum}"
        )
    old_max = old.block_maximum or DEFAULT_BLOCK_MAX
    new_max = new.block_maximum or DEFAULT_BLOCK_MAX
    if new_max < old_max:
        problems.append(f"its maximum payload shrank from {old_max} to {new_max} bytes")
    had_allocation = before.context_id(BASE_ALLOCATION) is not None
    if before.structured and not after.structured:
        problems.append("it no longer offers structured replies")
    elif had_allocation and after.context_id(BASE_ALLOCATION) is None:
        problems.append(f"it no longer offers {BASE_ALLOCATION}")
    if problems:
        raise ExportChangedError(
            f"export {name} on {where} changed while nbdtui was reconnecting: "
            f"{'; '.join(problems)}; nbdtui stopped using it (open it again)"
        )


class Watchdog:
    """Ages of the requests in flight; see the module documentation.

    Each request carries the time it was sent (``PendingRequest.sent_at``) and each
    connection keeps its requests in the order they were sent, so the oldest request
    of a connection is the first one still waited for: nothing is recorded per request
    here (a done callback per request cost a loop callback on the hot path).

    ``connections()`` gives the connections to watch; ``on_expired(connection, pending,
    age)`` is called for the oldest request of a connection once it is older than
    ``timeout`` (``None``: no limit) and must settle the request's future.
    """

    def __init__(
        self,
        on_expired: Callable[[Connection, PendingRequest, float], None],
        connections: Callable[[], Iterable[Connection]],
    ) -> None:
        self._timeout: float | None = None
        self._on_expired = on_expired
        self._connections = connections
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        if value is not None and value <= 0:
            raise ValueError("timeout must be greater than 0")
        self._timeout = value
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if value is not None:
            self._arm_for_oldest()

    def track(self, pending: PendingRequest) -> None:
        """``pending`` was just sent: make sure a timer runs while a timeout is set."""
        if self._timeout is not None and self._timer is None:
            self._arm(pending.sent_at)

    def _arm(self, sent_at: float) -> None:
        assert self._timeout is not None
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._timer = loop.call_at(sent_at + self._timeout, self._check)

    def _check(self) -> None:
        self._timer = None
        timeout = self._timeout
        if timeout is None or self._loop is None:
            return
        now = self._loop.time()
        expired = []
        for conn in list(self._connections()):
            pending = _oldest(conn)
            if pending is not None and now - pending.sent_at >= timeout - 1e-3:
                expired.append((conn, pending, now - pending.sent_at))
        for conn, pending, age in expired:
            if not pending.future.done():
                self._on_expired(conn, pending, age)
        if self._timer is None:  # (requests sent meanwhile armed it already)
            self._arm_for_oldest()

    def _arm_for_oldest(self) -> None:
        """Arm the timer for the oldest request in flight on any connection, if any."""
        sent = [p.sent_at for p in map(_oldest, self._connections()) if p is not None]
        if sent:
            self._arm(min(sent))

    def oldest(self, conn: Connection) -> float:
        """Seconds the oldest request in flight on ``conn`` has waited (0 when none)."""
        pending = _oldest(conn)
        if pending is None:
            return 0.0
        return max(pending.future.get_loop().time() - pending.sent_at, 0.0)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _oldest(conn: Connection) -> PendingRequest | None:
    """The oldest request in flight on ``conn`` whose caller still waits for it."""
    for pending in conn.pending_requests():
        if not pending.future.done():
            return pending
    return None


class Members(Protocol):
    """What :class:`Recovery` uses of the group that holds it."""

    @property
    def endpoint(self) -> Endpoint: ...

    @property
    def connections(self) -> list[Connection]: ...

    @property
    def negotiated(self) -> Negotiated | None: ...

    @property
    def connect_timeout(self) -> float | None: ...

    @property
    def closed(self) -> bool: ...

    def least_loaded(self) -> Connection | None: ...

    async def connect(self, connect_timeout: float | None = None) -> Connection: ...

    def forget(self, conn: Connection) -> None:
        """Take a dead (or dying) connection out of the group."""

    def adopt(self, conn: Connection) -> None:
        """A reconnect opened ``conn``: it replaces the dead connections."""


class Recovery:
    """Timeouts, reconnecting and the replay policy of one group; see the module
    documentation."""

    def __init__(
        self, group: Members, *, timeout: float | None = None, reconnect_delay: float = 0.0
    ) -> None:
        if reconnect_delay < 0:
            raise ValueError("reconnect_delay must not be negative")
        self._group = group
        self.reconnect_delay = reconnect_delay
        self.watchdog = Watchdog(self._expired, lambda: group.connections)
        self.watchdog.timeout = timeout
        self.reconnects = 0  # successful reconnections
        self.last_error: NbdError | None = None  # why the last connection was lost
        self.gave_up: NbdError | None = None
        self.waiting = 0  # requests waiting for the reconnect
        self.trouble_since: float | None = None  # loop time the reconnect started
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff()
        self._reopen = False  # nbdtui closed a connection itself: reopen it
        # changes acknowledged per connection since the last flush; those acknowledged
        # on a connection that was then lost may have been lost with a crashed server
        self._unflushed: dict[Connection, int] = {}
        self._unflushed_lost = 0

    @property
    def timeout(self) -> float | None:
        """Seconds a request may wait for its reply (``None``: no limit)."""
        return self.watchdog.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.watchdog.timeout = value

    @property
    def reconnecting(self) -> asyncio.Task[None] | None:
        """The reconnect under way, if any."""
        return self._task

    # ---- the replay policy (asked by the senders) -------------------------------------

    def may_replay(self, exc: BaseException) -> bool:
        """Whether a request that failed with ``exc`` is sent again (its connection was
        lost and the group reopens one)."""
        return (
            isinstance(exc, ConnectionLostError)
            and not isinstance(exc, ExportChangedError)
            and not self._group.closed
            and self.gave_up is None
            and (self.reconnect_delay > 0 or isinstance(exc, ClosedByClient))
        )

    def gave_up_on(
        self, exc: ConnectionLostError, command: int, offset: int, length: int
    ) -> NbdError:
        """The error of a request sent :data:`MAX_SENDS` times, each time lost."""
        return ConnectionLostError(
            f"{describe(command, offset, length)} was sent {MAX_SENDS} times and each time "
            f"the connection was lost before the reply; giving up on it ({exc})"
        )

    def succeeded(self, conn: Connection, command: int, count: int = 1) -> None:
        """``count`` requests got a successful reply (called by the senders)."""
        if command in CHANGES:
            self._unflushed[conn] = self._unflushed.get(conn, 0) + count

    def dead_error(self) -> NbdError:
        """Why no connection is usable."""
        for conn in self._group.connections:
            if conn.error is not None:
                return conn.error
        if self.last_error is not None:
            return self.last_error
        return ConnectionLostError(f"connection to {self._group.endpoint.display} is closed")

    async def wait_reconnected(self) -> None:
        """No connection is usable: wait for the reconnect (started here if the group
        reconnects), or raise why there is none."""
        if self.gave_up is not None:
            raise self.gave_up
        task = self._task
        if task is None:
            if not self._reopen and self.reconnect_delay <= 0:
                raise self.dead_error()
            task = self.start_reconnect()
        self.waiting += 1
        try:
            await asyncio.wait([task])
        finally:
            self.waiting -= 1
        if task.cancelled():
            raise ConnectionLostError(f"connection to {self._group.endpoint.display} is closed")
        exc = task.exception()
        if exc is not None:
            raise exc

    # ---- timeouts, cancelling, reconnecting -------------------------------------------

    def _expired(self, conn: Connection, pending: PendingRequest, age: float) -> None:
        """The watchdog found a request older than the timeout: fail it, then close its
        connection (the others in flight on it are sent again on a new one)."""
        what = describe(pending.command, pending.offset, pending.length)
        timeout = self.watchdog.timeout or age
        error = RequestTimeoutError(
            f"{what} timed out after {timeout:g} s (server {self._group.endpoint.display})"
        )
        log.debug("%s", error)
        pending.dest = None  # never touch the caller's buffer again
        pending.future.set_exception(error)
        pending.future.add_done_callback(consume)
        self.abort_connection(conn, f"a {what} timed out after {timeout:g} s")

    def abort_connection(self, conn: Connection, reason: str) -> None:
        """Close ``conn`` at once; the requests in flight on it are sent again on another
        connection, reopened now if none is left."""
        group = self._group
        if conn not in group.connections:
            return
        where = group.endpoint.display
        error = ClosedByClient(f"connection to {where} closed by nbdtui: {reason}")
        log.debug("closing a connection to %s: %s", where, reason)
        self.last_error = error
        conn.abort(error)
        group.forget(conn)
        if group.closed:
            return
        self._reopen = True
        if group.least_loaded() is None and self._task is None:
            self.start_reconnect()

    def revive(self) -> None:
        """Try again to reconnect after the group gave up (or a connection died)."""
        group = self._group
        if group.closed or self._task is not None or group.least_loaded() is not None:
            return
        self.gave_up = None
        self.trouble_since = None
        self._reopen = True
        self.start_reconnect()

    def settle(self, conn: Connection) -> None:
        """Count the changes acknowledged on a lost connection and not yet flushed."""
        n = self._unflushed.pop(conn, 0)
        if n and not isinstance(conn.error, ClosedByClient):
            self._unflushed_lost += n

    def start_reconnect(self) -> asyncio.Task[None]:
        group = self._group
        loop = asyncio.get_running_loop()
        for conn in [c for c in group.connections if not c.usable]:
            if conn.error is not None:
                self.last_error = conn.error
            group.forget(conn)
        if self.trouble_since is None:
            self.trouble_since = loop.time()
            self._backoff.reset()
        log.debug(
            "reconnecting to %s (for up to %g s) after: %s",
            group.endpoint.display,
            self.reconnect_delay,
            self.last_error,
        )
        task = loop.create_task(self._reconnect())
        task.add_done_callback(consume)
        self._task = task
        return task

    async def _reconnect(self) -> None:
        group = self._group
        loop = asyncio.get_running_loop()
        reopen_only = self.reconnect_delay <= 0
        reason = self.last_error
        self._reopen = False
        negotiated = group.negotiated
        assert self.trouble_since is not None and negotiated is not None
        deadline = self.trouble_since + self.reconnect_delay
        where = group.endpoint.display
        last: NbdError | None = None
        try:
            while True:
                limit = group.connect_timeout
                remaining = deadline - loop.time()
                if remaining > 0:
                    attempt = max(remaining, MIN_ATTEMPT)
                    limit = attempt if limit is None else min(limit, attempt)
                try:
                    conn = await group.connect(connect_timeout=limit)
                except NbdError as exc:
                    log.debug("reconnect attempt to %s failed: %s", where, exc)
                    last = exc
                else:
                    if group.closed:
                        await conn.close()
                        raise ConnectionLostError(f"connection to {where} is closed")
                    try:
                        check_compatible(negotiated, conn.negotiated, where)
                    except ExportChangedError as exc:
                        log.debug("%s", exc)
                        await conn.close()
                        self.gave_up = exc
                        raise
                    group.adopt(conn)
                    self.trouble_since = None
                    self.reconnects += 1
                    log.debug("reconnected to %s; requests in flight are sent again", where)
                    return
                remaining = deadline - loop.time()
                if reopen_only or remaining <= 0:
                    break
                await asyncio.sleep(min(self._backoff.next(), remaining))
            if reopen_only:
                why = f" ({reason})" if reason is not None else ""
                error: NbdError = ConnectionLostError(
                    f"connection to {where} could not be reopened{why}: {last}"
                )
            else:
                error = ConnectionLostError(
                    f"connection to {where} lost; gave up reconnecting after "
                    f"{self.reconnect_delay:g} s (last attempt: {last})"
                )
            log.debug("%s", error)
            self.gave_up = error
            raise error
        finally:
            self._task = None

    async def close(self) -> None:
        self.watchdog.close()
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):  # its outcome was consumed already
                await task

    # ---- flush accounting -------------------------------------------------------------

    def flush_started(self) -> dict[Connection, int]:
        """Before a flush: the changes it will cover."""
        for conn in self._group.connections:
            if not conn.usable:
                self.settle(conn)
        return dict(self._unflushed)

    def flush_done(self, covered: dict[Connection, int]) -> None:
        """After a successful flush; raises ConnectionLostError when changes were
        acknowledged on a connection that was lost before they were flushed (a crashed
        server may have lost them: nothing can vouch for them)."""
        self.flush_started()
        for conn, n in covered.items():
            left = self._unflushed.get(conn, 0) - n
            if left > 0:
                self._unflushed[conn] = left
            else:
                self._unflushed.pop(conn, None)
        lost, self._unflushed_lost = self._unflushed_lost, 0
        if lost:
            raise ConnectionLostError(
                f"{lost} write{'s' if lost != 1 else ''} acknowledged before the connection "
                f"to {self._group.endpoint.display} was lost may not have reached stable "
                "storage (the server may have restarted): write again, then flush"
            )
