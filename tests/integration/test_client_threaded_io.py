"""Bulk reads and writes on threads (nbdtui.client.bulk, Export.bulk), against real servers:
the bytes equal nbdcopy's, the connections come back usable, and every failure (a server error, a
lost server, a timeout, a cancelled transfer) ends like a read of the usual path."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import threading
import time

import pytest

import nbdtui
from nbdtui.cli.transfer import READ_PIECE as PIECE
from nbdtui.cli.transfer import stream_read
from nbdtui.client import Pool
from nbdtui.client.request import FileRange
from nbdtui.errors import (
    ConnectionLostError,
    NbdError,
    NotSupportedError,
    RequestError,
    RequestTimeoutError,
)
from tests.support.oracles import nbdcopy_out

MiB = 1 << 20


def io_threads() -> int:
    return sum(t.name.startswith("nbdtui-io-") for t in threading.enumerate())


async def read_lent(export, offset: int, length: int) -> tuple[bytes, int]:
    """Read the range in 4 MiB pieces on lent connections; also says how many
    connections were lent."""
    reads = await export.bulk()
    assert reads.threaded
    lent = io_threads()
    assert sum(s.state == "lent" for s in export.connection_stats()) == lent
    buf = bytearray(length)
    view = memoryview(buf)
    try:
        await asyncio.gather(
            *(
                reads.read_into(offset + at, view[at : at + 4 * MiB])
                for at in range(0, length, 4 * MiB)
            )
        )
    finally:
        await reads.close()
    return bytes(buf), lent


def pattern(offset: int, length: int) -> bytes:
    """What nbdkit's pattern plugin serves: each 8-byte word is its big-endian offset."""
    start = offset - offset % 8
    words = b"".join(i.to_bytes(8, "big") for i in range(start, offset + length, 8))
    return words[offset - start : offset - start + length]


async def check_given_back(export, tail: bytes | None = None) -> None:
    """Every connection is usable again, with nothing held, and reads as usual (the
    last bytes are ``tail``, or what nbdcopy reads)."""
    for conn in export._group.connections:
        assert conn.usable and conn.load == 0 and conn._lent == 0
    if tail is None:
        tail = nbdcopy_out(export.endpoint.uri)[-3:]
    assert await export.read(export.size - len(tail), len(tail)) == tail


# nbdkit and qemu-nbd send structured replies (qemu-nbd: holes as OFFSET_HOLE),
# nbd-server simple ones; nbdkit allows 4 connections (multi-conn), the others 1.
KINDS = ["nbdkit", "qemu-nbd", "nbd-server"]


@pytest.fixture
def serve(nbdkit, qemu_nbd, nbd_server):
    """``serve(kind, image) -> Server``: the image served by a server of that kind."""

    def start(kind: str, image):
        if kind == "nbdkit":
            return nbdkit("file", str(image), unix=True)
        if kind == "qemu-nbd":
            return qemu_nbd(image, export="disk")
        return nbd_server({"disk": {"file": image}})

    return start


@pytest.fixture
def contents():
    return random.Random(5).randbytes(24 * MiB + 4096)


@pytest.mark.parametrize("kind", KINDS)
async def test_lent_reads_match_nbdcopy(kind, contents, serve, make_image, tmp_path):
    image = make_image(tmp_path, 32 * MiB, content=contents)
    server = serve(kind, image)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        data, lent = await read_lent(export, 12345 * 512, 20 * MiB + 7 * 512)
        assert lent == len(export._group.connections) >= 1
        assert io_threads() == 0
        assert data == nbdcopy_out(server.uri)[12345 * 512 : 12345 * 512 + 20 * MiB + 7 * 512]
        assert sum(c.requests for c in export._group.connections) >= 21
        await check_given_back(export)


async def read_lent_into_file(export, offset: int, length: int, path) -> int:
    """Read the range in 4 MiB pieces on lent connections into the file at ``path`` (at
    0 for ``offset``); says how many connections were lent."""
    reads = await export.bulk()
    assert reads.threaded
    lent = io_threads()
    assert sum(s.state == "lent" for s in export.connection_stats()) == lent
    try:
        with open(path, "r+b", buffering=0) as out:
            await asyncio.gather(
                *(
                    reads.read_into(offset + at, FileRange(out, at, min(4 * MiB, length - at)))
                    for at in range(0, length, 4 * MiB)
                )
            )
    finally:
        await reads.close()
    return lent


