"""asyncio NBD client: transports, connections with a request window, a pool, exports.

Public API (see :mod:`nbdtui.client.api`)::

    open(target, *, connect_timeout=10.0, window=16, connections=None, pool=None,
         timeout=None, reconnect_delay=0.0)
        -> async context manager yielding an Export
    list_exports(target, *, connect_timeout=10.0, details=True) -> ExportsListed
    probe(target, *, connect_timeout=10.0) -> Negotiated

Nothing here imports textual.
"""

from __future__ import annotations

from nbdtui.client.api import list_exports, open, probe
from nbdtui.client.connection import Connection, ConnectionStats
from nbdtui.client.export import Export, Extent
from nbdtui.client.pool import Pool, default_pool
from nbdtui.client.requests import FileRange
from nbdtui.errors import RangeError

__all__ = [
    "Connection",
    "ConnectionStats",
    "Export",
    "Extent",
    "FileRange",
    "Pool",
    "RangeError",
    "default_pool",
    "list_exports",
    "open",
    "probe",
]
