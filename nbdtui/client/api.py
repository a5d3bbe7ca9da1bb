"""The library API: open an export, list exports, probe one.

::

    import nbdtui

    async with nbdtui.open("nbd://localhost/disk") as export:
        head = await export.read(0, 512)
        await export.write(4096, b"hello", fua=True)

    listed = await nbdtui.client.list_exports("nbd://localhost")
    negotiated = await nbdtui.client.probe("nbd://localhost/disk")

Targets are NBD URIs (``nbd://``, ``nbd+unix://``, QEMU's ``nbd:host:port``...) or
:class:`~nbdtui.uri.Endpoint` objects. Errors are the classes of :mod:`nbdtui.errors`,
each with a one-line message naming the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

from nbdtui.client.connection import DEFAULT_WINDOW
from nbdtui.client.export import Export
from nbdtui.client.negotiate import DEFAULT_CONNECT_TIMEOUT, handshake
from nbdtui.client.options import ExportOptions
from nbdtui.client.pool import Pool, default_pool
from nbdtui.client.transport.stream import Opener, TlsUpgrader
from nbdtui.errors import NbdError
from nbdtui.proto.client_events import ExportsListed, Negotiated
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.constants import BASE_ALLOCATION, Command
from nbdtui.proto.types import ExportDetails
from nbdtui.uri import Endpoint, SshTarget, parse

__all__ = ["ExportOptions", "OpenExport", "list_exports", "open", "probe"]


def _endpoint(target: str | Endpoint, ssh: str | SshTarget | None = None) -> Endpoint:
    endpoint = target if isinstance(target, Endpoint) else parse(target)
    if ssh is not None:  # reach it from an SSH host: see nbdtui.client.transport.ssh.endpoint
        from nbdtui.client.transport.ssh.endpoint import tunnel_endpoint

        endpoint = tunnel_endpoint(endpoint, ssh)
    return endpoint


def _ssh_login(
    endpoint: Endpoint, timeout: float | None, opener: Opener | None
) -> contextlib.AbstractAsyncContextManager[object]:
    """For nbd+ssh: log in first, so that a password prompt does not count against
    ``timeout`` (see :func:`nbdtui.client.transport.ssh.tunnel.ssh_login`); a no-op for
    other endpoints."""
    if endpoint.transport != "ssh" or opener is not None:
        return contextlib.nullcontext()
    from nbdtui.client.transport.ssh.tunnel import ssh_login

    login: contextlib.AbstractAsyncContextManager[object] = ssh_login(endpoint, timeout)
    return login


class OpenExport:
    """What :func:`open` returns: an async context manager yielding the
    :class:`~nbdtui.client.export.Export` (closed on exit), also awaitable
    (``export = await nbdtui.open(...)``; then call ``await export.close()``).

    Built by :func:`open` from its keyword arguments, or directly with an
    :class:`~nbdtui.client.options.ExportOptions` (``OpenExport(target, options)``) by
    code that holds the settings as one object. Connections come from ``pool``
    (default: :func:`~nbdtui.client.pool.default_pool`)."""

    def __init__(
        self,
        target: str | Endpoint,
        options: ExportOptions | None = None,
        *,
        pool: Pool | None = None,
    ) -> None:
        self._target = target
        self._options = options or ExportOptions()
        self._pool = pool
        self._export: Export | None = None

    async def _open(self) -> Export:
        options = self._options
        pool = self._pool or default_pool()
        endpoint = _endpoint(self._target, options.ssh)
        async with _ssh_login(endpoint, options.connect_timeout, options.opener):
            group = await pool.acquire(endpoint, options)
        try:
            return Export(group, pool)
        except BaseException:
            await pool.release(group)
            raise

    def __await__(self) -> Generator[object, None, Export]:
        return self._open().__await__()

    async def __aenter__(self) -> Export:
        self._export = await self._open()
        return self._export

    async def __aexit__(self, *exc: object) -> None:
        if self._export is not None:
            await self._export.close()


def open(
    target: str | Endpoint,
    *,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    window: int = DEFAULT_WINDOW,
    connections: int | None = None,
    pool: Pool | None = None,
    opener: Opener | None = None,
    start_tls: TlsUpgrader | None = None,
    ssh: str | SshTarget | None = None,
    timeout: float | None = None,
    reconnect_delay: float = 0.0,
) -> OpenExport:
    """Open the export ``target`` names; use as ``async with open(...) as export``.

    ``connect_timeout`` bounds connect + handshake of each connection (``None``: no
    limit). ``window`` is the number of requests in flight per connection.
    ``connections`` caps the connections to this export (default 4), used only when the
    server advertises multi-conn (else always 1). Connections come from ``pool``
    (default: :func:`~nbdtui.client.pool.default_pool`), shared with every other user of
    the same endpoint in the process; the first user's settings apply. ``opener`` and
    ``start_tls`` replace the registered transport and TLS upgrader (see
    :mod:`nbdtui.client.transport.stream`). ``ssh`` (``"[user@]host[:port]"``) reaches an
    ``nbd://`` or ``nbd+unix://`` target through that SSH host (the socket path is on
    it; see :func:`nbdtui.client.transport.ssh.endpoint.tunnel_endpoint`).

    ``timeout`` bounds each request (``None``: no limit): a request without a reply
    after that many seconds fails with RequestTimeoutError, and its connection is closed
    and reopened (the other requests in flight on it are sent again). After a lost
    connection, nbdtui reconnects with backoff for up to ``reconnect_delay`` seconds
    (0: fail at once), sending again the requests that were in flight; when it gives
    up, they fail with ConnectionLostError. See :mod:`nbdtui.client.recovery`.

    Raises UriError, ConnectError, HandshakeError (ExportNotFoundError,
    TLSRequiredError), ProtocolError or NotSupportedError.
    """
    options = ExportOptions(
        connect_timeout=connect_timeout,
        window=window,
        connections=connections,
        opener=opener,
        start_tls=start_tls,
        ssh=ssh,
        timeout=timeout,
        reconnect_delay=reconnect_delay,
    )
    return OpenExport(target, options, pool=pool)


async def _disconnect(transport: asyncio.Transport, data: bytes = b"") -> None:
    with contextlib.suppress(Exception):
        if data and not transport.is_closing():
            transport.write(data)
        transport.close()


async def list_exports(
    target: str | Endpoint,
    *,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    details: bool = True,
    opener: Opener | None = None,
    start_tls: TlsUpgrader | None = None,
    ssh: str | SshTarget | None = None,
) -> ExportsListed:
    """The exports of the server ``target`` names (its export name is ignored).

    With ``details``, each export's size, flags, block sizes and metadata contexts too
    (NBD_OPT_INFO / NBD_OPT_LIST_META_CONTEXT, when the server supports them). Some
    servers (nbd-server 3.24) answer NBD_OPT_INFO with size 0 for exports they have not
    opened yet: for an export whose INFO says 0 bytes, nbdtui asks again with NBD_OPT_GO
    on a connection of its own and keeps that answer.
    """
    endpoint = _endpoint(target, ssh)
    hs = ClientHandshake(list_exports=True, list_details=details, tls=endpoint.tls)
    async with _ssh_login(endpoint, connect_timeout, opener):
        done = await handshake(
            endpoint, hs, connect_timeout=connect_timeout, opener=opener, start_tls=start_tls
        )
    await _disconnect(done.transport)  # NBD_OPT_ABORT was already sent
    listed = done.result
    assert isinstance(listed, ExportsListed)
    suspicious = [
        i for i, e in enumerate(listed.exports) if e.info is not None and e.info.size == 0
    ]
    if not suspicious:
        return listed
    limit = asyncio.Semaphore(4)

    async def recheck(item: ExportDetails) -> ExportDetails:
        async with limit:
            try:
                negotiated = await probe(
                    endpoint.with_export(item.name),
                    connect_timeout=connect_timeout,
                    opener=opener,
                    start_tls=start_tls,
                )
            except NbdError:
                return item  # keep what INFO said
        return item.replace(info=negotiated.info)

    exports = list(listed.exports)
    rechecked = await asyncio.gather(*(recheck(exports[i]) for i in suspicious))
    for i, item in zip(suspicious, rechecked, strict=True):
        exports[i] = item
    return listed.replace(exports=tuple(exports))


async def probe(
    target: str | Endpoint,
    *,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    opener: Opener | None = None,
    start_tls: TlsUpgrader | None = None,
    ssh: str | SshTarget | None = None,
) -> Negotiated:
    """Connect to the export, learn everything the handshake tells (metadata contexts
    listed with NBD_OPT_LIST_META_CONTEXT, ``base:allocation`` set), then disconnect
    cleanly (NBD_CMD_DISC). Used by ``nbdtui info``. ``ssh``: as for :func:`open`."""
    endpoint = _endpoint(target, ssh)
    hs = ClientHandshake(
        export_name=endpoint.export,
        meta_contexts=(BASE_ALLOCATION,),
        list_contexts=True,
        tls=endpoint.tls,
    )
    async with _ssh_login(endpoint, connect_timeout, opener):
        done = await handshake(
            endpoint, hs, connect_timeout=connect_timeout, opener=opener, start_tls=start_tls
        )
    assert isinstance(done.result, Negotiated)
    from nbdtui.proto.client_transmission import ClientTransmission

    _, disc = ClientTransmission(structured=done.result.structured).request(Command.DISC)
    await _disconnect(done.transport, disc)
    return done.result
