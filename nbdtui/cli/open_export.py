"""Opening the export of a command; ``nbd+ssh`` through OpenSSH's own client first.

:func:`open_export` is :class:`~nbdtui.client.api.OpenExport` for the commands that
move data (``read``, ``write``, ``dump``, ``map``, ``copy``, ``diff``...). On an
``nbd+ssh`` endpoint it first forwards the NBD server to a private local socket with the
system ``ssh`` (:mod:`nbdtui.client.transport.ssh.forward`) and opens that: the bulk
engine's threads then read the socket while ``ssh`` decrypts in its own process, and
asyncssh is never imported (half a second). When that cannot be done (no ``ssh``, a
login that needs a prompt, an unknown host key, a forward that does not come up, a
connection through it that ends before the NBD handshake does, as when the remote socket
is missing) the export is opened the usual way, through asyncssh, whose prompts and
errors the user then sees; the reason is logged at debug level. A refusal by the NBD
server itself (no such export, TLS required or refused) is final. A host key
that differs from ``known_hosts`` is an error either way. ``ssh`` is stopped when the
block ends, however it ends. :func:`through_ssh` does the same for the one-shot
questions of ``info`` and ``list``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from nbdtui.errors import (
    ConnectError,
    ConnectionLostError,
    ExportNotFoundError,
    NbdError,
    ProtocolError,
    TLSError,
    TLSRequiredError,
    UriError,
)

if TYPE_CHECKING:
    from nbdtui.client.export import Export
    from nbdtui.client.options import ExportOptions
    from nbdtui.client.pool import Pool
    from nbdtui.client.transport.ssh.forward import Forward
    from nbdtui.uri import Endpoint

__all__ = ["early_forwards", "open_export", "through_ssh"]

_T = TypeVar("_T")

# False: nbd+ssh always goes through asyncssh (tests and bench/bench_ssh.py compare).
SYSTEM_SSH = True
# The commands that open their exports with open_export, and where their endpoints are.
ENDPOINT_ARGS = {
    **dict.fromkeys(
        ("info", "list", "read", "dump", "map", "write", "flush", "trim", "zero"), ("uri",)
    ),
    "copy": ("src", "dst"),
    "diff": ("a", "b"),
}
# What the NBD server (or the endpoint) says itself: asyncssh would hear the same, so
# these end the command instead of a second try through asyncssh.
_FINAL = (ExportNotFoundError, TLSError, TLSRequiredError, UriError)
# Forwards started by early_forwards, until open_export takes them.
_EARLY: dict[Endpoint, Forward] = {}


def _ssh_endpoints(args: argparse.Namespace) -> list[Endpoint]:
    from nbdtui.uri import parse

    found = []
    for name in ENDPOINT_ARGS.get(args.command, ()):
        text = getattr(args, name, None)
        if not isinstance(text, str) or "://" not in text:
            continue
        try:
            endpoint = parse(text)
            if getattr(args, "ssh", None) is not None:
                from nbdtui.client.transport.ssh.endpoint import tunnel_endpoint

                endpoint = tunnel_endpoint(endpoint, args.ssh)
        except UriError:
            continue  # said by the command itself
        if endpoint.transport == "ssh":
            found.append(endpoint)
    return found


@contextlib.contextmanager
def early_forwards(args: argparse.Namespace) -> Iterator[None]:
    """Start ``ssh`` for the command's ``nbd+ssh`` endpoints now, so that its login
    overlaps the imports of the command; :func:`open_export` takes them over, and any
    it did not take is stopped when the block ends."""
    if SYSTEM_SSH:
        for endpoint in _ssh_endpoints(args):
            if endpoint in _EARLY:
                continue
            from nbdtui.client.transport.ssh.forward import start_forward

            forward = start_forward(endpoint)
            if forward is not None:
                _EARLY[endpoint] = forward
    try:
        yield
    finally:
        while _EARLY:
            _EARLY.popitem()[1].close()


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
    forward = await _ready(endpoint, options.connect_timeout)
    if forward is not None:
        with forward:
            opener = OpenExport(forward.endpoint, options, pool=pool)
            try:
                export = await opener.__aenter__()
            except _FINAL:
                raise
            except NbdError as exc:  # e.g. the channel refused: asyncssh says why
                _using_asyncssh(endpoint, exc)
            else:
                async with contextlib.AsyncExitStack() as stack:
                    stack.push_async_exit(opener)
                    try:
                        yield export
                    except (ConnectError, ConnectionLostError, ProtocolError) as exc:
                        # the NBD connections saw the local socket break: say why
                        ended = forward.ended()
                        if ended is None:
                            raise
                        raise ended from exc
                return
    async with OpenExport(endpoint, options, pool=pool) as export:
        yield export


async def through_ssh(
    endpoint: Endpoint, connect_timeout: float | None, ask: Callable[[Endpoint], Awaitable[_T]]
) -> _T:
    """``await ask(endpoint)``, a one-shot question (``info``, ``list``); on an ``nbd+ssh``
    endpoint asked through the system ``ssh``'s forward first, as :func:`open_export`
    opens one (same fallback to asyncssh, same final refusals)."""
    if SYSTEM_SSH and endpoint.transport == "ssh":
        forward = await _ready(endpoint, connect_timeout)
        if forward is not None:
            with forward:
                try:
                    return await ask(forward.endpoint)
                except _FINAL:
                    raise
                except NbdError as exc:
                    _using_asyncssh(endpoint, exc)
    return await ask(endpoint)


async def _ready(endpoint: Endpoint, connect_timeout: float | None) -> Forward | None:
    """``endpoint``'s forward, started early or now, once it is up; ``None``: asyncssh."""
    from nbdtui.client.transport.ssh.forward import ready_forward, start_forward

    forward = _EARLY.pop(endpoint, None) or start_forward(endpoint)
    return None if forward is None else await ready_forward(forward, connect_timeout)


def _using_asyncssh(endpoint: Endpoint, exc: NbdError) -> None:
    import logging

    logging.getLogger("nbdtui.client.transport").debug(
        "system ssh: opening %s failed (%s); using asyncssh", endpoint, exc
    )