@pytest.mark.parametrize("how", ["splice", "splice refused", "no splice"])
@pytest.mark.parametrize("kind", KINDS)
async def test_lent_reads_into_a_file_match_nbdcopy(
    kind, how, contents, serve, make_image, tmp_path, monkeypatch
):
    # Into a file the payload goes socket -> pipe -> file (splice). A file that refuses
    # splice (EINVAL: only a fake of that syscall can say so here) or a system without
    # it gets the bytes through a buffer. The image's last 8 MiB or so are a hole (qemu-nbd
    # sends it as OFFSET_HOLE chunks): zeroes must be written over the 0xff already there;
    # nbd-server's simple replies put the first payload bytes in with the header.
    image = make_image(tmp_path, 32 * MiB, content=contents)
    server = serve(kind, image)
    if how == "no splice":
        monkeypatch.delattr(os, "splice")
    elif how == "splice refused":
        real = os.splice

        def splice(src, dst, count, offset_src=None, offset_dst=None, flags=0):
            if offset_dst is not None:  # into the file
                raise OSError(errno.EINVAL, "Invalid argument")
            return real(src, dst, count, offset_src, offset_dst, flags)

        monkeypatch.setattr(os, "splice", splice)
    out = tmp_path / "out"
    out.write_bytes(b"\xff" * 40 * MiB)
    offset, length = 3 * 512, 32 * MiB - 3 * 512
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        lent = await read_lent_into_file(export, offset, length, out)
        assert lent == len(export._group.connections) >= 1
        await check_given_back(export)
    got = out.read_bytes()
    assert got[:length] == nbdcopy_out(server.uri)[offset:]
    hole = got[len(contents) - offset : length]  # was 0xff, is the image's hole now
    assert hole == bytes(len(hole)) and len(hole) > 7 * MiB
    assert got[length:] == b"\xff" * (40 * MiB - length)  # nothing written past it


async def test_tls_goes_on_threads_over_connections_of_its_own(nbdkit, tls_certs):
    """asyncio's TLS streams are not lent: the engine opens blocking TLS connections of
    its own (nbdtui.client.bulk_tls), as many as the group may open (whose others stay
    closed), and closes them at the end."""
    server = nbdkit("pattern", "16M", tls=tls_certs)
    async with nbdtui.open(server.tls_uri_for(), pool=Pool()) as export:
        engine = await export.bulk()
        assert engine.threaded and io_threads() == export._group.max_connections == 4
        assert len(export._group.connections) == 1
        assert not any(s.state == "lent" for s in export.connection_stats())
        buf = bytearray(16 * MiB - 8)
        await engine.read_into(8, memoryview(buf))
        await engine.close()
        assert io_threads() == 0
        assert buf == pattern(8, len(buf))
        assert {s.bulk_fallbacks for s in export.connection_stats()} == {0}
        await check_given_back(export, pattern(16 * MiB - 3, 3))


async def test_stream_read_of_many_pieces_is_lent_and_matches_nbdcopy(nbdkit):
    server = nbdkit("pattern", "64M", unix=True)
    seen_threads = 0
    chunks = []
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        async for piece in stream_read(export, 333, 5 * PIECE + 1000):
            seen_threads = max(seen_threads, io_threads())
            chunks.append(bytes(piece))
        assert seen_threads == 4  # the pattern plugin allows multi-conn: 4 connections
        assert b"".join(chunks) == nbdcopy_out(server.uri)[333 : 333 + 5 * PIECE + 1000]
        await check_given_back(export)


async def test_a_transfer_stopped_early_gives_the_connections_back(nbdkit):
    server = nbdkit("pattern", "256M")
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        stream = stream_read(export, 0, export.size)
        first = bytes(await anext(stream))
        await stream.aclose()  # replies to what was sent are received, then given back
        assert io_threads() == 0
        assert first == nbdcopy_out(server.uri)[:PIECE]
        await check_given_back(export)


