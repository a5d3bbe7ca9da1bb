"""Faults: a disk that returns EIO (nbdkit's error filter), and servers that send
garbage (fake socket servers from test_client_faults, extended with the faults it does
not cover). Every failed request says what failed and where; every waiter fails, none
hangs; the command line prints one line and no traceback."""

from __future__ import annotations

import asyncio
import os
import re
import struct
import sys

import pytest

import nbdtui
from nbdtui.client import Pool
from nbdtui.errors import ConnectionLostError, ProtocolError, RequestError
from nbdtui.proto.constants import STRUCTURED_REPLY_MAGIC, ChunkType, ReplyFlag
from tests.support.cli_helpers import Result, assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_cli
from tests.support.fakes import Peer
from tests.support.oracles import oracle

KiB, MiB = 1 << 10, 1 << 20


def pattern(offset: int, length: int) -> bytes:
    """What nbdkit's pattern plugin serves: each 8-byte word is its offset (big-endian)."""
    start = offset - offset % 8
    words = b"".join(o.to_bytes(8, "big") for o in range(start, offset + length + 8, 8))
    return words[offset - start : offset - start + length]


# ---- EIO from the disk -------------------------------------------------------------------


async def test_read_errors_fail_only_their_requests(nbdkit):
    server = nbdkit(
        "pattern",
        "4M",
        filters=("error",),
        extra_options=("error-pread=EIO", "error-pread-rate=10%"),
    )
    async with nbdtui.open(server.uri, pool=Pool(), connections=1) as export:
        offsets = [i * 4 * KiB + (i % 7) for i in range(400)]
        results = await asyncio.gather(
            *(export.read(o, 4 * KiB) for o in offsets), return_exceptions=True
        )
        failed = 0
        for offset, r in zip(offsets, results, strict=True):
            if isinstance(r, RequestError):
                failed += 1
                assert r.errno_name == "EIO" and r.command == "read"
                assert f"for 4096 bytes at offset {offset:#x}" in str(r), r
                assert r.request_offset == offset
            else:
                assert r == pattern(offset, 4 * KiB)
        assert 5 <= failed <= 100, failed  # 10% of 400, give or take
        [stats] = export.connection_stats()
        assert stats.state == "ready" and stats.errors == failed
        assert await _read_until_ok(export, 123, 1000) == pattern(123, 1000)


async def _read_until_ok(export, offset: int, length: int) -> bytes:
    for _ in range(50):
        try:
            return await export.read(offset, length)
        except RequestError:
            continue
    raise AssertionError("50 reads in a row failed")


async def test_write_errors_are_reported_and_a_rewrite_lands(nbdkit):
    server = nbdkit(
        "memory",
        "2M",
        filters=("error",),
        extra_options=("error-pwrite=EIO", "error-pwrite-rate=20%"),
    )
    expected = bytearray(2 * MiB)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        blocks = list(range(0, 2 * MiB, 8 * KiB))
        datas = {b: os.urandom(8 * KiB) for b in blocks}
        failures = 0
        for _ in range(40):
            results = await asyncio.gather(
                *(export.write(b, datas[b]) for b in blocks), return_exceptions=True
            )
            left = []
            for b, r in zip(blocks, results, strict=True):
                if r is None:
                    expected[b : b + 8 * KiB] = datas[b]
                else:
                    assert isinstance(r, RequestError) and r.errno_name == "EIO", r
                    assert f"write: EIO (Input/output error) for 8192 bytes at offset {b:#x}" in (
                        str(r)
                    )
                    left.append(b)
            failures += len(left)
            blocks = left
            if not blocks:
                break
        assert not blocks and failures > 0
        await export.flush()
    assert oracle("nbdcopy", server.uri, "-") == expected


def test_cli_read_error_names_the_offset(nbdkit):
    server = nbdkit(
        "pattern", "4M", filters=("error",), extra_options=("error-pread=EIO", "error-pread-rate=1")
    )
    result = run_cli("read", server.uri, "--offset", "0x30000", "--length", "4096")
    assert_one_line_error(
        result,
        1,
        "read: EIO (Input/output error) for 4096 bytes at offset 0x30000",
        f"127.0.0.1:{server.port}",
    )


def test_cli_read_error_in_a_long_read(nbdkit):
    server = nbdkit(
        "pattern", "8M", filters=("error",), extra_options=("error-pread=EIO", "error-pread-rate=1")
    )
    result = run_cli("read", server.uri)
    assert_one_line_error(result, 1, "read: EIO")
    assert re.search(r"for \d+ bytes at offset 0x[0-9a-f]+ \(server ", result.stderr)


def test_cli_write_error_exits_1(nbdkit, tmp_path):
    server = nbdkit(
        "memory",
        "1M",
        filters=("error",),
        extra_options=("error-pwrite=EIO", "error-pwrite-rate=1"),
    )
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 4096)
    result = run_cli("write", server.uri, str(source), "--offset", "8192")
    assert_one_line_error(result, 1, "write: EIO", "for 4096 bytes at offset 0x2000")


# ---- a server that breaks the protocol ----------------------------------------------------


