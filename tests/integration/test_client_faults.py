"""Broken servers and unreachable endpoints: every waiter fails with a clear error.

The misbehaving peers are the fake servers of tests/support/fakes.py (the ``fake_server``
fixture): real sockets that do a minimal fixed-newstyle handshake and then send what no
real server would.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

import nbdtui
from nbdtui.client import Pool, list_exports, probe
from nbdtui.errors import (
    ConnectError,
    ConnectionLostError,
    Errno,
    ExportNotFoundError,
    NotSupportedError,
    ProtocolError,
    RequestError,
)
from nbdtui.proto.constants import (
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    ChunkType,
    Command,
    ReplyFlag,
)
from tests.support.fakes import Peer


async def _many_reads(export, n: int):
    return await asyncio.gather(
        *(export.read(i * 512, 512) for i in range(n)), return_exceptions=True
    )


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, 0, 0xDEAD), "reply for unknown cookie 0xdead"),
        (b"\x12\x34\x56\x78" + bytes(12), "bad reply magic 0x12345678"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "bad reply magic 0x48545450"),
    ],
)
async def test_garbage_fails_every_waiter_with_protocol_error(fake_server, garbage, message):
    async def scenario(peer: Peer) -> None:
        reqs = await peer.requests(4)
        peer.chunk(reqs[0][2], ChunkType.OFFSET_DATA, struct.pack(">Q", 0) + bytes(512), 1)
        peer.send(garbage)
        await asyncio.sleep(1)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool(), window=4) as export:
        # 4 in flight, 6 more waiting for a window slot: all must fail, none hang
        results = await asyncio.wait_for(_many_reads(export, 10), 5)
        assert results[0] == bytes(512)
        for r in results[1:]:
            assert isinstance(r, ProtocolError), r
            assert message in str(r) and "127.0.0.1" in str(r)
        with pytest.raises(ProtocolError, match=message):  # later requests fail at once
            await export.read(0, 1)
        [stats] = export.connection_stats()
        assert stats.state == "closed" and message in stats.error


async def test_impossible_chunk_ends_the_connection(fake_server):
    async def scenario(peer: Peer) -> None:
        (_, _, cookie, *_), *_ = await peer.requests(2)
        peer.chunk(cookie, ChunkType.OFFSET_DATA, struct.pack(">Q", 4096) + b"xx", 1)
        await asyncio.sleep(1)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool()) as export:
        results = await asyncio.wait_for(_many_reads(export, 2), 5)
        assert all(isinstance(r, ProtocolError) for r in results)
        assert "outside the range" in str(results[0])


async def test_simple_success_reply_to_read_with_structured_replies(fake_server):
    async def scenario(peer: Peer) -> None:
        ((_, _, cookie, *_),) = await peer.requests(1)
        peer.simple(cookie, 0, bytes(512))
        await asyncio.sleep(1)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool()) as export:
        with pytest.raises(ProtocolError, match="simple reply"):
            await asyncio.wait_for(export.read(0, 512), 5)


async def test_server_closing_with_requests_in_flight(fake_server):
    async def scenario(peer: Peer) -> None:
        await peer.requests(3)
        peer.writer.transport.abort()

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool(), window=3) as export:
        results = await asyncio.wait_for(_many_reads(export, 8), 5)
        assert all(isinstance(r, ConnectionLostError) for r in results), results
        assert "lost with 3 requests in flight" in str(results[0])
        with pytest.raises(ConnectionLostError):
            await export.write(0, b"x")


async def test_cancel_read_with_payload_half_received(fake_server):
    """The server sends half of a chunk, the reader gives up, the rest still arrives:
    it must be discarded, not written into the abandoned buffer, and the next replies
    must still be parsed correctly."""
    half_sent = asyncio.Event()
    go_on = asyncio.Event()

    async def scenario(peer: Peer) -> None:
        ((_, _, c1, *_),) = await peer.requests(1)
        payload = bytes(range(256)) * 16
        header = struct.pack(">IHHQIQ", STRUCTURED_REPLY_MAGIC, 1, 1, c1, 8 + 4096, 0)
        peer.send(header + payload[:1000])
        await peer.writer.drain()
        half_sent.set()
        await go_on.wait()
        peer.send(payload[1000:])
        ((_, _, c2, off2, len2, _),) = await peer.requests(1)
        peer.chunk(c2, ChunkType.OFFSET_DATA, struct.pack(">Q", off2) + b"B" * len2, 1)
        ((_, _, c3, _, _, data),) = await peer.requests(1)
        assert data == b"written"
        peer.simple(c3)
        await asyncio.sleep(0.5)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool(), connections=1) as export:
        [conn] = export._group.connections
        buf = bytearray(b"\xaa" * 4096)
        task = asyncio.create_task(export.read_into(0, buf))
        await asyncio.wait_for(half_sent.wait(), 5)
        while conn.bytes_read < 1000:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert buf[:1000] == (bytes(range(256)) * 4)[:1000]
        snapshot = bytes(buf)
        assert conn.in_flight == 1  # the cookie stays reserved
        go_on.set()
        assert await asyncio.wait_for(export.read(8, 100), 5) == b"B" * 100
        assert bytes(buf) == snapshot  # the rest went to scratch
        assert conn.in_flight == 0
        await export.write(0, b"written")


async def test_cancel_large_read_received_in_place(fake_server):
    """The same for a read large enough to be received straight into the caller's
    buffer: once the cancellation is delivered the rest of the payload goes elsewhere,
    even though the receive had already started filling that buffer."""
    size, first = 256 * 1024, 100 * 1024
    payload = bytes(range(256)) * (size // 256)
    go_on = asyncio.Event()

    async def scenario(peer: Peer) -> None:
        ((_, _, c1, *_),) = await peer.requests(1)
        header = struct.pack(">IHHQIQ", STRUCTURED_REPLY_MAGIC, 1, 1, c1, 8 + size, 0)
        peer.send(header + payload[:first])
        await peer.writer.drain()
        await go_on.wait()
        peer.send(payload[first:])
        ((_, _, c2, off2, len2, _),) = await peer.requests(1)
        peer.chunk(c2, ChunkType.OFFSET_DATA, struct.pack(">Q", off2) + b"B" * len2, 1)
        await asyncio.sleep(0.5)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool(), connections=1) as export:
        [conn] = export._group.connections
        buf = bytearray(b"\xaa" * size)
        task = asyncio.create_task(export.read_into(0, buf))
        async with asyncio.timeout(5):
            while buf[first - 1] != payload[first - 1]:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert buf[:first] == payload[:first]
        go_on.set()
        assert await asyncio.wait_for(export.read(8, 100), 5) == b"B" * 100
        assert buf[first:] == b"\xaa" * (size - first)  # the rest was discarded
        assert conn.in_flight == 0
        assert conn.bytes_read == size + 100


async def test_close_sends_disc_after_in_flight_requests(fake_server):
    seen: list[int] = []

    async def scenario(peer: Peer) -> None:
        ((_, _, c1, *_),) = await peer.requests(1)
        await asyncio.sleep(0.2)  # the close waits for this reply
        peer.chunk(c1, ChunkType.NONE, b"", ReplyFlag.DONE)
        _flags, kind, *_ = await peer.request()
        seen.append(kind)

    uri = await fake_server(scenario)
    export = await nbdtui.open(uri, pool=Pool())
    flush = asyncio.create_task(export.flush())
    await asyncio.sleep(0.05)
    await export.close()
    await flush
    await asyncio.sleep(0.05)
    assert seen == [Command.DISC]


async def test_eshutdown_starts_a_soft_disconnect(fake_server):
    seen: list[int] = []

    async def scenario(peer: Peer) -> None:
        ((_, _, c1, *_),) = await peer.requests(1)
        peer.simple(c1, Errno.ESHUTDOWN)
        _, kind, *_ = await peer.request()
        seen.append(kind)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool()) as export:
        with pytest.raises(RequestError, match="ESHUTDOWN"):
            await export.flush()
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.02)
        assert seen == [Command.DISC]
        with pytest.raises(ConnectionLostError):
            await export.flush()


async def test_unknown_error_chunk_fails_only_its_request(fake_server):
    async def scenario(peer: Peer) -> None:
        ((_, _, c1, *_),) = await peer.requests(1)
        body = struct.pack(">IH", Errno.EPERM, 4) + b"nope"
        peer.chunk(c1, 0x8000 | 77, body, ReplyFlag.DONE)
        ((_, _, c2, *_),) = await peer.requests(1)
        peer.simple(c2)
        await asyncio.sleep(0.5)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool()) as export:
        with pytest.raises(RequestError, match="nope") as info:
            await export.flush()
        assert info.value.errno_name == "EPERM"
        await export.flush()


# ---- connecting ---------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connection_refused():
    port = _closed_port()
    with pytest.raises(ConnectError, match=f"connection refused by 127.0.0.1:{port}"):
        await nbdtui.open(f"nbd://127.0.0.1:{port}/", pool=Pool())


async def test_connect_timeout_covers_the_handshake():
    async def silent(reader, writer):
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(
            ConnectError, match=rf"timed out connecting to 127.0.0.1:{port} after 0.3 s"
        ):
            await nbdtui.open(f"nbd://127.0.0.1:{port}/", pool=Pool(), connect_timeout=0.3)
    finally:
        server.close()


async def test_missing_unix_socket(tmp_path):
    path = tmp_path / "nothing.sock"
    with pytest.raises(ConnectError, match="no such socket"):
        await probe(f"nbd+unix:///?socket={path}")


async def test_vsock_is_refused():
    with pytest.raises(NotSupportedError, match="vsock endpoints are not supported"):
        await probe("nbd+vsock://3/")


async def test_export_not_found_names_the_server(qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(make_image(tmp_path, 65536), export="disk")
    uri = server.uri_for("nope")
    with pytest.raises(
        ExportNotFoundError, match=f"export 'nope' not found on 127.0.0.1:{server.port}"
    ):
        await nbdtui.open(uri, pool=Pool())
    listed = await list_exports(server.uri)
    assert [e.name for e in listed.exports] == ["disk"]
    assert listed.exports[0].info is not None and listed.exports[0].info.size == 65536


async def test_not_an_nbd_server():
    async def http(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ProtocolError, match=f"not an NBD server.*127.0.0.1:{port}"):
            await probe(f"nbd://127.0.0.1:{port}/")
    finally:
        server.close()
