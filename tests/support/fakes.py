"""Stand-ins shared by several test modules.

- :class:`Peer` and :class:`FakeNbdServers`: fake NBD servers -- real sockets
  (``asyncio.start_server``) that do a minimal fixed-newstyle handshake and then play a
  scenario that sends what no real server would (the ``fake_server`` fixture of
  ``tests/conftest.py`` starts them); with a handshake scenario (a
  :class:`HandshakePeer`) they play the handshake too: floods of option replies, broken
  transmission flags;
- :class:`MemoryExport` (with :class:`FakeInfo`): an in-memory stand-in for
  ``nbdtui.client.api.Export`` for unit tests of the editor core: sparse data (a dict of
  4 KiB pages; absent pages are holes reading as zeros), so a 1 TiB export costs nothing;
  it counts reads and can fail chosen reads;
- :class:`FakeExport` (with :class:`FakeStats`): a deterministic open export for the UI's
  snapshots (pilot tests use real servers).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from nbdtui.client.export import Extent
from nbdtui.errors import NotSupportedError, RequestError
from nbdtui.proto.client_events import Negotiated
from nbdtui.proto.constants import (
    IHAVEOPT,
    NBDMAGIC,
    OPTION_REPLY_MAGIC,
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    ChunkType,
    Command,
    Option,
    OptionReply,
    TransmissionFlag,
)
from nbdtui.proto.types import ExportInfo

# --------------------------------------------------------------------------- fake NBD peers

FAKE_SIZE = 1 << 20
FAKE_FLAGS = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH


class Peer:
    """The transmission phase of one client, seen from the fake server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self) -> tuple[int, int, int, int, int, bytes]:
        """(flags, type, cookie, offset, length, payload)"""
        header = await self.reader.readexactly(28)
        _, flags, kind, cookie, offset, length = struct.unpack(">IHHQQI", header)
        payload = await self.reader.readexactly(length) if kind == Command.WRITE else b""
        return flags, kind, cookie, offset, length, payload

    async def requests(self, n: int) -> list[tuple[int, int, int, int, int, bytes]]:
        return [await self.request() for _ in range(n)]

    def simple(self, cookie: int, error: int = 0, payload: bytes = b"") -> None:
        self.writer.write(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, error, cookie) + payload)

    def chunk(self, cookie: int, kind: int, payload: bytes = b"", flags: int = 0) -> None:
        header = struct.pack(">IHHQI", STRUCTURED_REPLY_MAGIC, flags, kind, cookie, len(payload))
        self.writer.write(header + payload)

    def send(self, data: bytes) -> None:
        self.writer.write(data)


Scenario = Callable[[Peer], Awaitable[None]]


