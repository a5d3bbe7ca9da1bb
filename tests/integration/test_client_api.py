"""The public client API and its seams (openers, TLS upgrader)."""

from __future__ import annotations

import asyncio
import ssl
import struct

import pytest

import nbdtui
from nbdtui.client import Pool, default_pool, list_exports, probe
from nbdtui.client.transport.openers import opener_for
from nbdtui.client.transport.stream import StreamProtocol
from nbdtui.errors import TLSRequiredError
from nbdtui.proto.constants import IHAVEOPT, NBDMAGIC, OPTION_REPLY_MAGIC, Option, OptionReply
from nbdtui.uri import parse

KiB = 1024


async def test_open_as_context_manager_and_awaitable(nbdkit):
    server = nbdkit("memory", "64K")
    async with nbdtui.open(server.uri) as export:
        assert export is not None and export.size == 64 * KiB
        await export.write(0, b"abc")
        assert export._pool is default_pool()
    assert export.closed
    export = await nbdtui.open(parse(server.uri), pool=Pool())
    try:
        assert await export.read(0, 3) == b"abc"
        assert export.name == "" and export.endpoint == parse(server.uri)
    finally:
        await export.close()
    await export.close()  # idempotent


async def test_list_exports_sees_through_nbd_server_zero_sizes(nbd_server, tmp_path):
    files = {}
    for name, size in (("one", 4096), ("two", 8192)):
        files[name] = tmp_path / f"{name}.img"
        files[name].write_bytes(bytes(size))
    server = nbd_server({"one": {"file": files["one"]}, "two": {"file": files["two"]}})
    listed = await list_exports(server.uri)
    sizes = {e.name: e.info.size for e in listed.exports if e.info}
    assert sizes == {"one": 4096, "two": 8192}
    bare = await list_exports(server.uri, details=False)
    assert [e.name for e in bare.exports] == ["one", "two"]
    assert all(e.info is None for e in bare.exports)


async def test_probe_nbd_server_without_structured_replies(nbd_server, tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"z" * 8192)
    server = nbd_server({"disk": {"file": path}})
    negotiated = await probe(server.uri)
    assert negotiated.info.size == 8192 and not negotiated.structured
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        # no block status without structured replies: one data extent
        assert [(e.offset, e.length, e.description) for e in await export.extents()] == [
            (0, 8192, "data")
        ]
        assert await export.read(8000, 192) == b"z" * 192


async def test_ipv6_literal():
    """A real socket server on ::1 that hands out one export (no IPv6 in the fixtures)."""

    async def serve(reader, writer):
        writer.write(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3))
        await reader.readexactly(4)
        while True:
            _, option, length = struct.unpack(">QII", await reader.readexactly(16))
            await reader.readexactly(length)
            if option == Option.GO:
                info = struct.pack(">HQH", 0, 4096, 1)
                for reply, payload in ((OptionReply.INFO, info), (OptionReply.ACK, b"")):
                    head = struct.pack(">QIII", OPTION_REPLY_MAGIC, option, reply, len(payload))
                    writer.write(head + payload)
                break
            writer.write(struct.pack(">QIII", OPTION_REPLY_MAGIC, option, OptionReply.ERR_UNSUP, 0))
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        negotiated = await probe(f"nbd://[::1]:{port}/")
        assert negotiated.info.size == 4096
    finally:
        server.close()


async def test_custom_opener_seam(nbdkit):
    """Any callable with loop.create_connection's shape can carry the stream."""
    server = nbdkit("memory", "64K")
    endpoint = parse(server.uri)
    calls = []

    async def opener(factory):
        calls.append(factory)
        transport, protocol = await opener_for(endpoint)(factory)
        assert isinstance(protocol, StreamProtocol)
        return transport, protocol

    async with nbdtui.open(endpoint, pool=Pool(), opener=opener, connections=1) as export:
        await export.write(0, b"via opener")
        assert await export.read(0, 10) == b"via opener"
    assert len(calls) == 1


async def test_bytes_delivering_transport_through_data_received(nbdkit):
    """A transport that only calls data_received (as an SSH channel would)."""
    server = nbdkit("pattern", "1M")
    endpoint = parse(server.uri)

    class BytesOnly(asyncio.Protocol):
        def __init__(self, inner: StreamProtocol):
            self.inner = inner

        def connection_made(self, transport):
            self.inner.connection_made(transport)

        def data_received(self, data):
            for i in range(0, len(data), 1000):  # odd fragments
                self.inner.data_received(data[i : i + 1000])

        def eof_received(self):
            return self.inner.eof_received()

        def connection_lost(self, exc):
            self.inner.connection_lost(exc)

    async def opener(factory):
        inner = factory()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(
            lambda: BytesOnly(inner), endpoint.host, endpoint.tcp_port
        )
        return transport, inner

    async with nbdtui.open(endpoint, pool=Pool(), opener=opener) as export:
        data = await export.read(8, 64 * KiB)
    assert data[:8] == (8).to_bytes(8, "big") and data[-8:] == (64 * KiB).to_bytes(8, "big")


async def test_tls_seam_with_loop_start_tls(nbdkit, tls_certs):
    server = nbdkit("memory", "64K", tls=tls_certs)
    with pytest.raises(TLSRequiredError):
        await probe(server.uri.replace("nbds://", "nbd://"))

    async def start_tls(endpoint, transport, protocol):
        context = ssl.create_default_context(cafile=str(tls_certs.ca_cert))
        context.load_cert_chain(str(tls_certs.client_cert), str(tls_certs.client_key))
        loop = asyncio.get_running_loop()
        return await loop.start_tls(transport, protocol, context, server_hostname="localhost")

    async with nbdtui.open(server.uri, pool=Pool(), start_tls=start_tls) as export:
        assert export.negotiated.tls
        payload = bytes(range(256)) * 100
        await export.write(1, payload)
        assert await export.read(1, len(payload)) == payload


async def test_client_logger_tells_connects_and_nothing_per_request(nbdkit, caplog):
    """The ``nbdtui.client`` logger at debug level tells the connect (with what the
    handshake said) and the engine of a bulk transfer, and nothing for each request."""
    server = nbdkit("memory", "16M")
    caplog.set_level("DEBUG", logger="nbdtui.client")
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        connected = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("connected to ") and "16777216 bytes" in m for m in connected)
        caplog.clear()
        for i in range(50):
            await export.write(i * KiB, b"x" * KiB)
            await export.read(i * KiB, KiB)
        assert [r for r in caplog.records if r.name.startswith("nbdtui.client")] == []
        async with export.bulk() as engine:
            await engine.read_into(0, memoryview(bytearray(8 << 20)))
        assert any("bulk transfer" in r.getMessage() for r in caplog.records)
