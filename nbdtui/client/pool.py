"""Connections shared by every user of an export in the process.

A :class:`Pool` maps an endpoint (host or socket, export name, TLS parameters: the whole
:class:`~nbdtui.uri.Endpoint`) to an :class:`ExportGroup`: the connections to that
export. The first connection opens with the first user; more open lazily, in the
background, when every connection's request window is full, up to ``max_connections``
(default 4) when the server advertises NBD_FLAG_CAN_MULTI_CONN and exactly one
otherwise (without multi-conn the server promises no consistency across connections).
Users are counted; the last one to close closes the connections. Requests go to the
least-loaded connection.

A group survives trouble (see :mod:`nbdtui.client.reconnect` and
:mod:`nbdtui.client.resilience`): with a request ``timeout``, a request without a reply
in time fails and its connection is closed and reopened; with a ``reconnect_delay``, a
lost connection is reopened with backoff and the requests that were in flight are sent
again. :meth:`ExportGroup.stats` gives :class:`PooledConnectionStats` (the age of each
connection's oldest request, a ``reconnecting`` row) and :func:`cancel_connection`
closes and reopens one connection (the pool screen's cancel key).

:func:`default_pool` gives the pool of the running event loop (connections belong to a
loop, so each loop has its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import weakref
from collections.abc import AsyncIterator

from nbdtui.client.connection import DEFAULT_WINDOW, Connection, ConnectionStats
from nbdtui.client.negotiate import DEFAULT_CONNECT_TIMEOUT
from nbdtui.client.reconnect import GroupRecovery
from nbdtui.client.requests import PendingRequest
from nbdtui.client.resilience import MAX_SENDS, STALL_SECONDS, Backoff, Watchdog, describe
from nbdtui.client.transport.stream import Opener, TlsUpgrader
from nbdtui.errors import ConnectionLostError, NbdError, ProtocolError, RequestTimeoutError
from nbdtui.proto.client_events import Negotiated
from nbdtui.uri import Endpoint

DEFAULT_MAX_CONNECTIONS = 4


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
    """

    oldest_age: float = 0.0
    stalled: bool = False
    conn_id: int = 0


_IDS = itertools.count(1)


