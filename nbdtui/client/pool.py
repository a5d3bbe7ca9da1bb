"""Connections shared by every user of an export in the process.

A :class:`Pool` maps an endpoint (host or socket, export name, TLS parameters: the whole
:class:`~nbdtui.uri.Endpoint`) to an :class:`~nbdtui.client.group.ExportGroup`: the
connections to that export (see :mod:`nbdtui.client.group`). Users are counted; the
last one to close closes the connections. :func:`cancel_connection` closes and reopens
one connection of any pool (the pool screen's cancel key).

:func:`default_pool` gives the pool of the running event loop (connections belong to a
loop, so each loop has its own).
"""

from __future__ import annotations

import asyncio
import weakref

from nbdtui.client.connection import ConnectionStats
from nbdtui.client.group import DEFAULT_MAX_CONNECTIONS, ExportGroup
from nbdtui.client.options import ExportOptions
from nbdtui.uri import Endpoint

__all__ = ["Pool", "cancel_connection", "default_pool"]


class Pool:
    """Shared, reference-counted connections per export; see the module documentation."""

    def __init__(self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self._groups: dict[Endpoint, ExportGroup] = {}
        _POOLS.add(self)

    async def acquire(
        self, endpoint: Endpoint, options: ExportOptions | None = None
    ) -> ExportGroup:
        """The group for ``endpoint`` (opened if needed), with one more user counted.

        The first user's ``options`` (window, connections, timeout, reconnect_delay...)
        apply to everyone sharing it.
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
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # the opener was cancelled, not us: try again ourselves
            # on an NbdError of the first opener, it propagates to us as well
        group = ExportGroup(
            endpoint, options or ExportOptions(), default_connections=self.max_connections
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
