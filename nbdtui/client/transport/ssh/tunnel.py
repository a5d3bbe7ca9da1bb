"""NBD over SSH: the SSH connections that ``nbd+ssh://`` endpoints and ``--ssh`` tunnels
share, and the opener that makes a channel of one per NBD connection.

Imported lazily (importing asyncssh takes a few tenths of a second) the first time an SSH
endpoint is opened: :func:`nbdtui.client.transport.openers.opener_for` imports it for an
``ssh`` endpoint and calls :func:`ssh_opener`.

How a connection is made:

- One SSH connection per login (user, host, port, ssh_config file) and event loop
  carries every NBD connection to that host: each NBD connection is one *direct
  channel* of it (:mod:`nbdtui.client.transport.ssh.channel`), to the remote Unix socket
  (``direct-streamlocal``) or to ``HOST:PORT`` as the SSH host sees it
  (``direct-tcpip``). The channel lives in this process: nothing listens locally,
  nothing runs on the remote host (no ``nc``, no shell). The SSH connection closes with
  its last channel.
- Logging in is :mod:`nbdtui.client.transport.ssh.login`'s: like OpenSSH,
  ``~/.ssh/config`` (Host aliases, HostName, User, Port, IdentityFile, IdentitiesOnly,
  ProxyJump, ProxyCommand, UserKnownHostsFile... whatever asyncssh supports), the agent
  (``SSH_AUTH_SOCK``) and the default keys.
- Host keys are checked against the ``known_hosts`` files of ssh_config (default
  ``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts``). A key that differs from the
  known one is always refused. A host with no known key is refused unless the endpoint
  says ``x-accept-new-host-key=yes`` or the host-key prompt of
  :mod:`nbdtui.client.transport.ssh.prompts` trusts it (``--ssh-accept-new``); the key is
  then appended to the user's ``known_hosts`` and the connection is made again (so a key
  swapped in between is caught as a mismatch).
- Passwords, keyboard-interactive answers and key passphrases are asked through
  :mod:`nbdtui.client.transport.ssh.prompts` (the terminal by default, only when stdin
  is one). The client API logs in with :func:`ssh_login` before the NBD handshake, whose
  timeout then does not include the time the user takes to type (the login's own
  timeout is paused while a prompt is open).
- asyncssh's AES-GCM is preferred to its ChaCha20-Poly1305 (twice the throughput)
  unless ssh_config sets ``Ciphers``.
- StrictHostKeyChecking and BatchMode of ssh_config are not read (asyncssh does not
  parse them): unknown keys are always refused unless explicitly accepted.

Every failure is a :class:`~nbdtui.errors.ConnectError` whose message starts ``ssh:``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import asyncssh

from nbdtui.client.transport.ssh.channel import ChannelTransport, open_channel
from nbdtui.client.transport.ssh.endpoint import SshRoute, ssh_route
from nbdtui.client.transport.ssh.login import (
    Login,
    SshClient,
    connect_error,
    hostport,
    resolve_login,
    trust_new_key,
)
from nbdtui.client.transport.stream import Opener, P, ProtocolFactory
from nbdtui.errors import ConnectError
from nbdtui.uri import Endpoint

__all__ = ["SshConnections", "ssh_connections", "ssh_login", "ssh_opener"]

_log = logging.getLogger("nbdtui.client.transport")

# asyncio reads the SSH socket into 256 KiB bytes objects. Until glibc's dynamic mmap
# threshold (initially 128 KiB) has been raised by the free of a larger block, each of
# them is a fresh mmap: page faults and munmap for every read, up to 0.7 s of system
# time per 256 MiB. Freeing one 1 MiB block raises the threshold at once (harmless
# elsewhere: glibc would raise it later by itself, other allocators ignore this).
_warm_up = bytearray(1 << 20)
del _warm_up

# ---- shared SSH connections -------------------------------------------------------------


class _Link:
    """One SSH connection (being made, or made) and the users holding it: channels, and
    :meth:`SshConnections.hold` blocks."""

    def __init__(self, key: tuple[object, ...], route: SshRoute) -> None:
        self.key = key
        self.route = route
        self.refs = 0
        self.task: asyncio.Task[asyncssh.SSHClientConnection] | None = None
        self.login: Login | None = None
        self.conn: asyncssh.SSHClientConnection | None = None
        self.lost = False
        self.prompt_watchers: list[Callable[[bool], None]] = []

    @property
    def usable(self) -> bool:
        if self.lost or self.task is None:
            return False
        if self.task.done():
            return not self.task.cancelled() and self.task.exception() is None
        return True

    @property
    def where(self) -> str:
        if self.login is not None:
            return self.login.where
        return hostport(self.route.host, self.route.port or 22)

    def prompting(self, active: bool) -> None:
        for watcher in list(self.prompt_watchers):
            watcher(active)


class SshConnections:
    """The SSH connections of one event loop, shared by every channel to the same login
    (user, host, port, ssh_config file); each closes when its last user lets go."""

    def __init__(self) -> None:
        self._links: dict[tuple[object, ...], _Link] = {}

    def count(self) -> int:
        """SSH connections open or being opened."""
        return sum(1 for link in self._links.values() if link.usable)

    def _acquire(self, endpoint: Endpoint) -> _Link:
        route = ssh_route(endpoint)
        path = os.path.expanduser("~/.ssh/config")
        config = path if os.path.isfile(path) else None
        key = (route.user, route.host, route.port, config)
        link = self._links.get(key)
        if link is None or not link.usable:
            link = _Link(key, route)
            link.task = asyncio.get_running_loop().create_task(self._connect(link, config))
            link.task.add_done_callback(_consume)
            self._links[key] = link
        elif link.conn is not None:
            _log.debug("SSH connection to %s reused (%d users)", link.where, link.refs + 1)
        link.refs += 1
        return link

    def _release(self, link: _Link) -> None:
        link.refs -= 1
        if link.refs > 0:
            return
        if self._links.get(link.key) is link:
            del self._links[link.key]
        if link.conn is not None:
            _log.debug("SSH connection to %s closed: its last user let go", link.where)
            link.conn.close()
        elif link.task is not None and not link.task.done():
            link.task.cancel()

    @contextlib.asynccontextmanager
    async def hold(self, endpoint: Endpoint, *, timeout: float | None) -> AsyncIterator[None]:
        """Log in to the endpoint's SSH host and keep the connection open inside the block.

        ``timeout`` bounds the login, *not counting* the time a password or passphrase
        prompt waits for the user. Raises ConnectError (or UriError)."""
        link = self._acquire(endpoint)
        try:
            assert link.task is not None
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(timeout) as deadline:
                    left: list[float] = []

                    def pause(active: bool) -> None:
                        when = deadline.when()
                        if active and when is not None:
                            left.append(max(when - loop.time(), 0.0))
                            deadline.reschedule(None)
                        elif not active and left:
                            deadline.reschedule(loop.time() + max(left.pop(), 1.0))

                    link.prompt_watchers.append(pause)
                    try:
                        await asyncio.shield(link.task)
                    finally:
                        link.prompt_watchers.remove(pause)
            except TimeoutError:
                raise ConnectError(
                    f"ssh: timed out logging in to {link.where} after {timeout:g} s"
                ) from None
            yield
        finally:
            self._release(link)

    async def open_channel(
        self, endpoint: Endpoint, protocol_factory: ProtocolFactory[P]
    ) -> tuple[ChannelTransport, P]:
        """Open a channel to the endpoint's NBD server; returns ``(transport, protocol)``."""
        link = self._acquire(endpoint)
        route = ssh_route(endpoint)  # this endpoint's far end (the link's is its first user's)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release(link)

        try:
            assert link.task is not None
            conn = await asyncio.shield(link.task)
            assert link.login is not None
            protocol = protocol_factory()
            transport = ChannelTransport(
                protocol, on_closed=release, extra={"ssh_target": route.target}
            )
            await open_channel(conn, route, transport, ssh_host=link.login.host)
            return transport, protocol
        except BaseException:
            release()
            raise

    async def _connect(self, link: _Link, config: str | None) -> asyncssh.SSHClientConnection:
        route = link.route
        loop = asyncio.get_running_loop()
        fallback = Login(route.host, route.port or 22, route.user or "?", [], None)
        try:
            link.login = login = await resolve_login(route, config)
        except Exception as exc:
            raise connect_error(exc, fallback, None) from None
        for attempt in (1, 2):
            client = SshClient(login, loop)
            client.on_lost = lambda: self._lost(link)
            client.on_prompt = link.prompting
            try:
                conn = await asyncssh.connect(
                    route.host,
                    route.port if route.port is not None else (),
                    username=route.user if route.user is not None else (),
                    config=[config] if config else None,
                    known_hosts=client.known,
                    client_factory=lambda client=client: client,
                    passphrase=client.passphrase,
                    encryption_algs=login.ciphers,
                )
            except Exception as exc:
                if (
                    attempt == 1
                    and isinstance(exc, asyncssh.HostKeyNotVerifiable)
                    and await trust_new_key(client, route)
                ):
                    continue  # the key is in known_hosts now: log in again
                raise connect_error(exc, login, client) from None
            link.conn = conn
            _log.debug("SSH connection to %s opened as %s", login.where, login.user)
            return conn
        raise AssertionError("unreachable")

    def _lost(self, link: _Link) -> None:
        link.lost = True
        if self._links.get(link.key) is link:  # not closed by us: by the server, or lost
            del self._links[link.key]
            if link.conn is not None:
                _log.debug("SSH connection to %s closed by the other end", link.where)

    async def close(self) -> None:
        """Close every SSH connection, whoever still uses it."""
        links, self._links = list(self._links.values()), {}
        for link in links:
            if link.conn is not None:
                _log.debug("SSH connection to %s closed (closing them all)", link.where)
                link.conn.close()
                with contextlib.suppress(Exception):
                    await link.conn.wait_closed()
            elif link.task is not None:
                link.task.cancel()


