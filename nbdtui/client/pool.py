"""Connections shared by every user of an export in the process.

A :class:`Pool` maps an endpoint (host or socket, export name, TLS parameters: the whole
:class:`~nbdtui.uri.Endpoint`) to an :class:`ExportGroup`: the connections to that
export. The first connection opens with the first user; more open lazily, in the
background, when every connection's request window is full, up to ``max_connections``
(default 4) when the server advertises NBD_FLAG_CAN_MULTI_CONN and exactly one
otherwise (without multi-conn the server promises no consistency across connections).
Users are counted; the last one to close closes the connections. Requests go to the
least-loaded connection.

:func:`default_pool` gives the pool of the running event loop (connections belong to a
loop, so each loop has its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator

from nbdtui.errors import ConnectionLostError, NbdError
from nbdtui.proto.events import Negotiated
from nbdtui.uri import Endpoint

from .connection import DEFAULT_WINDOW, Connection, ConnectionStats
from .negotiate import DEFAULT_CONNECT_TIMEOUT
from .transport import Opener, TlsUpgrader

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


class ExportGroup:
    """The connections to one export, shared by every :class:`~nbdtui.client.export.Export`
    opened on it through the same pool."""

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
    ) -> None:
        if connections is not None and connections < 1:
            raise ValueError("connections must be at least 1")
        self.endpoint = endpoint
        self.window = window
        self.connect_timeout = connect_timeout
        self._requested = connections
        self._default = default_connections
        self._opener = opener
        self._start_tls = start_tls
        self.connections: list[Connection] = []
        self.max_connections = 1
        self.negotiated: Negotiated | None = None
        self.locks = RangeLock()
        self.refs = 0
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._opening: asyncio.Task[None] | None = None
        self._grow_error: NbdError | None = None
        self._closed = False

    async def _connect(self) -> Connection:
        return await Connection.connect(
            self.endpoint,
            window=self.window,
            connect_timeout=self.connect_timeout,
            opener=self._opener,
            start_tls=self._start_tls,
        )

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
    def ready(self) -> bool:
        return (
            self._started.done() and not self._started.cancelled() and self.negotiated is not None
        )

    # ---- choosing a connection ------------------------------------------------------

    def pick(self) -> Connection:
        """The least-loaded usable connection (and open another if all are full)."""
        best: Connection | None = None
        for conn in self.connections:
            if conn.usable and (best is None or conn.load < best.load):
                best = conn
        if best is None:
            raise self._dead_error()
        if best.load >= best.window:
            self._grow()
        return best

    def _dead_error(self) -> NbdError:
        for conn in self.connections:
            if conn.error is not None:
                return conn.error
        return ConnectionLostError(f"connection to {self.endpoint.display} is closed")

    def _grow(self) -> None:
        if (
            self._opening is not None
            or self._closed
            or self._grow_error is not None
            or len(self.connections) >= self.max_connections
            or any(not c.usable for c in self.connections)
        ):
            return
        self._opening = asyncio.get_running_loop().create_task(self._open_another())

    async def _open_another(self) -> None:
        try:
            conn = await self._connect()
        except NbdError as exc:
            self._grow_error = exc  # keep working with the connections we have
            return
        finally:
            self._opening = None
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
        out = [c.stats() for c in self.connections]
        if self._opening is not None or not self._started.done():
            out.append(
                ConnectionStats(
                    state="connecting",
                    endpoint=self.endpoint.display,
                    export=self.endpoint.export,
                    in_flight=0,
                    window=self.window,
                    requests=0,
                    errors=0,
                    bytes_read=0,
                    bytes_written=0,
                )
            )
        return out

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            with contextlib.suppress(BaseException):
                await self._opening
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)


class Pool:
    """Shared, reference-counted connections per export; see the module documentation."""

    def __init__(self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self._groups: dict[Endpoint, ExportGroup] = {}

    async def acquire(
        self,
        endpoint: Endpoint,
        *,
        connections: int | None = None,
        window: int = DEFAULT_WINDOW,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        opener: Opener | None = None,
        start_tls: TlsUpgrader | None = None,
    ) -> ExportGroup:
        """The group for ``endpoint`` (opened if needed), with one more user counted.

        The first user's settings (window, connections) apply to everyone sharing it.
        """
        while True:
            group = self._groups.get(endpoint)
            if group is None:
                break
            if group.ready:
                if group.usable:
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

    async def close(self) -> None:
        """Close every connection, whoever still uses it."""
        groups, self._groups = list(self._groups.values()), {}
        await asyncio.gather(*(g.close() for g in groups), return_exceptions=True)


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


_DEFAULT: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = weakref.WeakKeyDictionary()


def default_pool() -> Pool:
    """The pool of the running event loop."""
    loop = asyncio.get_running_loop()
    pool = _DEFAULT.get(loop)
    if pool is None:
        pool = _DEFAULT[loop] = Pool()
    return pool
