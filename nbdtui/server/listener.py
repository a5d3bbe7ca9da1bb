"""The embedded NBD server: asyncio around the sans-IO ``ServerConnection``.

    server = await serve({"disk": MemoryBackend(1 << 30)})
    print(server.uri)            # nbd://127.0.0.1:PORT/disk
    ...
    await server.close()         # or: async with await serve(...) as server:

It listens only on a loopback address or on a Unix socket in a private (0700)
directory.  Each client gets one protocol object and one task that answers its
requests in order; every connection to an export shares that export's backend,
which is what makes CAN_MULTI_CONN honest.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import stat
import tempfile
from collections import deque
from collections.abc import Mapping
from urllib.parse import quote

from nbdtui.errors import BackendError, Errno, NbdError
from nbdtui.proto.constants import (
    BASE_ALLOCATION,
    DEFAULT_BLOCK_MAX,
    DEFAULT_BLOCK_MIN,
    DEFAULT_BLOCK_PREFERRED,
    MAX_STRING,
    AllocationFlag,
)
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.server_connection import ServerConnection
from nbdtui.proto.server_events import (
    BlockStatusRequest,
    CacheRequest,
    ConnectionClosed,
    DisconnectRequest,
    FlushRequest,
    ReadRequest,
    Request,
    RequestRejected,
    ServerEvent,
    TransmissionStarted,
    TrimRequest,
    WriteRequest,
    WriteZeroesRequest,
)
from nbdtui.proto.server_transmission import MAX_EXTENTS
from nbdtui.proto.types import ExportInfo
from nbdtui.server.backend import Backend

log = logging.getLogger(__name__)

WRITABLE_FLAGS = (
    TF.HAS_FLAGS
    | TF.SEND_FLUSH
    | TF.SEND_FUA
    | TF.SEND_TRIM
    | TF.SEND_WRITE_ZEROES
    | TF.SEND_CACHE
    | TF.SEND_FAST_ZERO
    | TF.CAN_MULTI_CONN
)
READ_ONLY_FLAGS = TF.HAS_FLAGS | TF.READ_ONLY | TF.SEND_FLUSH | TF.SEND_CACHE | TF.CAN_MULTI_CONN
# Reading from a client pauses while this many bytes of requests wait to be answered.
QUEUE_HIGH_WATER = 64 * 1024 * 1024
QUEUE_LOW_WATER = 16 * 1024 * 1024
# Buffers at least this large are written on their own instead of being joined.
_BIG_BUFFER = 64 * 1024
_CLOSE_GRACE = 2.0


def export_info(name: str, backend: Backend, description: str | None = None) -> ExportInfo:
    """What the server announces for one backend (flags and block sizes)."""
    flags = READ_ONLY_FLAGS if backend.read_only else WRITABLE_FLAGS
    return ExportInfo(
        name=name,
        size=backend.size,
        flags=int(flags),
        description=description,
        block_minimum=DEFAULT_BLOCK_MIN,
        block_preferred=DEFAULT_BLOCK_PREFERRED,
        block_maximum=DEFAULT_BLOCK_MAX,
    )


def _cover(backend: Backend, offset: int, length: int) -> list[tuple[int, int, bool]]:
    """(offset, length, reads-as-zero) runs covering exactly the requested range."""
    runs: list[tuple[int, int, bool]] = []
    pos, end = offset, offset + length
    for ext_len, flags in backend.extents(offset, length):
        if pos >= end:
            break
        size = min(ext_len, end - pos)
        if size <= 0:
            break
        zero = bool(flags & AllocationFlag.ZERO)
        if runs and runs[-1][2] == zero:
            runs[-1] = (runs[-1][0], runs[-1][1] + size, zero)
        else:
            runs.append((pos, size, zero))
        pos += size
    if pos < end:  # the backend said less than asked: read the rest
        if runs and not runs[-1][2]:
            runs[-1] = (runs[-1][0], runs[-1][1] + end - pos, False)
        else:
            runs.append((pos, end - pos, False))
    return runs


class _Client(asyncio.Protocol):
    """One client connection: parses on arrival, answers in order in its own task."""

    def __init__(self, server: RunningServer):
        self.server = server
        self.conn = ServerConnection(
            server._infos, allow_list=server.allow_list, default_export=server.default_export
        )
        self.backend: Backend | None = None
        self.context_id: int | None = None
        self.transport: asyncio.Transport | None = None
        self.queue: deque[object] = deque()
        self.queued_bytes = 0
        self.reading_paused = False
        self.closing = False  # the server is shutting down: never resume reading
        self.lost = False
        self.wakeup = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._clients.add(self)
        self.server.connections_accepted += 1
        self._send()
        self.task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self._feed(self.conn.receive_data(data))

    def eof_received(self) -> bool:
        self._feed(self.conn.receive_data(b""))
        return True  # keep the transport: the task closes it after the last reply

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.writable.set()
        self.wakeup.set()
        self.server._clients.discard(self)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # -- input ----------------------------------------------------------------------

    def _feed(self, events: list[ServerEvent]) -> None:
        for event in events:
            if isinstance(event, TransmissionStarted):
                self.backend = self.server.exports[event.info.name]
                self.context_id = dict(event.meta_contexts).get(BASE_ALLOCATION)
                log.debug("client chose export %r via %s", event.info.name, event.via)
            elif isinstance(event, RequestRejected):
                log.debug("refused request: %s", event.message)
            elif isinstance(event, (Request, DisconnectRequest, ConnectionClosed)):
                if isinstance(event, ConnectionClosed) and event.error:
                    log.info("closing connection: %s", event.reason)
                self.queue.append(event)
                if isinstance(event, WriteRequest):
                    self.queued_bytes += event.length
        self._send()  # option replies and refusals are queued by the connection itself
        if self.queued_bytes > QUEUE_HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self.wakeup.set()

    def shutdown(self) -> None:
        """Stop reading; the task answers what is queued, then closes."""
        self.closing = True
        if self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()
        self.queue.append(ConnectionClosed("server is shutting down"))
        self.wakeup.set()

    # -- the task -------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.transport is not None
        try:
            while not self.lost:
                if not self.queue:
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                event = self.queue.popleft()
                if isinstance(event, ConnectionClosed):
                    break
                if isinstance(event, Request):
                    self._answer(event)
                    self._send()
                    if isinstance(event, WriteRequest):
                        self.queued_bytes -= event.length
                        low = self.queued_bytes < QUEUE_LOW_WATER
                        if self.reading_paused and low and not self.closing:
                            self.reading_paused = False
                            self.transport.resume_reading()
                    if not self.writable.is_set():
                        await self.writable.wait()
        except Exception:
            log.exception("NBD client task failed")
        finally:
            self.transport.close()

    def _send(self) -> None:
        buffers = self.conn.buffers_to_send()
        if not buffers or self.transport is None or self.transport.is_closing():
            return
        small = bytearray()
        for buf in buffers:
            if len(buf) < _BIG_BUFFER:
                small += buf
                continue
            if small:
                self.transport.write(small)
                small = bytearray()
            self.transport.write(buf)
        if small:
            self.transport.write(small)

    # -- requests -------------------------------------------------------------------

    def _answer(self, req: Request) -> None:
        """Run one request on the backend and queue its reply (an error reply when
        the backend raises: BackendError carries its errno, anything else is EIO)."""
        try:
            self._execute(req)
        except BackendError as exc:
            self.conn.send_error(req.cookie, exc.errno, str(exc))
        except Exception as exc:
            log.exception("backend failed on %s", type(req).__name__)
            self.conn.send_error(req.cookie, Errno.EIO, f"server error: {exc}")

    def _execute(self, req: Request) -> None:
        # Every backend call happens before the first reply byte is queued, so a
        # failure can still be answered with a clean error reply.
        conn, backend = self.conn, self.backend
        assert backend is not None
        if isinstance(req, ReadRequest):
            self._read(req)
            return
        if isinstance(req, BlockStatusRequest):
            self._block_status(req)
            return
        if isinstance(req, WriteRequest):
            backend.write(req.offset, req.data)
        elif isinstance(req, WriteZeroesRequest):
            if req.fast_zero and not backend.fast_zero:
                conn.send_error(req.cookie, Errno.ENOTSUP, "zeroing is not faster than writing")
                return
            backend.zero(req.offset, req.length, may_trim=not req.no_hole)
        elif isinstance(req, TrimRequest):
            backend.trim(req.offset, req.length)
        elif isinstance(req, FlushRequest):
            backend.flush()
        elif isinstance(req, CacheRequest):
            cache = getattr(backend, "cache", None)
            if cache is not None:
                cache(req.offset, req.length)
        if req.fua and not isinstance(req, FlushRequest):
            backend.flush()
        conn.send_reply(req.cookie)

    def _read(self, req: ReadRequest) -> None:
        backend, conn = self.backend, self.conn
        assert backend is not None
        if not conn.structured or req.df or req.length == 0:
            conn.send_read(req.cookie, backend.read(req.offset, req.length))
            return
        # Structured: holes travel as OFFSET_HOLE chunks, never as zeroes.
        pieces = [
            (off, size, None if zero else backend.read(off, size))
            for off, size, zero in _cover(backend, req.offset, req.length)
        ]
        for i, (off, size, data) in enumerate(pieces):
            done = i == len(pieces) - 1
            if data is None:
                conn.send_read_hole(req.cookie, off, size, done=done)
            else:
                conn.send_read_data(req.cookie, off, data, done=done)

    def _block_status(self, req: BlockStatusRequest) -> None:
        backend = self.backend
        assert backend is not None and self.context_id is not None
        out: list[tuple[int, int]] = []
        left = req.length
        for length, flags in backend.extents(req.offset, req.length)[:MAX_EXTENTS]:
            size = min(length, left)
            if size <= 0:
                break
            out.append((size, flags))
            left -= size
        if not out:
            out = [(req.length, 0)]  # "allocated, contents unknown" is always true
        if req.req_one:
            out = out[:1]
        self.conn.send_block_status(req.cookie, self.context_id, out)


class RunningServer:
    """A listening embedded server.  ``uri`` names the first export."""

    def __init__(
        self,
        exports: Mapping[str, Backend],
        descriptions: Mapping[str, str],
        *,
        allow_list: bool,
        default_export: str | None,
    ):
        self.exports = dict(exports)
        self.allow_list = allow_list
        self.default_export = default_export
        self._infos = {
            name: export_info(name, backend, descriptions.get(name))
            for name, backend in self.exports.items()
        }
        self._clients: set[_Client] = set()
        self.connections_accepted = 0
        self._server: asyncio.Server | None = None
        self._private_dir: str | None = None
        self._closed = False
        self.host: str | None = None
        self.port: int | None = None
        self.unix_path: str | None = None

    @property
    def export_names(self) -> tuple[str, ...]:
        return tuple(self.exports)

    @property
    def uri(self) -> str:
        return self.uri_for(next(iter(self.exports)))

    def uri_for(self, name: str) -> str:
        """The NBD URI of one export (the name is percent-encoded)."""
        if name not in self.exports:
            raise KeyError(name)
        path = "/" + quote(name, safe="")
        if self.unix_path is not None:
            return f"nbd+unix://{path}?socket={quote(self.unix_path, safe='/')}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"nbd://{host}:{self.port}{path}"

    def info(self, name: str) -> ExportInfo:
        """What the server announces for ``name`` (before SEND_DF, which depends on
        the client negotiating structured replies)."""
        return self._infos[name]

    @property
    def active_connections(self) -> int:
        return len(self._clients)

    async def close(self) -> None:
        """Stop listening, let clients get their queued replies, then disconnect them."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        clients = list(self._clients)
        for client in clients:
            client.shutdown()
        tasks = [c.task for c in clients if c.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=_CLOSE_GRACE)
            for task in late:
                task.cancel()
        for client in clients:
            if client.transport is not None:
                client.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)

    async def __aenter__(self) -> RunningServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise NbdError(
            f"the embedded server only listens on loopback; {host!r} is not a loopback address"
        )
    return str(address)


