"""Payload to and from files: a :class:`~nbdtui.client.request.FileRange` sent to a
socket (sendfile, or read and written where the transport allows no sendfile), READ
payload written into a file (spliced from the socket, or received and written), holes
written as zeroes. Used by both I/O engines: the event-loop
:class:`~nbdtui.client.connection.Connection` and the threads of :mod:`nbdtui.client.bulk`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import io
import os
import socket
from collections.abc import Callable

from nbdtui.client.request import FileRange, short_file_error

ZEROES = memoryview(bytes(1 << 20))  # zeroes to copy from (holes)
PIPE_SIZE = 1 << 20  # of the pipe READ payload is spliced through (at most, by default)


def fill_zero(dest: memoryview, start: int, length: int) -> None:
    """Zeroes into ``dest[start : start + length]``."""
    end = start + length
    while start < end:
        n = min(end - start, len(ZEROES))
        dest[start : start + n] = ZEROES[:n]
        start += n


def pwrite_all(fd: int, data: memoryview | bytes, at: int) -> None:
    """Write all of ``data`` into ``fd`` at ``at``."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, at)
        view, at = view[n:], at + n


def write_zeroes(dest: FileRange, at: int, length: int) -> None:
    """A hole: zeroes written at ``at`` in ``dest`` (the file may hold other bytes
    there)."""
    fd, pos = dest.file.fileno(), dest.offset + at
    while length:
        n = min(length, len(ZEROES))
        pwrite_all(fd, ZEROES[:n], pos)
        length, pos = length - n, pos + n


# ---- sending a FileRange ---------------------------------------------------------------


def own_descriptor(payload: FileRange) -> FileRange:
    """``payload`` read through a duplicate of its file's descriptor, which the caller
    closes (``.file.close()``) once done with it: a send that outlives the caller who
    owns the file (a cancelled write whose payload must still go out whole) never
    touches a descriptor closed, or reused, meanwhile."""
    own = io.FileIO(os.dup(payload.file.fileno()), "rb")
    own.name = getattr(payload.file, "name", "the input file")
    return FileRange(own, payload.offset, payload.length)


async def send_file(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.WriteTransport,
    payload: FileRange,
    *,
    sendfile: bool,
) -> None:
    """Send ``payload`` on an asyncio transport: with the kernel's sendfile when
    ``sendfile`` and the transport allows it, else read and written. Raises an
    :class:`~nbdtui.errors.NbdError` when the file ended early, OSError when the
    socket failed; returns without sending when the transport is closing."""
    sent: int | None = None
    if sendfile:
        try:
            sent = await loop.sendfile(
                transport, payload.file, payload.offset, payload.length, fallback=False
            )
        except RuntimeError:
            # No sendfile on this transport (TLS, SSH...): nothing was sent.
            if transport.is_closing():
                return  # the connection is going: its requests fail with it
    if sent is None:
        data = payload.read()
        transport.write(data)
        sent = len(data)
    if sent != payload.length:
        raise short_file_error(payload, sent)


def send_file_blocking(sock: socket.socket, payload: FileRange) -> None:
    """The bytes of ``payload``, from the page cache to a blocking socket."""
    fd, out = payload.file.fileno(), sock.fileno()
    pos, left = payload.offset, payload.length
    while left:
        n = os.sendfile(out, fd, pos, left)
        if not n:  # the file ended early: the stream is broken mid-payload
            raise short_file_error(payload, pos - payload.offset)
        pos += n
        left -= n


# ---- receiving into a file ---------------------------------------------------------------


def receive_exactly(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from a blocking socket: with MSG_WAITALL, in one call (one release
    of the GIL, one wake-up of the thread) unless a signal or the timeout cuts it short."""
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:], 0, socket.MSG_WAITALL)
        if not k:
            raise EOFError
        got += k


class IntoFile:
    """A thread's way of receiving READ payload into a file: spliced from the socket
    into a pipe and from the pipe into the file (no copy through user space), or, where
    the file refuses splice (or ``splice`` is False: a TLS stream, whose socket carries
    the encrypted bytes), received with ``receive`` into one buffer of the thread's,
    reused (its lines stay in the cache, no fresh pages per request), and written."""

    def __init__(
        self,
        receive: Callable[[socket.socket, memoryview], None] = receive_exactly,
        *,
        splice: bool = True,
        buffer_size: int = PIPE_SIZE,
    ) -> None:
        self._pipe: tuple[int, int] | None = None
        self._capacity = 0  # of the pipe
        self._splice = splice and hasattr(os, "splice")
        self._receive = receive
        self._buffer_size = buffer_size
        self._buffer: memoryview | None = None

    def receive(self, sock: socket.socket, dest: FileRange, at: int, length: int) -> None:
        fd, pos = dest.file.fileno(), dest.offset + at
        while length and self._splice:
            if self._pipe is None:
                self._pipe, self._capacity = _pipe()
            r, w = self._pipe
            n = os.splice(sock.fileno(), w, min(length, self._capacity))
            if not n:
                raise EOFError
            length -= n
            try:
                while n:
                    k = os.splice(r, fd, n, offset_dst=pos)
                    n, pos = n - k, pos + k
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                self._splice = False  # this file takes no splice: what is in the pipe
                while n:  # goes the long way, and all that comes after it
                    data = os.read(r, n)
                    pwrite_all(fd, memoryview(data), pos)
                    n, pos = n - len(data), pos + len(data)
        while length:
            if self._buffer is None:
                self._buffer = memoryview(bytearray(self._buffer_size))
            view = self._buffer[: min(length, self._buffer_size)]
            self._receive(sock, view)
            pwrite_all(fd, view, pos)
            length, pos = length - len(view), pos + len(view)

    def close(self) -> None:
        if self._pipe is not None:
            for end in self._pipe:
                os.close(end)
            self._pipe = None


def _pipe() -> tuple[tuple[int, int], int]:
    """A pipe, and how many bytes it holds."""
    r, w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # the default (64 KiB) works, with more calls
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return (r, w), fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
