"""A server that dies and comes back: reconnect with backoff, replay of the requests
that were in flight, giving up cleanly, refusing an export that changed.

The servers are real: qemu-nbd over a file on a Unix socket, SIGKILLed in the middle of
the work and started again on the same socket path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbdtui
from nbdtui.client import Pool
from nbdtui.client.group import PooledConnectionStats
from nbdtui.client.pool import cancel_connection
from nbdtui.errors import ConnectionLostError, ExportChangedError
from tests.support.cli_helpers import assert_one_line_error
from tests.support.fakes import Peer
from tests.support.servers import ONE_THREAD, Server

MiB = 1 << 20


def random_image(make_image, tmp_path: Path, size: int, name: str = "disk.img") -> Path:
    return make_image(tmp_path, size, content=os.urandom(size), name=name)


async def restart_later(servers, server, delay: float, image: Path | None = None) -> Server:
    await asyncio.sleep(delay)
    return await asyncio.to_thread(servers.restart, server, image)


# ---- the library ------------------------------------------------------------------------


async def test_reads_in_flight_are_replayed_after_a_restart(
    servers, qemu_nbd, make_image, tmp_path
):
    image = random_image(make_image, tmp_path, 64 * MiB)
    expected = image.read_bytes()
    server = qemu_nbd(image, unix=True)
    async with nbdtui.open(server.uri, pool=Pool(), reconnect_delay=20, connections=1) as export:
        assert await export.read(0, 4096) == expected[:4096]
        [first] = export.connection_stats()
        server.kill()
        restarted = asyncio.create_task(restart_later(servers, server, 1.0))
        reads = [export.read(i * 4 * MiB, 4 * MiB) for i in range(16)]
        t0 = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*reads), 15)
        assert time.monotonic() - t0 >= 0.9  # they waited for the server to come back
        assert b"".join(results) == expected
        await restarted
        [stats] = export.connection_stats()
        assert stats.state == "ready" and stats.conn_id != first.conn_id
        assert export._group.reconnects == 1


async def test_writes_in_flight_are_replayed_and_flush_tells_about_acknowledged_ones(
    servers, qemu_nbd, make_image, tmp_path
):
    image = make_image(tmp_path, 8 * MiB)
    server = qemu_nbd(image, unix=True)
    async with nbdtui.open(server.uri, pool=Pool(), reconnect_delay=20) as export:
        await export.write(0, b"A" * 4096)  # acknowledged, never flushed
        server.kill()
        restarted = asyncio.create_task(restart_later(servers, server, 0.5))
        data = os.urandom(4 * MiB)
        await asyncio.wait_for(export.write(MiB, data), 15)  # waits for the restart
        await restarted
        # The server may have lost the write it acknowledged before it died: say so.
        with pytest.raises(ConnectionLostError, match="1 write acknowledged before the conn"):
            await export.flush()
        await export.flush()  # said once; the writes since then are covered
        assert await export.read(MiB, 4 * MiB) == data
    content = image.read_bytes()
    assert content[MiB : 5 * MiB] == data


@pytest.mark.parametrize("reconnect_delay", [0, 5])
async def test_a_write_is_done_only_after_its_reply_and_sent_again_after_a_drop(
    fake_server,
    reconnect_delay,
):
    """The first connection takes the write and drops without answering; the second
    one gets it again and answers after 0.3 s. Without reconnect the write fails."""
    seen: list[bytes] = []

    async def scenario(peer: Peer) -> None:
        ((_, _, cookie, _, _, payload),) = await peer.requests(1)
        seen.append(payload)
        if len(seen) == 1:
            peer.writer.transport.abort()
            return
        await asyncio.sleep(0.3)
        peer.simple(cookie)
        await asyncio.sleep(1)

    uri = await fake_server(scenario)
    async with nbdtui.open(uri, pool=Pool(), reconnect_delay=reconnect_delay) as export:
        t0 = time.monotonic()
        if not reconnect_delay:
            with pytest.raises(ConnectionLostError, match="lost with 1 request in flight"):
                await asyncio.wait_for(export.write(4096, b"payload"), 5)
            assert seen == [b"payload"]
            return
        await asyncio.wait_for(export.write(4096, b"payload"), 5)
        assert time.monotonic() - t0 >= 0.3  # not before the reply
    assert seen == [b"payload", b"payload"]


async def test_gives_up_after_the_delay_and_every_waiter_fails(qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(make_image(tmp_path, 4 * MiB), unix=True)
    async with nbdtui.open(server.uri, pool=Pool(), reconnect_delay=1.5, window=2) as export:
        await export.read(0, 512)
        server.kill()
        t0 = time.monotonic()
        tasks = [asyncio.create_task(export.read(i * 4096, 4096)) for i in range(8)]
        await asyncio.sleep(0.5)
        [row] = export.connection_stats()
        assert isinstance(row, PooledConnectionStats)
        assert row.state == "reconnecting" and row.in_flight >= 1 and row.oldest_age > 0.3
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        elapsed = time.monotonic() - t0
        assert 1.4 <= elapsed < 5, elapsed
        for r in results:
            assert isinstance(r, ConnectionLostError), r
            assert "gave up reconnecting after 1.5 s" in str(r)
            assert "connection refused" in str(r)  # the last attempt's reason
        with pytest.raises(ConnectionLostError, match="gave up reconnecting"):
            await export.read(0, 1)  # later requests fail at once
        [row] = export.connection_stats()
        assert row.state == "closed" and "gave up" in row.error


async def test_without_reconnect_delay_a_drop_fails_at_once(qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(make_image(tmp_path, 4 * MiB), unix=True)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        await export.read(0, 512)
        server.kill()
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        with pytest.raises(ConnectionLostError, match="closed the connection"):
            await export.read(0, 512)
        assert time.monotonic() - t0 < 1


async def test_a_shrunken_export_is_refused(servers, qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(make_image(tmp_path, 4 * MiB), unix=True)
    small = make_image(tmp_path, 1 * MiB, name="small.img")
    async with nbdtui.open(server.uri, pool=Pool(), reconnect_delay=20) as export:
        await export.read(0, 512)
        server.kill()
        await asyncio.to_thread(servers.restart, server, small)
        t0 = time.monotonic()
        with pytest.raises(ExportChangedError, match="size shrank from 4194304 to 1048576"):
            await export.read(0, 512)
        assert time.monotonic() - t0 < 5  # no point retrying for 20 s
        with pytest.raises(ConnectionLostError, match="changed while nbdtui was reconnecting"):
            await export.read(0, 512)


async def test_cancel_closes_and_reopens_the_connection(nbdkit):
    """The pool screen's cancel key: requests in flight on the cancelled connection are
    sent again on the new one and succeed."""
    server = nbdkit("pattern", "16M", filters=("delay",), extra_options=(*ONE_THREAD, "rdelay=1"))
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        [before] = export.connection_stats()
        reads = asyncio.gather(*(export.read(i * MiB, 16) for i in range(2)))
        await asyncio.sleep(0.3)
        [stalled] = export.connection_stats()
        assert stalled.in_flight == 2 and 0.2 < stalled.oldest_age < 1
        assert cancel_connection(stalled.conn_id) is True
        results = await asyncio.wait_for(reads, 10)
        for i, data in enumerate(results):
            assert data == b"".join((i * MiB + k).to_bytes(8, "big") for k in (0, 8))
        [after] = export.connection_stats()
        assert after.state == "ready" and after.conn_id != before.conn_id
        assert cancel_connection(10**9) is False


async def test_a_stalled_connection_shows_its_oldest_request(nbdkit, monkeypatch):
    # STALL_SECONDS (3 s) lowered to 1 s, and the server's delay with it.
    monkeypatch.setattr("nbdtui.client.group.STALL_SECONDS", 1.0)
    server = nbdkit("memory", "1M", filters=("delay",), extra_options=("rdelay=2",))
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        read = asyncio.create_task(export.read(0, 512))
        await asyncio.sleep(1.3)
        [row] = export.connection_stats()
        assert row.stalled and row.oldest_age >= 1 and row.in_flight == 1
        assert await asyncio.wait_for(read, 5) == bytes(512)
        [row] = export.connection_stats()
        assert not row.stalled and row.oldest_age == 0


# ---- the command line -----------------------------------------------------------------


def _start_read(uri: str, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nbdtui", "read", uri, "-o", str(out), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_output(proc: subprocess.Popen, out: Path, at_least: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            size = out.stat().st_size
            if size >= at_least:
                return size
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.001)
    raise AssertionError("the read did not start")


BIG = 384 * MiB


def test_cli_read_without_reconnect_fails_fast_when_the_server_dies(qemu_nbd, make_image, tmp_path):
    image = random_image(make_image, tmp_path, BIG)
    server = qemu_nbd(image, unix=True)
    out = tmp_path / "out.img"
    proc = _start_read(server.uri, out)
    copied = _wait_for_output(proc, out, 16 * MiB)
    server.kill()
    t0 = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert time.monotonic() - t0 < 5
    assert copied < BIG  # it really died in the middle
    from tests.support.cli_helpers import Result

    result = Result(proc.returncode, b"", stderr.decode())
    assert_one_line_error(result, 1, "connection to ", "nbd.sock")


def test_cli_read_with_reconnect_survives_a_restart(servers, qemu_nbd, make_image, tmp_path):
    image = random_image(make_image, tmp_path, BIG)
    server = qemu_nbd(image, unix=True)
    out = tmp_path / "out.img"
    proc = _start_read(server.uri, out, "--reconnect-delay", "20")
    try:
        copied = _wait_for_output(proc, out, 16 * MiB)
        server.kill()
        time.sleep(1.0)
        assert proc.poll() is None  # still waiting for the server
        servers.restart(server)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr.decode()
    assert copied < BIG
    assert out.stat().st_size == BIG
    with out.open("rb") as a, image.open("rb") as b:
        while True:
            x, y = a.read(16 * MiB), b.read(16 * MiB)
            assert x == y
            if not x:
                break