async def test_a_cancelled_read_leaves_its_buffer_alone_once_cancelled(nbdkit):
    server = nbdkit("pattern", "64M", filters=("delay",), extra_options=("delay-read=300ms",))
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        reads = await export.bulk()
        buf = bytearray(32 * MiB)
        task = asyncio.create_task(reads.read_into(0, memoryview(buf)))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        snapshot = bytes(buf)  # settled: no thread writes into it any more
        await asyncio.sleep(0.2)
        assert bytes(buf) == snapshot
        assert snapshot.count(0) < len(snapshot)  # the threads had started filling it
        await reads.close()
        await check_given_back(export, pattern(export.size - 9, 9))


CLOSE_TIMEOUT = 1.0  # instead of connection.CLOSE_TIMEOUT, for the test below


async def test_giving_up_on_a_server_that_does_not_answer_is_bounded(nbdkit, monkeypatch):
    # No timeout set, and the replies never come: cancelling the transfer (Ctrl-C) ends
    # the lent streams after CLOSE_TIMEOUT, as closing a connection does. The engine's
    # CLOSE_TIMEOUT (connection.CLOSE_TIMEOUT, 5 s) is lowered so the test does not wait it out.
    monkeypatch.setattr("nbdtui.client.bulk.CLOSE_TIMEOUT", CLOSE_TIMEOUT)
    server = nbdkit(
        "pattern", "64M", filters=("delay",), extra_options=("--threads=1", "delay-read=60")
    )
    async with nbdtui.open(server.uri, pool=Pool()) as export:

        async def consume() -> None:
            async for _ in stream_read(export, 0, export.size):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        assert io_threads() == len(export._group.connections)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert CLOSE_TIMEOUT - 0.5 < time.monotonic() - t0 < CLOSE_TIMEOUT + 3
        assert io_threads() == 0
        assert not any(c.usable for c in export._group.connections)


async def test_a_server_error_is_the_usual_request_error(nbdkit, tmp_path):
    trigger = tmp_path / "fail-reads"
    server = nbdkit(
        "pattern",
        "32M",
        filters=("error",),
        extra_options=("error-pread=EIO", "error-pread-rate=1", f"error-pread-file={trigger}"),
    )
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        trigger.touch()
        with pytest.raises(RequestError) as lent_error:
            await read_lent(export, 0, 4 * MiB)
        with pytest.raises(RequestError) as usual_error:
            await export.read_into(0, bytearray(4 * MiB))
        assert lent_error.value.errno_name == "EIO"
        assert str(lent_error.value) == str(usual_error.value)
        trigger.unlink()
        data, _ = await read_lent(export, 0, 16 * MiB)
        assert data == nbdcopy_out(server.uri)[: 16 * MiB]
        await check_given_back(export)


async def test_a_server_gone_mid_transfer_fails_every_waiter(nbdkit):
    server = nbdkit("pattern", "1G", filters=("delay",), extra_options=("delay-read=5ms",))
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        stream = stream_read(export, 0, export.size)
        await anext(stream)
        server.kill()
        t0 = time.monotonic()
        with pytest.raises(ConnectionLostError):
            async with asyncio.timeout(20):
                async for _ in stream:
                    pass
        assert time.monotonic() - t0 < 10
        assert io_threads() == 0
        assert not any(c.usable for c in export._group.connections)


async def test_a_stalled_server_times_out(nbdkit):
    server = nbdkit(
        "pattern", "64M", filters=("delay",), extra_options=("--threads=1", "delay-read=3")
    )
    async with nbdtui.open(server.uri, pool=Pool(), timeout=0.5) as export:
        t0 = time.monotonic()
        with pytest.raises(
            RequestTimeoutError, match=r"^read of \d+ bytes at offset 0x0 timed out after 0\.5 s"
        ):
            await read_lent(export, 0, 4 * MiB)
        # half a second on the thread, half a second again the usual way
        assert time.monotonic() - t0 < 4
        assert io_threads() == 0


async def test_other_requests_wait_for_the_connections_to_come_back(nbdkit):
    server = nbdkit("memory", "32M")
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        await export.write(5 * MiB, b"written")
        reads = await export.bulk()
        other = asyncio.create_task(export.read(5 * MiB, 7))
        buf = bytearray(16 * MiB)
        await reads.read_into(0, memoryview(buf))
        await asyncio.sleep(0.05)
        assert not other.done()  # every window slot is lent
        await reads.close()
        assert await asyncio.wait_for(other, 5) == b"written"
        assert buf[5 * MiB : 5 * MiB + 7] == b"written"
        await check_given_back(export)