class HandshakePeer:
    """The handshake of one client, seen from a fake server that plays it itself (a
    *handshake scenario*: ``FakeNbdServers.start(handshake=...)``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def greet(self) -> None:
        """The fixed-newstyle greeting (NO_ZEROES offered); reads the client's flags."""
        self.writer.write(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3))
        await self.reader.readexactly(4)

    async def option(self) -> tuple[int, bytes]:
        """The client's next option: (option, payload)."""
        _, option, length = struct.unpack(">QII", await self.reader.readexactly(16))
        return option, await self.reader.readexactly(length)

    def reply(self, option: int, reply: int, payload: bytes = b"") -> None:
        self.writer.write(
            struct.pack(">QIII", OPTION_REPLY_MAGIC, option, reply, len(payload)) + payload
        )

    async def until(self, wanted: int) -> bytes:
        """Answer the options before ``wanted`` as a plain server would (ACK to
        STRUCTURED_REPLY, ERR_UNSUP to the rest); the payload of ``wanted``."""
        while True:
            option, payload = await self.option()
            if option == wanted:
                return payload
            ok = option == Option.STRUCTURED_REPLY
            self.reply(option, OptionReply.ACK if ok else OptionReply.ERR_UNSUP)

    def go(self, size: int = FAKE_SIZE, flags: int = FAKE_FLAGS) -> None:
        """A successful reply to NBD_OPT_GO: NBD_INFO_EXPORT, then ACK."""
        self.reply(Option.GO, OptionReply.INFO, struct.pack(">HQH", 0, size, flags))
        self.reply(Option.GO, OptionReply.ACK)

    async def flood(self, message: bytes, *, batch: int = 1 << 16) -> None:
        """Send ``message`` again and again until the client goes away."""
        block = message * max(1, batch // len(message))
        while True:
            self.writer.write(block)
            await self.writer.drain()


HandshakeScenario = Callable[[HandshakePeer], Awaitable[None]]


async def _option_reply(
    writer: asyncio.StreamWriter, option: int, reply: int, payload: bytes = b""
) -> None:
    writer.write(struct.pack(">QIII", OPTION_REPLY_MAGIC, option, reply, len(payload)) + payload)


async def _handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, structured: bool
) -> None:
    writer.write(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3))  # FIXED_NEWSTYLE | NO_ZEROES
    await reader.readexactly(4)
    while True:
        _, option, length = struct.unpack(">QII", await reader.readexactly(16))
        await reader.readexactly(length)
        if option == Option.STRUCTURED_REPLY and structured:
            await _option_reply(writer, option, OptionReply.ACK)
        elif option == Option.GO:
            info = struct.pack(">HQH", 0, FAKE_SIZE, FAKE_FLAGS)
            await _option_reply(writer, option, OptionReply.INFO, info)
            await _option_reply(writer, option, OptionReply.ACK)
            return
        else:
            await _option_reply(writer, option, OptionReply.ERR_UNSUP)


