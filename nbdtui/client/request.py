"""A request: what is asked (:class:`Request`), what a connection keeps while it is on
the wire (:class:`PendingRequest`), and a WRITE payload or READ destination that is a
range of a file (:class:`FileRange`)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

from nbdtui.errors import NbdError
from nbdtui.proto.client_events import BlockStatus
from nbdtui.proto.constants import Command

# A READ payload of at least this size is received straight into the caller's buffer;
# smaller ones (and every other reply) go through the connection's scratch buffer,
# where a burst of them is received at once (see nbdtui.client.connection).
ZERO_COPY_MIN = 64 * 1024

_READ, _BLOCK_STATUS = int(Command.READ), int(Command.BLOCK_STATUS)


@dataclass(frozen=True, slots=True)
class FileRange:
    """A WRITE payload that is ``length`` bytes of a regular file, at ``offset`` in it
    (or, for the bulk engine, where the payload of a READ is to be written).

    ``file`` is open in binary mode (only its descriptor is used: its position does not
    matter and is not changed). Over a plain socket the bytes go from the file to the
    socket with the kernel's sendfile, never through a Python buffer; over other
    transports (TLS, SSH) they are read and written. The file must not shrink before
    the write is acknowledged. Slicing gives the corresponding sub-range, so a
    FileRange can stand for a buffer wherever payloads are split into requests.
    """

    file: BinaryIO
    offset: int
    length: int

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: slice) -> FileRange:
        start, stop, step = key.indices(self.length)
        if step != 1:
            raise ValueError("a FileRange slice must be contiguous")
        return FileRange(self.file, self.offset + start, max(stop - start, 0))

    def read(self) -> bytes:
        """The bytes (read now)."""
        data = os.pread(self.file.fileno(), self.length, self.offset)
        if len(data) != self.length:
            raise short_file_error(self, len(data))
        return data


Payload = bytes | bytearray | memoryview | FileRange


def short_file_error(payload: FileRange, got: int) -> NbdError:
    name = getattr(payload.file, "name", "the input file")
    return NbdError(
        f"{name} ended at {payload.offset + got} bytes while {payload.length} bytes at "
        f"offset {payload.offset} were being written from it (did it shrink?)"
    )


class Request(NamedTuple):
    """One NBD request as the export asks it of its group: the command, its range, its
    flags (``CommandFlag`` bits), the WRITE ``payload`` and where READ data goes
    (``dest``: ``length`` bytes, format ``B``; a :class:`FileRange` only on the bulk
    engine, see :mod:`nbdtui.client.bulk`).

    Immutable and read by field name only. A NamedTuple rather than a frozen dataclass
    because one is built per request on the hot path: a frozen dataclass's ``__init__``
    (one ``object.__setattr__`` per field) took 1.5 µs here, a NamedTuple 0.35 µs, of
    about 10 µs of CPU per random 4 KiB read.
    """

    command: int
    offset: int = 0
    length: int = 0
    flags: int = 0
    payload: Payload | None = None
    dest: memoryview | FileRange | None = None


class PendingRequest:
    """A request on the wire. ``future`` resolves with its result: ``None``, or for
    NBD_CMD_BLOCK_STATUS the list of :class:`~nbdtui.proto.client_events.BlockStatus`
    chunks received. ``sent_at`` is the event loop's time when it was queued."""

    __slots__ = (
        "command",
        "cookie",
        "dest",
        "future",
        "length",
        "offset",
        "sent_at",
        "small",
        "statuses",
    )

    def __init__(
        self,
        cookie: int,
        command: int,
        offset: int,
        length: int,
        dest: memoryview | None,
        future: asyncio.Future[list[BlockStatus] | None],
        sent_at: float,
    ) -> None:
        self.cookie = cookie
        self.command = command
        self.offset = offset
        self.length = length
        self.dest = dest
        self.future = future
        self.sent_at = sent_at
        self.statuses: list[BlockStatus] | None = [] if command == _BLOCK_STATUS else None
        # its reply is small (everything but a large read): see ZERO_COPY_MIN
        self.small = command != _READ or dest is None or length < ZERO_COPY_MIN

    def abandon(self) -> None:
        """The caller stops waiting: never touch its buffer again, drop the result."""
        self.dest = None
        if not self.future.done():
            self.future.cancel()
        else:  # its outcome arrived before the caller could look: nobody will
            consume(self.future)


def consume(future: asyncio.Future[Any]) -> None:
    """A done callback: retrieve the exception of a future nobody else may wait for (a
    request or task given up on), so that asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