# ---- writes -----------------------------------------------------------------------------


async def write_lent(export, offset: int, data, *, fua: bool = False) -> int:
    """Write ``data`` (bytes or a FileRange) in 4 MiB pieces on lent connections; says
    how many connections were lent."""
    io = await export.bulk()
    assert io.threaded
    lent = io_threads()
    try:
        await asyncio.gather(
            *(
                io.write(offset + at, data[at : at + 4 * MiB], fua=fua)
                for at in range(0, len(data), 4 * MiB)
            )
        )
    finally:
        await io.close()
    return lent


@pytest.mark.parametrize("kind", KINDS)
async def test_lent_writes_from_a_file_read_back_through_nbdcopy(kind, serve, make_image, tmp_path):
    before = random.Random(8).randbytes(32 * MiB)
    image = make_image(tmp_path, 32 * MiB, content=before)
    server = serve(kind, image)
    source = tmp_path / "source"
    payload = random.Random(9).randbytes(18 * MiB + 3 * 512)
    source.write_bytes(b"x" * 1000 + payload)
    offset = 4097 * 512
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        with open(source, "rb", buffering=0) as f:
            lent = await write_lent(export, offset, FileRange(f, 1000, len(payload)))
        assert lent == len(export._group.connections) >= 1
        # every acknowledged write is on record for the next flush
        requests = -(-len(payload) // export.request_size)
        assert sum(export._group.recovery.flush_started().values()) == requests
        if export.info.can_flush:
            await export.flush()
        await check_given_back(export)
    after = nbdcopy_out(server.uri)
    assert after[offset : offset + len(payload)] == payload
    assert after[:offset] == before[:offset]
    assert after[offset + len(payload) :] == before[offset + len(payload) :]


async def test_lent_writes_with_fua_reach_the_server_with_fua(nbdkit):
    server = nbdkit("memory", "16M", log=True)
    payload = random.Random(10).randbytes(9 * MiB)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        await write_lent(export, 0, memoryview(payload), fua=True)
        await check_given_back(export)
    assert nbdcopy_out(server.uri)[: len(payload)] == payload
    writes = [line for line in server.log_path.read_text().splitlines() if " Write id=" in line]
    assert len(writes) == 9 and all("fua=1" in line for line in writes)


async def test_a_lent_write_to_a_read_only_export_sends_nothing(nbdkit):
    server = nbdkit("memory", "16M", log=True, readonly=True)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        with pytest.raises(NotSupportedError, match="read-only"):
            await write_lent(export, 0, memoryview(bytes(8 * MiB)))
        await check_given_back(export, bytes(3))
    assert "Write" not in server.log_path.read_text()


async def test_a_failed_lent_write_is_the_usual_request_error(nbdkit, tmp_path):
    trigger = tmp_path / "fail-writes"
    server = nbdkit(
        "memory",
        "16M",
        filters=("error",),
        extra_options=(
            "error-pwrite=ENOSPC",
            "error-pwrite-rate=1",
            f"error-pwrite-file={trigger}",
        ),
    )
    payload = memoryview(random.Random(11).randbytes(4 * MiB))
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        trigger.touch()
        with pytest.raises(RequestError) as lent_error:
            await write_lent(export, 0, payload)
        with pytest.raises(RequestError) as usual_error:
            await export.write(0, payload)
        assert lent_error.value.errno_name == "ENOSPC"
        assert str(lent_error.value) == str(usual_error.value)
        trigger.unlink()
        await write_lent(export, 0, payload)
        await check_given_back(export)
    assert nbdcopy_out(server.uri)[: 4 * MiB] == payload


async def test_a_file_that_shrank_fails_the_write_as_usual(nbdkit, tmp_path):
    server = nbdkit("memory", "16M")
    source = tmp_path / "source"
    source.write_bytes(bytes(5 * MiB))
    shrank = r"ended at 5242880 bytes .* \(did it shrink\?\)"
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        with open(source, "rb", buffering=0) as f, pytest.raises(NbdError, match=shrank):
            await write_lent(export, 0, FileRange(f, 0, 8 * MiB))
