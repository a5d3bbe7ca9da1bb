"""Many requests in flight, several connections, cancellation, per-request errors."""

from __future__ import annotations

import asyncio
import random

import pytest

import nbdtui
from nbdtui.client import Pool
from nbdtui.errors import RequestError
from tests.support.oracles import nbdcopy_out

KiB = 1024
MiB = 1024 * KiB


def pattern(size: int) -> bytes:
    """What nbdkit's pattern plugin serves: each 8-byte word is its big-endian offset."""
    return b"".join(i.to_bytes(8, "big") for i in range(0, size, 8))


async def random_io(export, shadow: bytearray, *, tasks: int, ops: int, seed: int) -> None:
    """``tasks`` workers, each doing ``ops`` random reads and writes inside its own
    region (so the shadow stays exact), all at once; every read checked byte for byte."""
    region = len(shadow) // tasks

    async def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        lo = n * region
        for _ in range(ops):
            length = rng.choice((1, 7, 512, 4096, rng.randrange(1, region // 2)))
            offset = lo + rng.randrange(region - length + 1)
            if rng.random() < 0.5:
                data = rng.randbytes(length)
                await export.write(offset, data)
                shadow[offset : offset + length] = data
            else:
                got = await export.read(offset, length)
                assert got == shadow[offset : offset + length], (n, offset, length)

    await asyncio.gather(*(worker(n) for n in range(tasks)))


async def test_thousands_of_random_requests_one_connection(nbdkit):
    server = nbdkit("memory", "4M")
    shadow = bytearray(4 * MiB)
    async with nbdtui.open(server.uri, pool=Pool(), connections=1, window=8) as export:
        await random_io(export, shadow, tasks=64, ops=50, seed=1)
        [conn] = export._group.connections
        assert conn.peak_in_flight == 8  # the window was full
        assert conn.requests >= 64 * 50 and conn.in_flight == 0
        [stats] = export.connection_stats()
        assert stats.state == "ready" and stats.window == 8 and stats.errors == 0
        assert stats.bytes_read > 0 and stats.bytes_written > 0
    assert nbdcopy_out(server.uri) == shadow


async def test_thousands_of_random_requests_over_several_connections(nbdkit):
    server = nbdkit("memory", "8M")
    shadow = bytearray(8 * MiB)
    async with nbdtui.open(server.uri, pool=Pool(), window=4) as export:
        assert export.info.can_multi_conn
        await random_io(export, shadow, tasks=64, ops=40, seed=2)
        stats = export.connection_stats()
        assert 2 <= len(stats) <= 4
        assert all(s.requests > 0 for s in stats if s.state == "ready")
        await export.flush()
        assert await export.read(0, 8 * MiB) == shadow
    assert nbdcopy_out(server.uri) == shadow


async def test_no_multi_conn_means_one_connection(nbdkit):
    server = nbdkit(
        "memory", "1M", filters=("multi-conn",), extra_options=("multi-conn-mode=disable",)
    )
    async with nbdtui.open(server.uri, pool=Pool(), window=2, connections=4) as export:
        assert not export.info.can_multi_conn
        await asyncio.gather(*(export.read(i * 4096, 4096) for i in range(64)))
        assert len(export.connection_stats()) == 1


async def test_open_connections_opens_them_all_at_once(nbdkit):
    """Before a bulk transfer every connection is opened up front, so the first burst
    of requests is spread over all of them; without multi-conn it stays at one."""
    server = nbdkit("pattern", "64M")
    async with nbdtui.open(server.uri, pool=Pool(), window=4, connections=3) as export:
        assert len(export.connection_stats()) == 1  # opened lazily otherwise
        await export.open_connections()
        stats = export.connection_stats()
        assert [s.state for s in stats] == ["ready"] * 3
        await export.open_connections()  # nothing more to open
        assert len(export.connection_stats()) == 3
        data = await export.read(0, 12 * MiB)
        assert all(s.requests > 0 for s in export.connection_stats())
        assert data == pattern(12 * MiB)
    single = nbdkit(
        "memory", "1M", filters=("multi-conn",), extra_options=("multi-conn-mode=disable",)
    )
    async with nbdtui.open(single.uri, pool=Pool(), connections=4) as export:
        await export.open_connections()
        assert len(export.connection_stats()) == 1


async def test_pool_shares_connections_and_counts_users(nbdkit):
    server = nbdkit("memory", "1M")
    pool = Pool()
    a = await nbdtui.open(server.uri, pool=pool)
    b = await nbdtui.open(server.uri, pool=pool)
    assert a._group is b._group and a._group.refs == 2
    await a.write(0, b"shared")
    await a.close()
    assert await b.read(0, 6) == b"shared"  # still open for b
    conn = b._group.connections[0]
    await b.close()
    assert conn.state == "closed" and pool.stats() == {}
    with pytest.raises(nbdtui.errors.NbdError, match="closed"):
        await b.read(0, 1)


async def test_cancelled_reads_keep_the_connection_in_sync(nbdkit):
    server = nbdkit("pattern", "16M", filters=("delay",), extra_options=("rdelay=100ms",))
    expected = pattern(16 * MiB)
    assert nbdcopy_out(nbdkit("pattern", "16M").uri) == expected
    async with nbdtui.open(server.uri, pool=Pool(), connections=1, window=16) as export:
        buffers = [bytearray(b"\xee" * 64 * KiB) for _ in range(24)]
        tasks = [asyncio.create_task(export.read_into(i * 64 * KiB, buffers[i])) for i in range(24)]
        await asyncio.sleep(0.03)
        for t in tasks[::2]:
            t.cancel()
        snapshots = {i: bytes(buffers[i]) for i in range(0, 24, 2)}
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, r in enumerate(results):
            if i % 2:
                assert r is None and buffers[i] == expected[i * 64 * KiB : (i + 1) * 64 * KiB]
            else:
                assert isinstance(r, asyncio.CancelledError)
        [conn] = export._group.connections
        # cancelled requests kept their cookies until the server answered them
        for _ in range(100):
            if conn.in_flight == 0:
                break
            await asyncio.sleep(0.02)
        assert conn.in_flight == 0 and conn.usable
        # nothing was written into a buffer after its reader was cancelled
        assert all(bytes(buffers[i]) == snapshots[i] for i in range(0, 24, 2))
        for offset in (0, 5 * MiB + 3, 16 * MiB - 100):
            assert await export.read(offset, 100) == expected[offset : offset + 100]


async def test_cancel_large_reads_while_payload_streams(nbdkit):
    server = nbdkit("pattern", "256M")
    async with nbdtui.open(server.uri, pool=Pool(), connections=1) as export:
        export.request_size = 8 * MiB
        [conn] = export._group.connections
        for delay in (0.0, 0.001, 0.003, 0.01):
            buf = bytearray(64 * MiB)
            task = asyncio.create_task(export.read_into(0, buf))
            await asyncio.sleep(delay)
            received_before = conn.bytes_read
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            snapshot = bytes(buf)
            while conn.in_flight:
                await asyncio.sleep(0.005)
            assert bytes(buf) == snapshot  # nothing written after the cancellation
            assert conn.bytes_read >= received_before
        # the stream is still in sync: pattern bytes are the big-endian offset
        data = await export.read(100 * MiB + 8, 16)
        assert data == (100 * MiB + 8).to_bytes(8, "big") + (100 * MiB + 16).to_bytes(8, "big")


async def test_request_errors_leave_the_connection_usable(nbdkit, tmp_path):
    trigger = tmp_path / "fail"
    server = nbdkit(
        "memory",
        "1M",
        filters=("error",),
        extra_options=("error=EIO", "error-rate=1", f"error-file={trigger}"),
    )
    async with nbdtui.open(server.uri, pool=Pool(), connections=1) as export:
        await export.write(0, b"before")
        trigger.touch()
        with pytest.raises(RequestError) as info:
            await export.read(0, 6)
        assert info.value.errno_name == "EIO" and info.value.command == "read"
        assert "EIO" in str(info.value)
        with pytest.raises(RequestError, match="write: EIO"):
            await export.write(0, b"x")
        results = await asyncio.gather(
            *(export.read(i * 512, 512) for i in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, RequestError) for r in results)
        trigger.unlink()
        assert await export.read(0, 6) == b"before"
        [stats] = export.connection_stats()
        assert stats.state == "ready" and stats.errors == 22


async def test_window_can_change_while_busy(nbdkit):
    server = nbdkit("memory", "1M", filters=("delay",), extra_options=("rdelay=100ms",))
    async with nbdtui.open(server.uri, pool=Pool(), connections=1, window=1) as export:
        [conn] = export._group.connections
        tasks = [asyncio.create_task(export.read(i * 512, 512)) for i in range(18)]
        await asyncio.sleep(0.02)
        assert conn.in_flight == 1
        conn.window = 6
        await asyncio.sleep(0.02)
        assert conn.in_flight == 6
        await asyncio.gather(*tasks)
        assert conn.peak_in_flight == 6