class FakeNbdServers:
    """Fake NBD servers on 127.0.0.1: :meth:`start` one per scenario; :meth:`close` stops
    them all and returns the exceptions the scenarios raised (the test must fail on any)."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.errors: list[BaseException] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(
        self,
        scenario: Scenario | None = None,
        *,
        structured: bool = True,
        handshake: HandshakeScenario | None = None,
    ) -> str:
        """Serve ``scenario`` (run after the handshake with a :class:`Peer`); the URI.

        With ``handshake``, the fake plays that instead of its minimal handshake (with a
        :class:`HandshakePeer`), then ``scenario`` if any.
        """

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self.tasks.append(task)
            try:
                if handshake is None:
                    await _handshake(reader, writer, structured=structured)
                else:
                    await handshake(HandshakePeer(reader, writer))
                if scenario is not None:
                    await scenario(Peer(reader, writer))
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                pass  # the client went away, or the test is over
            except Exception as exc:  # pragma: no cover - reported by close()
                self.errors.append(exc)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.servers.append(server)
        return f"nbd://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    async def close(self) -> list[BaseException]:
        for server in self.servers:
            server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return self.errors


# --------------------------------------------------------------------------- hostile servers
# Scenarios of servers that flood, drip or break the rules (issue 13), shared by
# tests/integration/test_hostile_cli.py and `bench/soak.py --hostile`.

MiB = 1024 * 1024


def option_reply(option: int, reply: int, payload: bytes = b"") -> bytes:
    return struct.pack(">QIII", OPTION_REPLY_MAGIC, option, reply, len(payload)) + payload


def server_reply(name: bytes, description: bytes = b"") -> bytes:
    """An NBD_REP_SERVER reply to NBD_OPT_LIST."""
    payload = struct.pack(">I", len(name)) + name + description
    return option_reply(Option.LIST, OptionReply.SERVER, payload)


async def endless_list(peer: HandshakePeer) -> None:
    """NBD_OPT_LIST answered with NBD_REP_SERVER replies that never end."""
    await peer.greet()
    await peer.until(Option.LIST)
    await peer.flood(server_reply(b"x" * 8))


async def endless_contexts(peer: HandshakePeer) -> None:
    """NBD_OPT_LIST_META_CONTEXT (`nbdtui info`) answered without end."""
    await peer.greet()
    await peer.until(Option.LIST_META_CONTEXT)
    payload = struct.pack(">I", 0) + b"base:allocation"
    await peer.flood(option_reply(Option.LIST_META_CONTEXT, OptionReply.META_CONTEXT, payload))


def listing(
    count: int, *, stall_after: int | None = None, described: int | None = None
) -> HandshakeScenario:
    """``count`` exports; the list stops coming after ``stall_after`` of them, or the
    details after ``described`` exports (else the server supports neither NBD_OPT_INFO
    nor NBD_OPT_LIST_META_CONTEXT)."""

    async def play(peer: HandshakePeer) -> None:
        await peer.greet()
        await peer.until(Option.LIST)
        for i in range(count):
            if i == stall_after:
                await peer.writer.drain()
                await asyncio.sleep(3600)
            peer.writer.write(server_reply(f"export-{i:06d}".encode()))
        peer.reply(Option.LIST, OptionReply.ACK)
        asked = 0
        while True:
            option, _ = await peer.option()
            if option == Option.ABORT:
                return
            if option == Option.INFO and described is not None:
                if asked == described:
                    await asyncio.sleep(3600)
                asked += 1
                peer.reply(option, OptionReply.INFO, struct.pack(">HQH", 0, MiB, 1))
                peer.reply(option, OptionReply.ACK)
            else:
                peer.reply(option, OptionReply.ERR_UNSUP)

    return play


READ_ONLY_NO_HAS_FLAGS = int(TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_FLUSH)


async def read_only_without_has_flags(peer: HandshakePeer) -> None:
    """READ_ONLY (and SEND_FLUSH) set, HAS_FLAGS not: the spec says it must be."""
    await peer.greet()
    await peer.until(Option.GO)
    peer.go(flags=READ_ONLY_NO_HAS_FLAGS)


def plain_go(size: int) -> HandshakeScenario:
    """A ``size``-byte export and no metadata context (no block status)."""

    async def play(peer: HandshakePeer) -> None:
        await peer.greet()
        await peer.until(Option.GO)
        peer.go(size=size, flags=int(TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH))

    return play


def with_allocation(size: int) -> HandshakeScenario:
    """A ``size``-byte export with ``base:allocation`` agreed (context id 1)."""

    async def play(peer: HandshakePeer) -> None:
        await peer.greet()
        await peer.until(Option.SET_META_CONTEXT)
        context = struct.pack(">I", 1) + b"base:allocation"
        peer.reply(Option.SET_META_CONTEXT, OptionReply.META_CONTEXT, context)
        peer.reply(Option.SET_META_CONTEXT, OptionReply.ACK)
        await peer.until(Option.GO)
        peer.go(size=size, flags=int(TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH))

    return play


async def drip(peer: Peer) -> None:
    """Answers the first READ with the header of a data chunk, then a byte of its
    payload every 0.3 s."""
    _, kind, cookie, offset, length, _ = await peer.request()
    assert kind == Command.READ
    header = struct.pack(
        ">IHHQIQ", STRUCTURED_REPLY_MAGIC, 1, ChunkType.OFFSET_DATA, cookie, 8 + length, offset
    )
    peer.send(header)
    while True:
        peer.send(b"\0")
        await peer.writer.drain()
        await asyncio.sleep(0.3)


async def sip(peer: Peer) -> None:
    """Takes the payload of the first WRITE a byte every 0.3 s, and never replies."""
    header = await peer.reader.readexactly(28)
    _, _, kind, _, _, _ = struct.unpack(">IHHQQI", header)
    assert kind == Command.WRITE
    while True:
        await peer.reader.readexactly(1)
        await asyncio.sleep(0.3)


def with_contexts(size: int, ids: list[int]) -> HandshakeScenario:
    """A ``size``-byte export that agrees to every meta context the client asks for
    (ids 1, 2... in the order asked), whatever its name; ``ids`` is filled with them
    (for :func:`tiny_extents`)."""

    async def play(peer: HandshakePeer) -> None:
        await peer.greet()
        payload = await peer.until(Option.SET_META_CONTEXT)
        (name_length,) = struct.unpack_from(">I", payload)
        at = 4 + name_length
        (count,) = struct.unpack_from(">I", payload, at)
        at += 4
        ids.clear()
        for ident in range(1, count + 1):
            (n,) = struct.unpack_from(">I", payload, at)
            name = payload[at + 4 : at + 4 + n]
            at += 4 + n
            reply = struct.pack(">I", ident) + name
            peer.reply(Option.SET_META_CONTEXT, OptionReply.META_CONTEXT, reply)
            ids.append(ident)
        peer.reply(Option.SET_META_CONTEXT, OptionReply.ACK)
        await peer.until(Option.GO)
        peer.go(size=size, flags=int(TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH))

    return play


def tiny_extents(run: int = 1, ids: list[int] | None = None) -> Scenario:
    """Block status in 1-byte extents, as many as a chunk may hold (2**21, 16 MiB),
    their flags alternating between 0 (data) and 3 (hole, zero) every ``run`` bytes of
    the export, one chunk for each context of ``ids`` (default: context 1); READs answered with
    zeroes."""
    pair = struct.pack(">II", 1, 0) * run + struct.pack(">II", 1, 3) * run
    body = pair * (2**21 // len(pair) * 8 + 2)  # (from any phase of a pair on)
    contexts = [1] if ids is None else ids

    async def play(peer: Peer) -> None:
        while True:
            _, kind, cookie, offset, length, _ = await peer.request()
            if kind == Command.DISC:
                return
            if kind == Command.BLOCK_STATUS:
                n = min(length, 2**21)
                at = 8 * (offset % (2 * run))  # the flags are those of the offset
                for ident in contexts:
                    payload = struct.pack(">I", ident) + body[at : at + 8 * n]
                    done = int(ident == contexts[-1])
                    peer.chunk(cookie, ChunkType.BLOCK_STATUS, payload, flags=done)
                    await peer.writer.drain()
            elif kind == Command.READ:
                payload = struct.pack(">Q", offset) + bytes(length)
                peer.chunk(cookie, ChunkType.OFFSET_DATA, payload, flags=1)
            else:
                peer.simple(cookie)
            await peer.writer.drain()

    return play


# --------------------------------------------------------------------------- editor core

PAGE = 4096


@dataclass(frozen=True)
class FakeInfo:
    read_only: bool = False
    can_flush: bool = True
    can_trim: bool = True
    can_zero: bool = True
    block_minimum: int | None = None


@dataclass(frozen=True)
class FakeEndpoint:
    uri: str = "nbd://fake/mem"
    display: str = "fake/mem"


@dataclass
class MemoryExport:
    size: int
    name: str = "mem"
    info: FakeInfo = field(default_factory=FakeInfo)
    endpoint: FakeEndpoint = field(default_factory=FakeEndpoint)
    block_status: bool = True
    pages: dict[int, bytearray] = field(default_factory=dict)
    reads: list[tuple[int, int]] = field(default_factory=list)
    bad: set[int] = field(default_factory=set)  # offsets whose reads fail with EIO
    fail_writes: bool = False
    flushes: int = 0

    def put(self, offset: int, data: bytes) -> None:
        for i, b in enumerate(data):
            page = self.pages.setdefault((offset + i) // PAGE, bytearray(PAGE))
            page[(offset + i) % PAGE] = b

    def get(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        for pno in range(offset // PAGE, (offset + length - 1) // PAGE + 1 if length else 0):
            page = self.pages.get(pno)
            if page is None:
                continue
            lo, hi = max(offset, pno * PAGE), min(offset + length, (pno + 1) * PAGE)
            out[lo - offset : hi - offset] = page[lo - pno * PAGE : hi - pno * PAGE]
        return bytes(out)

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise RequestError(22, command="read")

    async def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        self.reads.append((offset, length))
        if any(offset <= b < offset + length for b in self.bad):
            raise RequestError(5, "bad sector", command="read")
        return self.get(offset, length)

    async def write(self, offset: int, data: bytes, fua: bool = False) -> None:
        self._check(offset, len(data))
        if self.fail_writes:
            raise RequestError(5, "injected", command="write")
        self.put(offset, data)

    async def flush(self) -> None:
        self.flushes += 1

    async def zero(self, offset: int, length: int) -> None:
        self._check(offset, length)
        self.put(offset, bytes(length))

    async def trim(self, offset: int, length: int) -> None:
        await self.zero(offset, length)

    async def iter_extents(self, offset: int, length: int) -> AsyncIterator[Extent]:
        for extent in await self.extents(offset, length):
            yield extent

    async def extents(self, offset: int, length: int) -> list[Extent]:
        if not self.block_status:
            raise NotSupportedError("no block status")
        self._check(offset, length)
        out: list[Extent] = []
        pos, end = offset, offset + length
        while pos < end:
            flags = 0 if pos // PAGE in self.pages else 3
            nxt = min(end, (pos // PAGE + 1) * PAGE)
            if out and out[-1].flags == flags:
                last = out.pop()
                out.append(Extent(last.offset, nxt - last.offset, flags))
            else:
                out.append(Extent(pos, nxt - pos, flags))
            # Jump over long runs of holes without walking every page.
            if flags == 3:
                later = [p for p in self.pages if p * PAGE >= nxt]
                stop = min([end, *(p * PAGE for p in later)])
                if stop > nxt:
                    last = out.pop()
                    out.append(Extent(last.offset, stop - last.offset, flags))
                    nxt = stop
            pos = nxt
        return out


# --------------------------------------------------------------------------- UI snapshots


@dataclass
class FakeStats:
    endpoint: str
    export: str
    state: str = "ready"
    in_flight: int = 0
    window: int = 16
    bytes_read: int = 0
    bytes_written: int = 0
    errors: int = 0
    requests: int = 0
    error: str | None = None


SNAPSHOT_FLAGS = (
    TransmissionFlag.HAS_FLAGS
    | TransmissionFlag.SEND_FLUSH
    | TransmissionFlag.SEND_FUA
    | TransmissionFlag.SEND_TRIM
    | TransmissionFlag.SEND_WRITE_ZEROES
)


@dataclass
class FakeExport:
    name: str = "disk"
    size: int = 64 * 1024 * 1024
    flags: int = int(SNAPSHOT_FLAGS)
    extents_list: list[Extent] = field(default_factory=list)
    stats: list[FakeStats] = field(default_factory=list)
    closed: bool = False

    @property
    def info(self) -> ExportInfo:
        return ExportInfo(self.name, self.size, self.flags, "demo disk", 1, 4096, 33554432)

    @property
    def negotiated(self) -> Negotiated:
        return Negotiated(
            self.info,
            "newstyle-fixed",
            True,
            meta_contexts=(("base:allocation", 1),),
            available_contexts=("base:allocation",),
        )

    async def extents(self, offset: int, length: int) -> list[Extent]:
        end = offset + length
        return [e for e in self.extents_list if e.offset < end and e.offset + e.length > offset]

    async def iter_extents(self, offset: int, length: int) -> AsyncIterator[Extent]:
        for extent in await self.extents(offset, length):
            yield extent

    async def allocation(self, offset: int, length: int) -> list[Extent]:
        """One reply: every extent, clipped to the range."""
        end = offset + length
        found = await self.extents(offset, length)
        return [
            Extent(max(e.offset, offset), min(e.end, end) - max(e.offset, offset), e.flags)
            for e in found
        ] or [Extent(offset, length, 0)]

    def connection_stats(self) -> list[FakeStats]:
        return self.stats

    async def close(self) -> None:
        self.closed = True