class ExportGroup(GroupRecovery):
    """The connections to one export, shared by every :class:`~nbdtui.client.export.Export`
    opened on it through the same pool.

    Requests go through :meth:`send` (see :mod:`nbdtui.client.resilience` for the
    replay around it). ``timeout`` bounds each request (``None``: no limit); when it
    expires the request fails with :class:`~nbdtui.errors.RequestTimeoutError` and its
    connection is closed and reopened. ``reconnect_delay`` is how long to keep trying to
    reconnect after a connection is lost (0: fail at once).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connections: int | None = None,
        window: int = DEFAULT_WINDOW,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        opener: Opener | None = None,
        start_tls: TlsUpgrader | None = None,
        default_connections: int = DEFAULT_MAX_CONNECTIONS,
        timeout: float | None = None,
        reconnect_delay: float = 0.0,
    ) -> None:
        if connections is not None and connections < 1:
            raise ValueError("connections must be at least 1")
        if reconnect_delay < 0:
            raise ValueError("reconnect_delay must not be negative")
        self.endpoint = endpoint
        self.window = window
        self.connect_timeout = connect_timeout
        self.reconnect_delay = reconnect_delay
        self._requested = connections
        self._default = default_connections
        self._opener = opener
        self._start_tls = start_tls
        self.connections: list[Connection] = []
        self.max_connections = 1
        self.negotiated: Negotiated | None = None
        self.locks = RangeLock()
        self.refs = 0
        self.watchdog = Watchdog(self._expired, lambda: self.connections)
        self.watchdog.timeout = timeout
        self.reconnects = 0  # successful reconnections
        self.last_error: NbdError | None = None  # why the last connection was lost
        self._ids: dict[Connection, int] = {}
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._opening: asyncio.Task[None] | None = None
        self._grow_error: NbdError | None = None
        self._closed = False
        self._reconnecting: asyncio.Task[None] | None = None
        self._waiting = 0  # requests waiting for the reconnect
        self._trouble_since: float | None = None
        self._backoff = Backoff()
        self._reopen = False  # nbdtui closed a connection itself: reopen it
        self._gave_up: NbdError | None = None
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

    async def _connect(self, connect_timeout: float | None = None) -> Connection:
        conn = await Connection.connect(
            self.endpoint,
            window=self.window,
            connect_timeout=self.connect_timeout if connect_timeout is None else connect_timeout,
            opener=self._opener,
            start_tls=self._start_tls,
        )
        self._ids[conn] = next(_IDS)
        return conn

    async def start(self) -> None:
        """Open the first connection."""
        try:
            conn = await self._connect()
        except BaseException as exc:
            if not self._started.done():
                if isinstance(exc, asyncio.CancelledError):
                    self._started.cancel()
                else:
                    self._started.set_exception(exc)
                    self._started.add_done_callback(_consume)
            raise
        self.connections.append(conn)
        self.negotiated = conn.negotiated
        if conn.info.can_multi_conn:
            self.max_connections = self._requested or self._default
        self._started.set_result(None)

    async def wait_started(self) -> None:
        await asyncio.shield(self._started)

    @property
    def usable(self) -> bool:
        """At least one connection can take requests."""
        return any(c.usable for c in self.connections)

    @property
    def alive(self) -> bool:
        """Requests can still succeed: a connection is usable, or one is being reopened."""
        if self._closed or self._gave_up is not None:
            return False
        return self.usable or self._reconnecting is not None

    @property
    def reconnecting(self) -> bool:
        return self._reconnecting is not None

    @property
    def ready(self) -> bool:
        return (
            self._started.done() and not self._started.cancelled() and self.negotiated is not None
        )

    # ---- choosing a connection ------------------------------------------------------

    def _least_loaded(self) -> Connection | None:
        best: Connection | None = None
        for conn in self.connections:
            if conn.usable and (best is None or conn.load < best.load):
                best = conn
        return best

    def _pick(self) -> Connection | None:
        """The usable connection to send on, or None; opens another one when they are
        all full (the hot path of :meth:`send`: one connection is not searched)."""
        conns = self.connections
        conn = conns[0] if len(conns) == 1 and conns[0].usable else self._least_loaded()
        if conn is not None and len(conns) < self.max_connections and conn.load >= conn.window:
            self._grow()
        return conn

    async def connection(self) -> Connection:
        """The least-loaded usable connection; when none is, wait for the reconnect
        (started here if the group reconnects), or raise why there is none."""
        while True:
            best = self._least_loaded()
            if best is not None:
                if best.load >= best.window:
                    self._grow()
                return best
            if self._closed:
                raise ConnectionLostError(f"connection to {self.endpoint.display} is closed")
            if self._gave_up is not None:
                raise self._gave_up
            task = self._reconnecting
            if task is None:
                if not self._reopen and self.reconnect_delay <= 0:
                    raise self._dead_error()
                task = self._start_reconnect()
            self._waiting += 1
            try:
                await asyncio.wait([task])
            finally:
                self._waiting -= 1
            if task.cancelled():
                raise ConnectionLostError(f"connection to {self.endpoint.display} is closed")
            exc = task.exception()
            if exc is not None:
                raise exc

    def send_nowait(
        self,
        command: int,
        offset: int,
        length: int,
        flags: int,
        payload: object = None,
        dest: memoryview | None = None,
    ) -> tuple[Connection, PendingRequest] | None:
        """:meth:`send` when nothing needs waiting for (see
        :meth:`Connection.submit_nowait`); ``None`` when :meth:`send` must be used."""
        conn = self._pick()
        if conn is None:
            return None
        pending = conn.submit_nowait(
            command,
            offset,
            length,
            flags,
            payload=payload,  # type: ignore[arg-type]
            dest=dest,
        )
        if pending is None:
            return None
        self.watchdog.track(pending)
        return conn, pending

    async def send(
        self,
        command: int,
        offset: int,
        length: int,
        flags: int,
        payload: object = None,
        dest: memoryview | None = None,
    ) -> tuple[Connection, PendingRequest]:
        """Send one request on the least-loaded connection (waiting for a window slot,
        or for a reconnect); return it without waiting for its reply."""
        failures = 0
        while True:
            conn = self._pick()
            if conn is None:
                conn = await self.connection()
            try:
                if self.watchdog.timeout is None:
                    pending = await conn.submit(
                        command, offset, length, flags, payload=payload, dest=dest
                    )
                else:
                    pending = await self._submit_within(
                        conn, command, offset, length, flags, payload, dest
                    )
            except (ConnectionLostError, ProtocolError):
                # The connection died before the request went out: nothing was sent.
                failures += 1
                if conn.usable or failures >= MAX_SENDS:
                    raise
                continue
            self.watchdog.track(pending)
            return conn, pending

    async def _submit_within(
        self,
        conn: Connection,
        command: int,
        offset: int,
        length: int,
        flags: int,
        payload: object,
        dest: memoryview | None,
    ) -> PendingRequest:
        timeout = self.watchdog.timeout
        try:
            async with asyncio.timeout(timeout):
                return await conn.submit(command, offset, length, flags, payload=payload, dest=dest)
        except TimeoutError:
            what = describe(command, offset, length)
            if conn.usable and conn.protocol.writing_paused:
                # The server stopped reading what nbdtui sends.
                self.abort_connection(conn, f"sending a {what} took over {timeout:g} s")
            raise RequestTimeoutError(
                f"{what} timed out after {timeout:g} s waiting to be sent "
                f"(server {self.endpoint.display})"
            ) from None

    def _dead_error(self) -> NbdError:
        for conn in self.connections:
            if conn.error is not None:
                return conn.error
        if self.last_error is not None:
            return self.last_error
        return ConnectionLostError(f"connection to {self.endpoint.display} is closed")

    def _grow(self) -> None:
        if (
            self._opening is not None
            or self._closed
            or self._reconnecting is not None
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
            or self._reconnecting is not None
            or self._grow_error is not None
        ):
            return
        task = self._opening = asyncio.ensure_future(
            asyncio.gather(*(self._add_connection() for _ in range(missing)))
        )
        try:
            await asyncio.wait([task])
        finally:
            if self._opening is task:
                self._opening = None

    async def _open_another(self) -> None:
        try:
            await self._add_connection()
        finally:
            self._opening = None

    async def _add_connection(self) -> None:
        try:
            conn = await self._connect()
        except NbdError as exc:
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
        for conn in self.connections:
            base = conn.stats()
            values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
            if values["error"] is None and not conn.usable and self._gave_up is not None:
                values["error"] = str(self._gave_up)
            age = self.watchdog.oldest(conn)
            out.append(
                PooledConnectionStats(
                    **values,
                    oldest_age=age,
                    stalled=age >= STALL_SECONDS,
                    conn_id=self._ids.get(conn, 0),
                )
            )
        if self._reconnecting is not None:
            since = self._trouble_since
            now = self._reconnecting.get_loop().time()
            out.append(
                self._placeholder(
                    "reconnecting",
                    in_flight=self._waiting,
                    error=str(self.last_error) if self.last_error else None,
                    oldest_age=max(now - since, 0.0) if since is not None else 0.0,
                )
            )
        elif self._gave_up is not None and not out:
            out.append(self._placeholder("closed", error=str(self._gave_up)))
        if self._opening is not None or not self._started.done():
            out.append(self._placeholder("connecting"))
        return out

    def _placeholder(self, state: str, **fields: object) -> PooledConnectionStats:
        values: dict = {
            "state": state,
            "endpoint": self.endpoint.display,
            "export": self.endpoint.export,
            "in_flight": 0,
            "window": self.window,
            "requests": 0,
            "errors": 0,
            "bytes_read": 0,
            "bytes_written": 0,
        }
        values.update(fields)
        return PooledConnectionStats(**values)

    async def close(self) -> None:
        self._closed = True
        self.watchdog.close()
        for task in (self._opening, self._reconnecting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)


class Pool:
    """Shared, reference-counted connections per export; see the module documentation."""

    def __init__(self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self._groups: dict[Endpoint, ExportGroup] = {}
        _POOLS.add(self)

    async def acquire(
        self,
        endpoint: Endpoint,
        *,
        connections: int | None = None,
        window: int = DEFAULT_WINDOW,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        opener: Opener | None = None,
        start_tls: TlsUpgrader | None = None,
        timeout: float | None = None,
        reconnect_delay: float = 0.0,
    ) -> ExportGroup:
        """The group for ``endpoint`` (opened if needed), with one more user counted.

        The first user's settings (window, connections, timeout, reconnect_delay) apply
        to everyone sharing it.
        """
        while True:
            group = self._groups.get(endpoint)
            if group is None:
                break
            if group.ready:
                if group.alive:
                    group.refs += 1
                    return group
                # its connections are dead: its users keep it, newcomers get a new one
                del self._groups[endpoint]
                break
            try:
                await group.wait_started()
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
                # the opener was cancelled, not us: try again ourselves
            # on an NbdError of the first opener, it propagates to us as well
        group = ExportGroup(
            endpoint,
            connections=connections,
            window=window,
            connect_timeout=connect_timeout,
            opener=opener,
            start_tls=start_tls,
            default_connections=self.max_connections,
            timeout=timeout,
            reconnect_delay=reconnect_delay,
        )
        self._groups[endpoint] = group
        try:
            await group.start()
        except BaseException:
            if self._groups.get(endpoint) is group:
                del self._groups[endpoint]
            raise
        group.refs += 1
        return group

    async def release(self, group: ExportGroup) -> None:
        """One user fewer; the last one closes the connections."""
        group.refs -= 1
        if group.refs > 0:
            return
        if self._groups.get(group.endpoint) is group:
            del self._groups[group.endpoint]
        await group.close()

    def stats(self) -> dict[Endpoint, list[ConnectionStats]]:
        """Every connection of every export, for the Pool screen."""
        return {endpoint: group.stats() for endpoint, group in self._groups.items()}

    def cancel(self, conn_id: int) -> bool:
        """Close and reopen connection ``conn_id`` (``PooledConnectionStats.conn_id``);
        the requests in flight on it are sent again. A dead connection is reopened.
        False when no group of this pool has it."""
        return any(group.cancel(conn_id) for group in list(self._groups.values()))

    async def close(self) -> None:
        """Close every connection, whoever still uses it."""
        groups, self._groups = list(self._groups.values()), {}
        await asyncio.gather(*(g.close() for g in groups), return_exceptions=True)


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


_POOLS: weakref.WeakSet[Pool] = weakref.WeakSet()


def cancel_connection(conn_id: int) -> bool:
    """:meth:`Pool.cancel` on every pool of the process (the pool screen's cancel key)."""
    return any(pool.cancel(conn_id) for pool in list(_POOLS))


_DEFAULT: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = weakref.WeakKeyDictionary()


def default_pool() -> Pool:
    """The pool of the running event loop."""
    loop = asyncio.get_running_loop()
    pool = _DEFAULT.get(loop)
    if pool is None:
        pool = _DEFAULT[loop] = Pool()
    return pool
