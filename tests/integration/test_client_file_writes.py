"""Writes whose payload is a FileRange: sent from the file (sendfile), or read and sent
where the transport cannot (TLS); the stream stays in sync whatever happens meanwhile."""

from __future__ import annotations

import asyncio
import random

import pytest

import nbdtui
from nbdtui.client import FileRange, Pool
from nbdtui.errors import NbdError
from tests.support.oracles import nbdcopy_out, oracle

KiB = 1024
MiB = 1024 * KiB


@pytest.fixture
def sendfile_calls(monkeypatch):
    """How many times (and with how many bytes) asyncio's sendfile ran."""
    calls: list[int] = []
    original = asyncio.BaseEventLoop.sendfile

    async def spy(self, transport, file, offset=0, count=None, *, fallback=True):
        sent = await original(self, transport, file, offset, count, fallback=fallback)
        calls.append(sent)
        return sent

    monkeypatch.setattr(asyncio.BaseEventLoop, "sendfile", spy)
    return calls


async def test_file_range_goes_out_with_sendfile_amid_other_writes(
    nbdkit, tmp_path, sendfile_calls
):
    """Large FileRange writes over one connection while small writes of other regions
    go on at the same time: nothing comes between a header and its payload."""
    server = nbdkit("memory", "16M", unix=True)
    rng = random.Random(21)
    source = rng.randbytes(8 * MiB + 100 * KiB)  # every request > SMALL_WRITE
    path = tmp_path / "source.bin"
    path.write_bytes(b"\xaa" * 1000 + source)
    shadow = bytearray(16 * MiB)
    async with nbdtui.open(server.uri, pool=Pool(), connections=1, window=8) as export:
        export.request_size = 512 * KiB

        async def small_writes(n: int) -> None:
            r = random.Random(n)
            for _ in range(30):
                offset = 10 * MiB + n * 512 * KiB + r.randrange(512 * KiB - 9000)
                data = r.randbytes(r.choice((1, 512, 4096, 9000)))
                await export.write(offset, data)
                shadow[offset : offset + len(data)] = data

        with open(path, "rb") as f:
            everything = asyncio.gather(
                export.write(1 * MiB + 7, FileRange(f, 1000, len(source))),
                *(small_writes(n) for n in range(8)),
            )
            await asyncio.wait_for(everything, 60)
        shadow[1 * MiB + 7 : 1 * MiB + 7 + len(source)] = source
        [conn] = export._group.connections
        assert conn.usable and conn.in_flight == 0
        assert conn.bytes_written >= len(source)
    assert len(sendfile_calls) >= 16 and sum(sendfile_calls) == len(source)
    assert nbdcopy_out(server.uri) == shadow


async def test_file_range_amid_large_reads_does_not_wedge_a_busy_server(nbdkit, tmp_path):
    """Large reads in flight with a FileRange write on the same connection, and fewer
    server threads than requests in flight: while its replies are not being read the
    server stops taking requests, so the payload must not go out with the socket's
    reading paused (as asyncio's sendfile does); every read is checked."""
    server = nbdkit("memory", "64M", unix=True, extra_options=("--threads=2",))
    rng = random.Random(24)
    base = rng.randbytes(32 * MiB)
    source = rng.randbytes(16 * MiB)
    path = tmp_path / "source.bin"
    path.write_bytes(source)
    async with nbdtui.open(server.uri, pool=Pool(), connections=1, window=16) as export:
        export.request_size = 2 * MiB
        await export.write(0, base)
        with open(path, "rb") as f:

            async def check(offset: int) -> None:
                assert await export.read(offset, 4 * MiB) == base[offset : offset + 4 * MiB]

            everything = asyncio.gather(
                *(check(i * 4 * MiB) for i in range(8)),
                export.write(32 * MiB, FileRange(f, 0, len(source))),
                *(check(i * 4 * MiB) for i in range(8)),
            )
            await asyncio.wait_for(everything, 60)
        assert await export.read(32 * MiB, len(source)) == source
        assert await export.read(0, len(base)) == base


