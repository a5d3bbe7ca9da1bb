"""One NBD connection's SSH channel: opening it, and seeing it as an ``asyncio.Transport``.

:func:`open_channel` opens a *direct channel* of an SSH connection to the NBD server of
an :class:`~nbdtui.client.transport.ssh.endpoint.SshRoute`: to the remote Unix socket
(``direct-streamlocal``, what ``ssh -L LOCAL:/remote.sock`` uses) or to ``HOST:PORT`` as
the SSH host sees it (``direct-tcpip``). A channel the server refuses becomes a
:class:`~nbdtui.errors.ConnectError` starting ``ssh:`` (for a remote socket, the reason
is asked over SFTP: missing, not a socket).

:class:`ChannelTransport` has two faces. To asyncssh it is the *session* of a direct
channel (``connection_made(chan)``, ``data_received(data, datatype)``,
``eof_received``, ``connection_lost``, ``pause_writing``/``resume_writing``). To
nbdtui's :class:`~nbdtui.client.transport.stream.StreamProtocol` (and to asyncio's TLS layer,
``loop.start_tls``) it is an ``asyncio.Transport``: ``write``, ``writelines``,
``write_eof``, ``close``, ``abort``, ``is_closing``, ``get_extra_info``,
``pause_reading``/``resume_reading``, write-buffer limits, ``set_protocol``/
``get_protocol``. Incoming bytes go to a ``BufferedProtocol`` through its
``get_buffer``/``buffer_updated`` (as asyncio's own transports do), otherwise to
``data_received``.

This module imports asyncssh: only :mod:`nbdtui.client.transport.ssh.tunnel` imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import asyncssh

from nbdtui.client.transport.ssh.endpoint import SshRoute
from nbdtui.errors import ConnectError

__all__ = ["ChannelTransport", "open_channel"]

# The channel's send buffer above which the protocol is asked to pause writing.
WRITE_HIGH_WATER = 1 << 20
WRITE_LOW_WATER = 256 * 1024

# Channel flow control: the receive window the server may fill before we acknowledge,
# and the largest data packet we accept. Packets above glibc's mmap threshold (128 KiB)
# cost page faults for every buffer asyncssh allocates; 64 KiB measured best.
CHANNEL_WINDOW = 4 * 1024 * 1024
CHANNEL_MAX_PACKET = 64 * 1024
DIAGNOSE_TIMEOUT = 3.0

Channel = asyncssh.SSHTCPChannel[bytes] | asyncssh.SSHUNIXChannel[bytes]

_OPEN_REASONS = {
    asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED: "administratively prohibited",
    asyncssh.OPEN_CONNECT_FAILED: "open failed",
    asyncssh.OPEN_UNKNOWN_CHANNEL_TYPE: "not supported by the server",
    asyncssh.OPEN_RESOURCE_SHORTAGE: "resource shortage",
}


async def open_channel(
    conn: asyncssh.SSHClientConnection,
    route: SshRoute,
    transport: ChannelTransport,
    *,
    ssh_host: str,
) -> None:
    """Open the channel of ``route`` on ``conn`` with ``transport`` as its session.

    ``ssh_host`` names the SSH host in messages. Raises ConnectError when the server
    refuses the channel."""
    try:
        if route.socket is not None:
            await conn.create_unix_connection(
                lambda: transport,
                route.socket,
                window=CHANNEL_WINDOW,
                max_pktsize=CHANNEL_MAX_PACKET,
            )
        else:
            await conn.create_connection(
                lambda: transport,
                route.nbd_host,
                route.nbd_port,
                window=CHANNEL_WINDOW,
                max_pktsize=CHANNEL_MAX_PACKET,
            )
    except asyncssh.ChannelOpenError as exc:
        raise await _channel_error(conn, route, ssh_host, exc) from None


async def _diagnose_socket(conn: asyncssh.SSHClientConnection, path: str) -> str | None:
    """Why the server could not open a remote Unix socket, asked over SFTP (no shell)."""
    try:
        async with asyncio.timeout(DIAGNOSE_TIMEOUT):
            async with conn.start_sftp_client() as sftp:
                attrs = await sftp.stat(path)
    except asyncssh.SFTPNoSuchFile:
        return "No such file or directory"
    except asyncssh.SFTPPermissionDenied:
        return "Permission denied"
    except (asyncssh.Error, OSError, TimeoutError):
        return None
    if attrs.permissions is not None and not stat.S_ISSOCK(attrs.permissions):
        return "not a socket"
    return "nothing accepts connections on it, or no permission"


async def _channel_error(
    conn: asyncssh.SSHClientConnection,
    route: SshRoute,
    ssh_host: str,
    exc: asyncssh.ChannelOpenError,
) -> ConnectError:
    what = _OPEN_REASONS.get(exc.code, "open failed")
    detail: str | None
    if route.socket is not None:
        where = f"remote socket {route.socket} on {ssh_host}"
        if exc.code == asyncssh.OPEN_CONNECT_FAILED:
            detail = await _diagnose_socket(conn, route.socket)
            reason = exc.reason if exc.reason and exc.reason != "open failed" else None
            detail = detail or reason
        elif exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
            detail = "is AllowStreamLocalForwarding off in sshd_config?"
        else:
            detail = exc.reason or None
    else:
        where = f"{route.target} as seen from {ssh_host}"
        if exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
            detail = "is AllowTcpForwarding off in sshd_config?"
        else:
            detail = exc.reason or None
    return ConnectError(f"ssh: {where}: {what}" + (f" ({detail})" if detail else ""))


class ChannelTransport(
    asyncio.Transport, asyncssh.SSHTCPSession[bytes], asyncssh.SSHUNIXSession[bytes]
):
    """An SSH channel carrying one NBD connection; see the module documentation.

    ``on_closed`` is called once, as soon as the channel is closed by us (``close``,
    ``abort``) or is gone (closed by the server, or with the SSH connection).
    """

    _start_tls_compatible = True  # loop.start_tls() accepts this transport

    def __init__(
        self,
        protocol: asyncio.BaseProtocol,
        *,
        on_closed: Callable[[], None] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        self._info: dict[str, object] = dict(extra or {})
        self._protocol: asyncio.BaseProtocol = protocol
        # the protocol again, as what it is (exactly one of them is set; set_protocol)
        self._buffered: asyncio.BufferedProtocol | None = None
        self._streaming: asyncio.Protocol | None = None
        self.set_protocol(protocol)
        self._chan: Channel | None = None
        self._on_closed = on_closed
        self._closing = False
        self._lost = False
        self._reading = True
        self._high = WRITE_HIGH_WATER
        self._low = WRITE_LOW_WATER

    # ---- asyncssh session face ---------------------------------------------------------

    def connection_made(self, chan: Channel) -> None:
        self._chan = chan
        chan.set_write_buffer_limits(self._high, self._low)
        self._protocol.connection_made(self)

    def session_started(self) -> None:
        pass

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        protocol = self._buffered
        if protocol is None:
            assert self._streaming is not None
            self._streaming.data_received(data)
            return
        view = memoryview(data)
        while view:
            buf = memoryview(protocol.get_buffer(len(view)))
            n = min(len(buf), len(view))
            if n == 0:
                raise RuntimeError("get_buffer() returned an empty buffer")
            buf[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]

    def eof_received(self) -> bool:
        protocol = self._buffered or self._streaming
        assert protocol is not None
        return bool(protocol.eof_received())  # False: asyncssh closes the channel

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._release()
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    def _release(self) -> None:
        callback, self._on_closed = self._on_closed, None
        if callback is not None:
            callback()

    # ---- asyncio.Transport face ---------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._chan is None:
            return  # like asyncio's transports: writes after close are dropped
        if isinstance(data, memoryview):
            data = data.cast("B") if data.format != "B" or data.ndim != 1 else data
        try:  # noqa: SIM105 (the hot path: try costs nothing in 3.11)
            self._chan.write(data)  # asyncssh copies it into its send buffer
        except OSError:
            pass  # the channel is closing: connection_lost follows, as with asyncio's own

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self._closing and self._chan is not None:
            with contextlib.suppress(OSError):
                self._chan.write_eof()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is buffered, then close the channel (asyncssh flushes first)."""
        if self._closing:
            return
        self._closing = True
        if self._chan is not None:
            self._chan.close()
        self._release()  # the last channel of an SSH connection closes it

    def abort(self) -> None:
        if self._lost:
            return
        self._closing = True
        if self._chan is not None:
            self._chan.abort()
        self._release()

    def _force_close(self, exc: BaseException | None) -> None:
        # asyncio's TLS layer (sslproto) calls this on the transport under it when the
        # TLS session fails; without it a refused certificate became a traceback.
        self.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._info:
            return self._info[name]
        if self._chan is not None:
            return self._chan.get_extra_info(name, default)
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if isinstance(protocol, asyncio.BufferedProtocol):
            self._buffered, self._streaming = protocol, None
        elif isinstance(protocol, asyncio.Protocol):
            self._buffered, self._streaming = None, protocol
        else:
            raise TypeError(f"an SSH channel carries a stream, not a {type(protocol).__name__}")
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._reading and self._chan is not None and not self._closing:
            self._reading = False
            self._chan.pause_reading()

    def resume_reading(self) -> None:
        if not self._reading and self._chan is not None and not self._closing:
            self._reading = True
            self._chan.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = WRITE_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        if self._chan is not None:
            self._chan.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def get_write_buffer_size(self) -> int:
        return self._chan.get_write_buffer_size() if self._chan is not None else 0

    def __repr__(self) -> str:
        state = "closed" if self._lost else "closing" if self._closing else "open"
        return f"<ChannelTransport {state} {self._info.get('ssh_target', '')}>"
