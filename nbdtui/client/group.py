"""The connections of one export: :class:`ExportGroup`.

A group holds the connections to one export, shared by every
:class:`~nbdtui.client.export.Export` opened on it through the same
:class:`~nbdtui.client.pool.Pool`. The first connection opens with the first user; more
open lazily, in the background, when every connection's request window is full, up to
``max_connections`` (default 4) when the server advertises NBD_FLAG_CAN_MULTI_CONN and
exactly one otherwise (without multi-conn the server promises no consistency across
connections). Requests go to the least-loaded connection (:meth:`ExportGroup.perform`,
:meth:`ExportGroup.perform_all`).

The group survives trouble through the :class:`~nbdtui.client.recovery.Recovery` it
holds: with a request ``timeout``, a request without a reply in time fails and its
connection is closed and reopened; with a ``reconnect_delay``, a lost connection is
reopened with backoff and the requests that were in flight are sent again (at most
:data:`~nbdtui.client.recovery.MAX_SENDS` times). :meth:`ExportGroup.stats` gives
:class:`PooledConnectionStats` (the age of each connection's oldest request, a
``reconnecting`` row).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator, Iterable

from nbdtui.client.connection import Connection, ConnectionStats
from nbdtui.client.messages import describe, locate
from nbdtui.client.options import ExportOptions
from nbdtui.client.recovery import MAX_SENDS, STALL_SECONDS, Recovery
from nbdtui.client.request import PendingRequest, Request, consume
from nbdtui.errors import (
    ConnectionLostError,
    NbdError,
    ProtocolError,
    RequestError,
    RequestTimeoutError,
)
from nbdtui.proto.client_events import BlockStatus, Negotiated
from nbdtui.proto.constants import BASE_ALLOCATION
from nbdtui.uri import Endpoint

log = logging.getLogger("nbdtui.client.group")

DEFAULT_MAX_CONNECTIONS = 4

Result = list[BlockStatus] | None  # what a request's reply gives


class RangeLock:
    """Exclusive locks on byte ranges (used to keep read-modify-write atomic)."""

    def __init__(self) -> None:
        self._held: list[tuple[int, int, asyncio.Future[None]]] = []

    @contextlib.asynccontextmanager
    async def hold(self, start: int, end: int) -> AsyncIterator[None]:
        while True:
            blockers = [f for s, e, f in self._held if s < end and start < e]
            if not blockers:
                break
            await asyncio.wait(blockers)
        entry = (start, end, asyncio.get_running_loop().create_future())
        self._held.append(entry)
        try:
            yield
        finally:
            self._held.remove(entry)
            entry[2].set_result(None)


@dataclasses.dataclass(frozen=True)
class PooledConnectionStats(ConnectionStats):
    """:class:`~nbdtui.client.connection.ConnectionStats` plus what the group knows.

    ``state`` may also be ``"reconnecting"`` (a row standing for the connection being
    reopened; ``oldest_age`` is then how long it has been trying). ``oldest_age`` is
    how long the oldest request in flight has waited for its reply (seconds, 0 when
    none), ``stalled`` whether that is more than a few seconds, and ``conn_id`` the
    number to give :meth:`Pool.cancel` / :func:`cancel_connection`.
    ``bulk_fallbacks`` counts the bulk transfers of the group that went the
    event-loop way (no stream could be lent, or a request failed on a thread).
    """

    oldest_age: float = 0.0
    stalled: bool = False
    conn_id: int = 0
    bulk_fallbacks: int = 0


_IDS = itertools.count(1)


class ExportGroup:
    """The connections to one export; see the module documentation.

    ``options.timeout`` bounds each request (``None``: no limit); when it expires the
    request fails with :class:`~nbdtui.errors.RequestTimeoutError` and its connection
    is closed and reopened. ``options.reconnect_delay`` is how long to keep trying to
    reconnect after a connection is lost (0: fail at once). ``default_connections`` is
    the cap when ``options.connections`` is ``None`` (the pool's).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        options: ExportOptions,
        *,
        default_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.endpoint = endpoint
        self.options = options
        self.window = options.window
        self.connect_timeout = options.connect_timeout
        self._default = default_connections
        self.connections: list[Connection] = []
        self.max_connections = 1
        self.negotiated: Negotiated | None = None
        self.locks = RangeLock()
        self.refs = 0
        self.recovery = Recovery(
            self, timeout=options.timeout, reconnect_delay=options.reconnect_delay
        )
        self.bulk_fallbacks = 0  # bulk transfers that went the event-loop way
        self._ids: dict[Connection, int] = {}
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._opening: asyncio.Task[None] | None = None
        self._grow_error: NbdError | None = None
        self._closed = False

    @property
    def reconnects(self) -> int:
        """Successful reconnections so far."""
        return self.recovery.reconnects

    # ---- opening ------------------------------------------------------------------------

    async def connect(self, connect_timeout: float | None = None) -> Connection:
        """A new connection to the export (not added to the group)."""
        options = self.options
        conn = await Connection.connect(
            self.endpoint,
            window=self.window,
            connect_timeout=self.connect_timeout if connect_timeout is None else connect_timeout,
            meta_contexts=tuple(dict.fromkeys((BASE_ALLOCATION, *options.meta_contexts))),
            opener=options.opener,
            start_tls=options.start_tls,
        )
        self._ids[conn] = next(_IDS)
        return conn

    async def start(self) -> None:
        """Open the first connection."""
        try:
            conn = await self.connect()
        except BaseException as exc:
            log.debug("connecting to %s failed: %r", self.endpoint.display, exc)
            if not self._started.done():
                if isinstance(exc, asyncio.CancelledError):
                    self._started.cancel()
                else:
                    self._started.set_exception(exc)
                    self._started.add_done_callback(consume)
            raise
        self.connections.append(conn)
        self.negotiated = conn.negotiated
        if conn.info.can_multi_conn:
            self.max_connections = self.options.connections or self._default
        self._started.set_result(None)

    async def wait_started(self) -> None:
        await asyncio.shield(self._started)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def usable(self) -> bool:
        """At least one connection can take requests."""
        return any(c.usable for c in self.connections)

    @property
    def alive(self) -> bool:
        """Requests can still succeed: a connection is usable, or one is being reopened."""
        if self._closed or self.recovery.gave_up is not None:
            return False
        return self.usable or self.recovery.reconnecting is not None

    @property
    def reconnecting(self) -> bool:
        return self.recovery.reconnecting is not None

    @property
    def ready(self) -> bool:
        return (
            self._started.done() and not self._started.cancelled() and self.negotiated is not None
        )

    # ---- what recovery changes ------------------------------------------------------------

    def forget(self, conn: Connection) -> None:
        """Take a dead (or dying) connection out of the group."""
        if conn in self.connections:
            self.connections.remove(conn)
        self.recovery.settle(conn)
        self._ids.pop(conn, None)

    def adopt(self, conn: Connection) -> None:
        """A reconnect opened ``conn``: it replaces the dead connections."""
        self.connections = [c for c in self.connections if c.usable]
        self.connections.append(conn)
        self._grow_error = None

    def abort_connection(self, conn: Connection, reason: str) -> None:
        """Close ``conn`` at once; the requests in flight on it are sent again on another
        connection (see :meth:`Recovery.abort_connection`)."""
        self.recovery.abort_connection(conn, reason)

    def cancel(self, conn_id: int) -> bool:
        """The user's cancel of connection ``conn_id``: close and reopen it (a dead one
        is reopened, even after the group gave up). False when it is not in this group."""
        conn = next((c for c, ident in self._ids.items() if ident == conn_id), None)
        if conn is None or self._closed:
            return False
        if conn.usable:
            self.recovery.abort_connection(conn, "cancelled by the user")
        else:
            self.recovery.revive()
        return True

    def revive(self) -> None:
        """Try again to reconnect after the group gave up (or a connection died)."""
        self.recovery.revive()

    # ---- choosing a connection ------------------------------------------------------

    def least_loaded(self) -> Connection | None:
        best: Connection | None = None
        for conn in self.connections:
            if conn.usable and (best is None or conn.load < best.load):
                best = conn
        return best

    def _pick(self) -> Connection | None:
        """The usable connection to send on, or None; opens another one when they are
        all full (the hot path of :meth:`send`: one connection is not searched)."""
        conns = self.connections
        conn = conns[0] if len(conns) == 1 and conns[0].usable else self.least_loaded()
        if conn is not None and len(conns) < self.max_connections and conn.load >= conn.window:
            self._grow()
        return conn

    async def connection(self) -> Connection:
        """The least-loaded usable connection; when none is, wait for the reconnect
        (started here if the group reconnects), or raise why there is none."""
        while True:
            best = self.least_loaded()
            if best is not None:
                if best.load >= best.window:
                    self._grow()
                return best
            if self._closed:
                raise ConnectionLostError(f"connection to {self.endpoint.display} is closed")
            await self.recovery.wait_reconnected()

    # ---- sending --------------------------------------------------------------------

    def send_nowait(self, request: Request) -> tuple[Connection, PendingRequest] | None:
        """:meth:`send` when nothing needs waiting for (see
        :meth:`Connection.submit_nowait`); ``None`` when :meth:`send` must be used."""
        conn = self._pick()
        if conn is None:
            return None
        pending = conn.submit_nowait(request)
        if pending is None:
            return None
        self.recovery.watchdog.track(pending)
        return conn, pending

    async def send(self, request: Request) -> tuple[Connection, PendingRequest]:
        """Send one request on the least-loaded connection (waiting for a window slot,
        or for a reconnect); return it without waiting for its reply."""
        failures = 0
        watchdog = self.recovery.watchdog
        while True:
            conn = self._pick()
            if conn is None:
                conn = await self.connection()
            try:
                if watchdog.timeout is None:
                    pending = await conn.submit(request)
                else:
                    pending = await self._submit_within(conn, request, watchdog.timeout)
            except (ConnectionLostError, ProtocolError):
                # The connection died before the request went out: nothing was sent.
                failures += 1
                if conn.usable or failures >= MAX_SENDS:
                    raise
                continue
            watchdog.track(pending)
            return conn, pending

    async def _submit_within(
        self, conn: Connection, request: Request, timeout: float
    ) -> PendingRequest:
        try:
            async with asyncio.timeout(timeout):
                return await conn.submit(request)
        except TimeoutError:
            # The request never went out: the server stopped reading what nbdtui sends,
            # or the requests before it (a full window, a payload going out) got no
            # reply in time. Either way, it is the server that did not keep up.
            what = describe(request.command, request.offset, request.length)
            why = "the server did not answer in time"
            if conn.usable and conn.sending:
                why = "the server stopped reading what nbdtui sends"
            if conn.usable and conn.protocol.writing_paused:
                self.abort_connection(conn, f"sending a {what} took over {timeout:g} s")
            raise RequestTimeoutError(
                f"{what} timed out after {timeout:g} s: {why} (server {self.endpoint.display})"
            ) from None

    async def perform(self, request: Request) -> tuple[Result, Connection]:
        """Send one request and wait for its outcome: ``(result, connection that
        answered)``.

        Sent again after a connection loss while the group reconnects; a server error
        raises :class:`~nbdtui.errors.RequestError` with the request's range in its
        message.
        """
        recovery = self.recovery
        sends = 0
        while True:
            sent = self.send_nowait(request)
            if sent is None:
                sent = await self.send(request)
            conn, pending = sent
            sends += 1
            try:
                result = await pending.future
            except asyncio.CancelledError:
                pending.abandon()
                raise
            except ConnectionLostError as exc:
                if not recovery.may_replay(exc):
                    raise
                if sends >= MAX_SENDS:
                    raise recovery.gave_up_on(
                        exc, request.command, request.offset, request.length
                    ) from exc
                if log.isEnabledFor(logging.DEBUG):
                    what = describe(request.command, request.offset, request.length)
                    log.debug("sending again: %s", what)
                continue
            except RequestError as exc:
                raise locate(exc, self.endpoint.display, request.offset, request.length) from exc
            recovery.succeeded(conn, request.command)
            return result, conn

    async def perform_all(self, requests: Iterable[Request]) -> None:
        """Send ``requests``, keeping as many in flight as the connections allow; replay
        those a lost connection took with it; raise the first error once every request
        sent has an outcome."""
        recovery = self.recovery
        # (request, on the wire, connection, times sent)
        sent: list[tuple[Request, PendingRequest, Connection, int]] = []
        stop: list[bool] = []

        def note(future: asyncio.Future[Result]) -> None:
            if not future.cancelled():
                exc = future.exception()  # (retrieved even when nobody else will look)
                if exc is not None and not stop and not recovery.may_replay(exc):
                    stop.append(True)

        try:
            for request in requests:
                if stop:
                    break
                conn, pending = await self.send(request)
                pending.future.add_done_callback(note)
                sent.append((request, pending, conn, 1))
            while sent:
                await asyncio.wait([p.future for _, p, _, _ in sent])
                again: list[tuple[Request, int]] = []
                error: BaseException | None = None
                for request, pending, conn, sends in sent:
                    future = pending.future
                    if future.cancelled():  # pragma: no cover - only abandon() cancels
                        raise asyncio.CancelledError
                    exc = future.exception()
                    if exc is None:
                        recovery.succeeded(conn, request.command)
                    elif isinstance(exc, ConnectionLostError) and recovery.may_replay(exc):
                        if sends < MAX_SENDS:
                            again.append((request, sends))
                        elif error is None:
                            error = recovery.gave_up_on(
                                exc, request.command, request.offset, request.length
                            )
                    elif error is None:
                        error = exc
                        if isinstance(exc, RequestError):
                            error = locate(
                                exc, self.endpoint.display, request.offset, request.length
                            )
                sent = []
                if error is not None:
                    raise error
                if again:
                    log.debug("sending again %d requests after a lost connection", len(again))
                for request, sends in again:
                    conn, pending = await self.send(request)
                    pending.future.add_done_callback(note)
                    sent.append((request, pending, conn, sends + 1))
        except BaseException:
            for _, pending, _, _ in sent:
                pending.abandon()
            raise

    # ---- growing --------------------------------------------------------------------

    def _grow(self) -> None:
        if (
            self._opening is not None
            or self._closed
            or self.recovery.reconnecting is not None
            or self._grow_error is not None
            or len(self.connections) >= self.max_connections
            or any(not c.usable for c in self.connections)
        ):
            return
        self._opening = asyncio.get_running_loop().create_task(self._open_another())

    async def open_all(self) -> None:
        """Open now, concurrently, every connection the group may use (before a bulk
        transfer: requests queued on the first connection while the others open one by
        one would stay there). Failures are kept as when growing: the transfer goes on
        with the connections there are."""
        if self._opening is not None:
            await asyncio.wait([self._opening])
        missing = self.max_connections - len(self.connections)
        if (
            missing <= 0
            or self._closed
            or self.recovery.reconnecting is not None
            or self._grow_error is not None
        ):
            return
        task = self._opening = asyncio.get_running_loop().create_task(self._add_all(missing))
        try:
            await asyncio.wait([task])
        finally:
            if self._opening is task:
                self._opening = None

    async def _add_all(self, missing: int) -> None:
        await asyncio.gather(*(self._add_connection() for _ in range(missing)))

    async def _open_another(self) -> None:
        try:
            await self._add_connection()
        finally:
            self._opening = None

    async def _add_connection(self) -> None:
        try:
            conn = await self.connect()
        except NbdError as exc:
            log.debug("another connection to %s failed: %s", self.endpoint.display, exc)
            self._grow_error = exc  # keep working with the connections we have
            return
        assert self.negotiated is not None
        first = self.negotiated.info
        if self._closed or (conn.info.size, conn.info.flags) != (first.size, first.flags):
            if not self._closed:
                self._grow_error = NbdError("another connection saw a different export")
            await conn.close()
            return
        self.connections.append(conn)

    # ---- stats and close ------------------------------------------------------------

    def stats(self) -> list[ConnectionStats]:
        out: list[ConnectionStats] = []
        recovery = self.recovery
        gave_up = recovery.gave_up
        for conn in self.connections:
            base = conn.stats()
            error = base.error
            if error is None and not conn.usable and gave_up is not None:
                error = str(gave_up)
            age = recovery.watchdog.oldest(conn)
            out.append(
                PooledConnectionStats(
                    **{**dataclasses.asdict(base), "error": error},
                    oldest_age=age,
                    stalled=age >= STALL_SECONDS,
                    conn_id=self._ids.get(conn, 0),
                    bulk_fallbacks=self.bulk_fallbacks,
                )
            )
        task = recovery.reconnecting
        if task is not None:
            since = recovery.trouble_since
            now = task.get_loop().time()
            last = recovery.last_error
            out.append(
                self._placeholder(
                    "reconnecting",
                    in_flight=recovery.waiting,
                    error=str(last) if last else None,
                    oldest_age=max(now - since, 0.0) if since is not None else 0.0,
                )
            )
        elif gave_up is not None and not out:
            out.append(self._placeholder("closed", error=str(gave_up)))
        if self._opening is not None or not self._started.done():
            out.append(self._placeholder("connecting"))
        return out

    def _placeholder(
        self,
        state: str,
        *,
        in_flight: int = 0,
        error: str | None = None,
        oldest_age: float = 0.0,
    ) -> PooledConnectionStats:
        return PooledConnectionStats(
            state=state,
            endpoint=self.endpoint.display,
            export=self.endpoint.export,
            in_flight=in_flight,
            window=self.window,
            requests=0,
            errors=0,
            bytes_read=0,
            bytes_written=0,
            error=error,
            oldest_age=oldest_age,
            bulk_fallbacks=self.bulk_fallbacks,
        )

    async def close(self) -> None:
        self._closed = True
        opening = self._opening
        if opening is not None:
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
        await self.recovery.close()
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)
