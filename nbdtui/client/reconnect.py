"""Reconnecting an export's connections: timeouts, cancels, backoff, replay policy.

:class:`GroupRecovery` is the part of :class:`~nbdtui.client.pool.ExportGroup` that
deals with lost connections (see :mod:`nbdtui.client.resilience` for the senders that
replay requests, the watchdog and the compatibility check):

* a request the watchdog finds older than the timeout fails with RequestTimeoutError
  and its connection is closed (:meth:`GroupRecovery.abort_connection`); the requests in
  flight on it fail with :class:`~nbdtui.client.resilience.ClosedByClient` and are sent
  again on a new connection, reopened at once when none is left;
* when every connection is lost, the group reconnects with backoff (0.1 s doubling to
  2 s) for up to ``reconnect_delay`` seconds, checks the export did not change in a way
  that matters, and otherwise gives up: every waiting request, and every later one,
  fails with ConnectionLostError ("gave up reconnecting after N s");
* changes acknowledged on a connection that is then lost are counted: the next flush
  reports them (a server that crashed may have lost them; nothing can vouch for them).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from nbdtui.client.connection import Connection
from nbdtui.client.requests import PendingRequest
from nbdtui.client.resilience import (
    _CHANGES,
    Backoff,
    Watchdog,
    check_compatible,
    describe,
)
from nbdtui.errors import (
    ClosedByClient,
    ConnectionLostError,
    ExportChangedError,
    NbdError,
    RequestTimeoutError,
)

if TYPE_CHECKING:  # pragma: no cover
    from nbdtui.proto.events import Negotiated
    from nbdtui.uri import Endpoint

# A reconnect attempt near the end of reconnect_delay still gets this long to connect.
MIN_ATTEMPT = 1.0


class GroupRecovery:
    """Mixed into ExportGroup, whose ``__init__`` sets these attributes."""

    endpoint: Endpoint
    connections: list[Connection]
    negotiated: Negotiated | None
    connect_timeout: float | None
    reconnect_delay: float
    reconnects: int
    last_error: NbdError | None
    watchdog: Watchdog
    _ids: dict[Connection, int]
    _closed: bool
    _reopen: bool
    _reconnecting: asyncio.Task[None] | None
    _trouble_since: float | None
    _backoff: Backoff
    _gave_up: NbdError | None
    _grow_error: NbdError | None
    _unflushed: dict[Connection, int]
    _unflushed_lost: int

    async def _connect(self, connect_timeout: float | None = None) -> Connection:
        raise NotImplementedError

    def _least_loaded(self) -> Connection | None:
        raise NotImplementedError

    # ---- the replay policy (asked by the senders) -------------------------------------

    def may_replay(self, exc: BaseException) -> bool:
        """Whether a request that failed with ``exc`` is sent again (its connection was
        lost and the group reopens one)."""
        return (
            isinstance(exc, ConnectionLostError)
            and not isinstance(exc, ExportChangedError)
            and not self._closed
            and self._gave_up is None
            and (self.reconnect_delay > 0 or isinstance(exc, ClosedByClient))
        )

    def succeeded(self, conn: Connection, command: int, count: int = 1) -> None:
        """``count`` requests got a successful reply (called by the senders)."""
        if command in _CHANGES:
            self._unflushed[conn] = self._unflushed.get(conn, 0) + count

    # ---- timeouts, cancelling, reconnecting -------------------------------------------

    def _expired(self, conn: Connection, pending: PendingRequest, age: float) -> None:
        """The watchdog found a request older than the timeout: fail it, then close its
        connection (the others in flight on it are sent again on a new one)."""
        what = describe(pending.command, pending.offset, pending.length)
        timeout = self.watchdog.timeout or age
        error = RequestTimeoutError(
            f"{what} timed out after {timeout:g} s (server {self.endpoint.display})"
        )
        pending.dest = None  # never touch the caller's buffer again
        pending.future.set_exception(error)
        pending.future.add_done_callback(_consume)
        self.abort_connection(conn, f"a {what} timed out after {timeout:g} s")

    def abort_connection(self, conn: Connection, reason: str) -> None:
        """Close ``conn`` at once; the requests in flight on it are sent again on another
        connection, reopened now if none is left."""
        if conn not in self.connections:
            return
        error = ClosedByClient(f"connection to {self.endpoint.display} closed by nbdtui: {reason}")
        self.last_error = error
        conn.abort(error)
        self._forget(conn)
        if self._closed:
            return
        self._reopen = True
        if self._least_loaded() is None and self._reconnecting is None:
            self._start_reconnect()

    def cancel(self, conn_id: int) -> bool:
        """The user's cancel of connection ``conn_id``: close and reopen it (a dead one
        is reopened, even after the group gave up). False when it is not in this group."""
        conn = next((c for c, ident in self._ids.items() if ident == conn_id), None)
        if conn is None or self._closed:
            return False
        if conn.usable:
            self.abort_connection(conn, "cancelled by the user")
        else:
            self.revive()
        return True

    def revive(self) -> None:
        """Try again to reconnect after the group gave up (or a connection died)."""
        if self._closed or self._reconnecting is not None or self._least_loaded() is not None:
            return
        self._gave_up = None
        self._trouble_since = None
        self._reopen = True
        self._start_reconnect()

    def _forget(self, conn: Connection) -> None:
        """Take a dead (or dying) connection out of the group."""
        if conn in self.connections:
            self.connections.remove(conn)
        self._settle(conn)
        self._ids.pop(conn, None)

    def _settle(self, conn: Connection) -> None:
        """Count the changes acknowledged on a lost connection and not yet flushed."""
        n = self._unflushed.pop(conn, 0)
        if n and not isinstance(conn.error, ClosedByClient):
            self._unflushed_lost += n

    def _start_reconnect(self) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        for conn in [c for c in self.connections if not c.usable]:
            if conn.error is not None:
                self.last_error = conn.error
            self._forget(conn)
        if self._trouble_since is None:
            self._trouble_since = loop.time()
            self._backoff.reset()
        task = loop.create_task(self._reconnect())
        task.add_done_callback(_consume)
        self._reconnecting = task
        return task

    async def _reconnect(self) -> None:
        loop = asyncio.get_running_loop()
        reopen_only = self.reconnect_delay <= 0
        reason = self.last_error
        self._reopen = False
        assert self._trouble_since is not None and self.negotiated is not None
        deadline = self._trouble_since + self.reconnect_delay
        last: NbdError | None = None
        try:
            while True:
                limit = self.connect_timeout
                remaining = deadline - loop.time()
                if remaining > 0:
                    attempt = max(remaining, MIN_ATTEMPT)
                    limit = attempt if limit is None else min(limit, attempt)
                try:
                    conn = await self._connect(connect_timeout=limit)
                except NbdError as exc:
                    last = exc
                else:
                    if self._closed:
                        await conn.close()
                        raise ConnectionLostError(
                            f"connection to {self.endpoint.display} is closed"
                        )
                    try:
                        check_compatible(self.negotiated, conn.negotiated, self.endpoint.display)
                    except ExportChangedError as exc:
                        await conn.close()
                        self._gave_up = exc
                        raise
                    self.connections = [c for c in self.connections if c.usable]
                    self.connections.append(conn)
                    self._grow_error = None
                    self._trouble_since = None
                    self.reconnects += 1
                    return
                remaining = deadline - loop.time()
                if reopen_only or remaining <= 0:
                    break
                await asyncio.sleep(min(self._backoff.next(), remaining))
            where = self.endpoint.display
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
            self._gave_up = error
            raise error
        finally:
            self._reconnecting = None

    # ---- flush accounting -------------------------------------------------------------

    def flush_started(self) -> dict[Connection, int]:
        """Before a flush: the changes it will cover."""
        for conn in self.connections:
            if not conn.usable:
                self._settle(conn)
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
                f"to {self.endpoint.display} was lost may not have reached stable storage "
                "(the server may have restarted): write again, then flush"
            )


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