def _consume(task: asyncio.Task[asyncssh.SSHClientConnection]) -> None:
    if not task.cancelled():
        task.exception()


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SshConnections] = (
    weakref.WeakKeyDictionary()
)


def ssh_connections() -> SshConnections:
    """The SSH connections of the running event loop."""
    loop = asyncio.get_running_loop()
    cache = _PER_LOOP.get(loop)
    if cache is None:
        cache = _PER_LOOP[loop] = SshConnections()
    return cache


def ssh_login(endpoint: Endpoint, timeout: float | None) -> AbstractAsyncContextManager[None]:
    """``async with ssh_login(endpoint, timeout):`` log in to the SSH host of an
    ``nbd+ssh`` endpoint first (prompts do not count against ``timeout``) and keep that
    connection for the NBD connections opened inside the block."""
    return ssh_connections().hold(endpoint, timeout=timeout)


def ssh_opener(endpoint: Endpoint) -> Opener:
    """The opener of an ``nbd+ssh://`` endpoint: a channel through a shared SSH connection."""
    ssh_route(endpoint)  # a bad x- parameter is a UriError before anything connects

    async def open_ssh(factory: ProtocolFactory[P]) -> tuple[asyncio.Transport, P]:
        return await ssh_connections().open_channel(endpoint, factory)

    return open_ssh
