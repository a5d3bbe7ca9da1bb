"""asyncio NBD client: transports, connections with a request window, a pool, exports.

The path of a request: :mod:`~nbdtui.client.export` (an Export splits calls into
:class:`~nbdtui.client.request.Request` objects) -> :mod:`~nbdtui.client.group` (the
export's connections: picking one, sending, replaying with
:mod:`~nbdtui.client.recovery`) -> :mod:`~nbdtui.client.connection` (one stream on the
event loop) -> :mod:`~nbdtui.client.replies` (what the replies do), whichever engine
carries it: bulk transfers on threads (:mod:`~nbdtui.client.bulk`) use the same replies.
Debug logging goes to the ``nbdtui.client`` logger.

Public API (see :mod:`nbdtui.client.api`)::

    open(target, *, connect_timeout=10.0, window=16, connections=None, pool=None,
         timeout=None, reconnect_delay=0.0)
        -> async context manager yielding an Export
    list_exports(target, *, connect_timeout=10.0, details=True) -> ExportsListed
    probe(target, *, connect_timeout=10.0) -> Negotiated

Nothing here imports textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbdtui.lazy_names import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    from nbdtui.client.api import OpenExport, list_exports, open, probe
    from nbdtui.client.bulk import BulkEngine
    from nbdtui.client.connection import Connection, ConnectionStats
    from nbdtui.client.export import Export, Extent
    from nbdtui.client.options import ExportOptions
    from nbdtui.client.pool import Pool, default_pool
    from nbdtui.client.request import FileRange, Request
    from nbdtui.errors import RangeError

# name -> the module that defines it, imported on first use: importing a submodule
# (nbdtui.client.oneshot, for `nbdtui info`) must not import asyncio through this one.
_LAZY = {
    "OpenExport": "nbdtui.client.api",
    "list_exports": "nbdtui.client.api",
    "open": "nbdtui.client.api",
    "probe": "nbdtui.client.api",
    "BulkEngine": "nbdtui.client.bulk",
    "Connection": "nbdtui.client.connection",
    "ConnectionStats": "nbdtui.client.connection",
    "Export": "nbdtui.client.export",
    "Extent": "nbdtui.client.export",
    "ExportOptions": "nbdtui.client.options",
    "Pool": "nbdtui.client.pool",
    "default_pool": "nbdtui.client.pool",
    "FileRange": "nbdtui.client.request",
    "Request": "nbdtui.client.request",
    "RangeError": "nbdtui.errors",
}

__all__ = [
    "BulkEngine",
    "Connection",
    "ConnectionStats",
    "Export",
    "ExportOptions",
    "Extent",
    "FileRange",
    "OpenExport",
    "Pool",
    "RangeError",
    "Request",
    "default_pool",
    "list_exports",
    "open",
    "probe",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
