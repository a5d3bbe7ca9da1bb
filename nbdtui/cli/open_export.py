"""Opening the export of a command; ``nbd+ssh`` through OpenSSH's own client first.

:func:`open_export` is :class:`~nbdtui.client.api.OpenExport` for the commands that
move data (``read``, ``write``, ``dump``, ``map``, ``copy``, ``diff``...). On an
``nbd+ssh`` endpoint it first forwards the NBD server to a private local socket with the
system ``ssh`` (:mod:`nbdtui.client.transport.ssh.forward`) and opens that: the bulk
engine's threads then read the socket while ``ssh`` decrypts in its own process, and
asyncssh is never imported (half a second). When that cannot be done (no ``ssh``, a
login that needs a prompt, an unknown host key, a forward or an NBD handshake that does
not come up through it) the export is opened the usual way, through asyncssh, whose
prompts and errors the user then sees; the reason is logged at debug level. A host key
that differs from ``known_hosts`` is an error either way. ``ssh`` is stopped when the
block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from nbdtui.errors import NbdError, UriError

if TYPE_CHECKING:
    from nbdtui.client.export import Export
    from nbdtui.client.options import ExportOptions
    from nbdtui.client.pool import Pool
    from nbdtui.uri import Endpoint

__all__ = ["open_export"]

_log = logging.getLogger("nbdtui.client.transport")

# False: nbd+ssh always goes through asyncssh (tests compare the two).
SYSTEM_SSH = True


@contextlib.asynccontextmanager
async def open_export(
    endpoint: Endpoint, options: ExportOptions, *, pool: Pool | None = None
) -> AsyncIterator[Export]:
    """``async with open_export(endpoint, options) as export:``; see the module."""
    from nbdtui.client.api import OpenExport

    if not SYSTEM_SSH or endpoint.transport != "ssh" or options.opener or options.ssh:
        async with OpenExport(endpoint, options, pool=pool) as export:
            yield export
        return
    from nbdtui.client.transport.ssh.forward import open_forward

    forward = await open_forward(endpoint, options.connect_timeout)
    if forward is not None:
        with forward:
            opener = OpenExport(forward.endpoint, options, pool=pool)
            try:
                export = await opener.__aenter__()
            except UriError:
                raise
            except NbdError as exc:
                _log.debug("system ssh: opening %s failed (%s); using asyncssh", endpoint, exc)
            else:
                async with contextlib.AsyncExitStack() as stack:
                    stack.push_async_exit(opener)
                    yield export
                return
    async with OpenExport(endpoint, options, pool=pool) as export:
        yield export