def _check_private_dir(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path)) or "."
    info = os.stat(parent)
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise NbdError(
            f"{parent} is not a private directory (owner only, mode 0700): "
            "refusing to put the server's Unix socket there"
        )


def _check_names(exports: Mapping[str, Backend]) -> None:
    if not exports:
        raise NbdError("the embedded server needs at least one export")
    for name in exports:
        if "\0" in name or len(name.encode("utf-8")) > MAX_STRING:
            raise NbdError(f"export name {name[:40]!r}… is not a valid NBD string")


async def serve(
    exports: Mapping[str, Backend],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    unix: bool = False,
    unix_path: str | os.PathLike[str] | None = None,
    descriptions: Mapping[str, str] | None = None,
    default_export: str | None = None,
    allow_list: bool = True,
) -> RunningServer:
    """Start serving ``exports`` and return once the socket listens.

    TCP on ``host`` (loopback only) and ``port`` (0 picks a free one), or a Unix
    socket when ``unix`` is true or ``unix_path`` is given: without a path the
    socket goes in a fresh ``tempfile.mkdtemp`` directory (mode 0700) that
    ``close()`` removes; a given path must lie in a directory only we can enter.
    The empty export name selects ``default_export`` (default: the first export).
    """
    _check_names(exports)
    if default_export is None and "" not in exports:
        default_export = next(iter(exports))
    server = RunningServer(
        exports,
        descriptions or {},
        allow_list=allow_list,
        default_export=default_export,
    )
    loop = asyncio.get_running_loop()
    if unix or unix_path is not None:
        if unix_path is None:
            server._private_dir = tempfile.mkdtemp(prefix="nbdtui-")
            path = os.path.join(server._private_dir, "nbd.sock")
        else:
            path = os.fspath(unix_path)
            _check_private_dir(path)
        try:
            server._server = await loop.create_unix_server(lambda: _Client(server), path)
        except OSError as exc:
            if server._private_dir is not None:
                shutil.rmtree(server._private_dir, ignore_errors=True)
            raise NbdError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
        server.unix_path = path
    else:
        address = _loopback(host)
        try:
            server._server = await loop.create_server(lambda: _Client(server), address, port)
        except OSError as exc:
            raise NbdError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from exc
        server.host = address
        server.port = server._server.sockets[0].getsockname()[1]
    return server