def _chunk(cookie: int, kind: int, payload: bytes, flags: int = 0, length: int | None = None):
    size = len(payload) if length is None else length
    return struct.pack(">IHHQI", STRUCTURED_REPLY_MAGIC, flags, kind, cookie, size) + payload


async def _fault(peer: Peer, fault: str, cookie: int, offset: int) -> None:
    if fault == "bad magic":
        peer.send(b"\xde\xad\xbe\xef" + bytes(16))
    elif fault == "unknown cookie":
        peer.send(_chunk(0x5555, ChunkType.NONE, b"", ReplyFlag.DONE))
    elif fault == "truncated header":
        peer.send(_chunk(cookie, ChunkType.NONE, b"", ReplyFlag.DONE)[:11])
        await peer.writer.drain()
        peer.writer.transport.close()
    elif fault == "truncated payload":
        data = _chunk(cookie, ChunkType.OFFSET_DATA, struct.pack(">Q", offset) + bytes(512), 1)
        peer.send(data[:100])
        await peer.writer.drain()
        peer.writer.transport.close()
    elif fault == "chunk beyond its request":
        peer.send(_chunk(cookie, ChunkType.OFFSET_DATA, struct.pack(">Q", 1 << 30) + bytes(8), 1))
    elif fault == "huge length":
        peer.send(_chunk(cookie, ChunkType.ERROR, struct.pack(">IH", 5, 0), 1, 0xFFFF_FFF0))
    elif fault == "unknown mandatory chunk type":
        peer.send(_chunk(cookie, 0x77, b"abcd", ReplyFlag.DONE))
    elif fault == "close in a reply":
        # a first chunk without DONE: the reply goes on... and the server hangs up
        peer.send(_chunk(cookie, ChunkType.OFFSET_HOLE, struct.pack(">QI", offset, 256)))
        await peer.writer.drain()
        peer.writer.transport.close()
    else:  # pragma: no cover
        raise AssertionError(fault)


# fault -> (error class, words that must be in the message)
FAULTS = {
    "bad magic": (ProtocolError, "bad reply magic 0xdeadbeef"),
    "unknown cookie": (ProtocolError, "reply for unknown cookie 0x5555"),
    "truncated header": (ConnectionLostError, "lost with"),
    "truncated payload": (ConnectionLostError, "lost with"),
    "chunk beyond its request": (ProtocolError, "outside the range of NBD_CMD_READ"),
    "huge length": (ProtocolError, "impossible length"),
    "unknown mandatory chunk type": (ProtocolError, "unknown chunk type 119"),
    "close in a reply": (ConnectionLostError, "lost with"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_every_waiter_fails_with_the_fault_named(fake_server, fault):
    cls, words = FAULTS[fault]

    async def scenario(peer: Peer) -> None:
        reqs = await peer.requests(4)
        _, _, cookie, offset, _, _ = reqs[1]
        await _fault(peer, fault, cookie, offset)
        await asyncio.sleep(2)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool(), window=4) as export:
        # 4 in flight, 6 more waiting for a window slot: every one fails, none hangs
        results = await asyncio.wait_for(
            asyncio.gather(*(export.read(i * 512, 512) for i in range(10)), return_exceptions=True),
            5,
        )
        for r in results:
            assert isinstance(r, cls), (fault, r)
            assert words in str(r) and "127.0.0.1" in str(r), str(r)
        with pytest.raises(cls):
            await export.read(0, 1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_cli_prints_one_line_for_the_fault(fake_server, fault, tmp_path):
    _, words = FAULTS[fault]

    async def scenario(peer: Peer) -> None:
        ((_, _, cookie, offset, _, _),) = await peer.requests(1)
        await _fault(peer, fault, cookie, offset)
        await asyncio.sleep(2)

    uri = await fake_server(scenario)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nbdtui",
        "read",
        uri,
        "--length",
        "4096",
        "-o",
        str(tmp_path / "out"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    result = Result(proc.returncode, stdout, stderr.decode())
    assert_one_line_error(result, 1, words)


async def test_after_garbage_the_export_reconnects_for_later_requests(fake_server):
    """With a reconnect delay, the requests the garbage broke fail (their fate is not
    known to be good), and later requests go over a new connection."""
    connections: list[Peer] = []

    async def scenario(peer: Peer) -> None:
        connections.append(peer)
        if len(connections) == 1:
            await peer.requests(2)
            peer.send(b"\xde\xad\xbe\xef" + bytes(16))
            await asyncio.sleep(2)
            return
        while True:
            _, _, cookie, offset, length, _ = await peer.request()
            peer.chunk(cookie, ChunkType.OFFSET_DATA, struct.pack(">Q", offset) + b"G" * length, 1)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool(), reconnect_delay=5) as export:
        results = await asyncio.wait_for(
            asyncio.gather(export.read(0, 512), export.read(512, 512), return_exceptions=True), 5
        )
        assert all(isinstance(r, ProtocolError) for r in results), results
        assert await asyncio.wait_for(export.read(1024, 16), 5) == b"G" * 16
        assert len(connections) == 2