async def test_file_range_over_tls_is_read_and_written(nbdkit, tls_certs, tmp_path):
    server = nbdkit("memory", "4M", tls=tls_certs)
    source = random.Random(22).randbytes(3 * MiB + 5)
    path = tmp_path / "source.bin"
    path.write_bytes(source)
    async with nbdtui.open(server.tls_uri_for(), pool=Pool(), connections=1) as export:
        export.request_size = 256 * KiB
        with open(path, "rb") as f:
            await asyncio.gather(
                export.write(100, FileRange(f, 0, len(source))),
                export.write(4 * MiB - 10, b"0123456789"),
            )
        assert await export.read(100, len(source)) == source
    whole = nbdcopy_out(server.tls_uri_for())
    assert whole[100 : 100 + len(source)] == source and whole[-10:] == b"0123456789"


async def test_small_file_range_is_sent_like_a_buffer(nbdkit, tmp_path, sendfile_calls):
    server = nbdkit("memory", "1M")
    path = tmp_path / "small.bin"
    path.write_bytes(b"header" + b"x" * 5000)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        with open(path, "rb") as f:
            await export.write(10, FileRange(f, 6, 5000)[1000:3000])
        assert await export.read(8, 2004) == b"\0\0" + b"x" * 2000 + b"\0\0"
    assert sendfile_calls == []


async def test_file_shorter_than_its_range_fails_without_hanging(nbdkit, tmp_path):
    server = nbdkit("memory", "8M")
    path = tmp_path / "short.bin"
    path.write_bytes(b"y" * (MiB + 17))
    async with nbdtui.open(server.uri, pool=Pool(), connections=1) as export:
        with open(path, "rb") as f, pytest.raises(NbdError, match=r"ended at 1048593 bytes"):
            await asyncio.wait_for(export.write(0, FileRange(f, 0, 2 * MiB)), 10)
        [conn] = export._group.connections
        assert not conn.usable  # the stream was cut mid-payload: that connection is over


async def test_cancelled_file_write_still_sends_its_whole_payload(nbdkit, tmp_path):
    server = nbdkit("memory", "128M", unix=True)
    source = random.Random(23).randbytes(64 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(source)
    async with nbdtui.open(server.uri, pool=Pool(), connections=1) as export:
        export.request_size = 32 * MiB
        [conn] = export._group.connections
        with open(path, "rb") as f:
            for delay in (0.0, 0.001, 0.005):
                task = asyncio.create_task(export.write(0, FileRange(f, 0, len(source))))
                await asyncio.sleep(delay)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # the payload keeps going out; requests queued meanwhile follow it
                assert await export.read(100 * MiB, 5) == bytes(5)
                await export.write(100 * MiB, b"after")
                assert await export.read(100 * MiB, 5) == b"after"
                await export.write(100 * MiB, bytes(5))
                while conn.in_flight:
                    await asyncio.sleep(0.005)
                assert conn.usable
            await export.write(0, FileRange(f, 0, len(source)))
        assert await export.read(0, len(source)) == source


async def test_unaligned_file_range_with_a_minimum_block_size(nbdkit, tmp_path, sendfile_calls):
    """The partial blocks at the ends are read-modify-written (read from the file), the
    aligned middle still goes out with sendfile; the server sees aligned requests only."""
    server = nbdkit(
        "memory",
        "4M",
        unix=True,
        filters=("blocksize-policy",),
        extra_options=("blocksize-minimum=4096", "blocksize-error-policy=error"),
    )
    base = random.Random(25).randbytes(4 * MiB)
    oracle("nbdcopy", "-", server.uri, input=base)
    source = random.Random(26).randbytes(2 * MiB + 333)
    path = tmp_path / "source.bin"
    path.write_bytes(bytes(50) + source)
    shadow = bytearray(base)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        assert export.block_minimum == 4096
        with open(path, "rb") as f:
            await export.write(1001, FileRange(f, 50, len(source)))
        shadow[1001 : 1001 + len(source)] = source
    assert nbdcopy_out(server.uri) == shadow
    assert sendfile_calls and sum(sendfile_calls) < len(source)  # all but the ends
