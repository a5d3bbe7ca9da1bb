"""Embedded NBD server for ``nbdtui demo`` and the tests (uses ``proto/`` only).

``serve(exports)`` starts an asyncio server for ``{name: Backend}`` and returns a
``RunningServer``; ``MemoryBackend`` is a sparse in-memory disk.  The demo exports
live in ``nbdtui.server.demo_exports`` (imported on demand: it builds the demo image).
"""

from __future__ import annotations

from nbdtui.errors import BackendError
from nbdtui.server.backend import Backend, MemoryBackend
from nbdtui.server.listener import RunningServer, export_info, serve

__all__ = ["Backend", "BackendError", "MemoryBackend", "RunningServer", "export_info", "serve"]
