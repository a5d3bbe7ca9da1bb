"""Servers that say nothing: the connect timeout bounds the handshake, the request
timeout fails a stalled request in time, closes its connection and opens a new one."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

import nbdtui
from nbdtui.client import Pool
from nbdtui.errors import ConnectError, RequestTimeoutError
from tests.support.cli_helpers import assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_cli
from tests.support.oracles import oracle
from tests.support.servers import ONE_THREAD

MiB = 1 << 20
# nbdkit 1.32 can abort (connections.c: raw_send_socket: Assertion `sock >= 0') when a
# client closes a connection while several of its threads serve requests of it, as
# nbdtui does on a timeout: the servers of these tests serve each connection with one.


class Ticker:
    """Measures how late the event loop runs a 10 ms sleep (its responsiveness)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - t0 - 0.01)

    def stop(self) -> float:
        self.task.cancel()
        return self.worst


# ---- connect + handshake ---------------------------------------------------------------


@pytest.fixture
def silent_listener():
    """A plain listening socket that never accepts: the kernel completes the TCP
    handshake, and then nothing is ever said."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


async def test_connect_timeout_bounds_a_server_that_says_nothing(silent_listener):
    t0 = time.monotonic()
    with pytest.raises(
        ConnectError, match=r"timed out connecting to 127\.0\.0\.1:\d+ after 0\.5 s"
    ):
        await nbdtui.open(f"nbd://127.0.0.1:{silent_listener}/", pool=Pool(), connect_timeout=0.5)
    assert time.monotonic() - t0 < 2


async def test_connect_timeout_bounds_a_greeting_cut_short():
    async def half_greeting(reader, writer):
        writer.write(b"NBDMAGIC")  # and then nothing more
        await writer.drain()
        await asyncio.sleep(10)

    server = await asyncio.start_server(half_greeting, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(ConnectError, match="timed out connecting"):
            await nbdtui.open(f"nbd://127.0.0.1:{port}/", pool=Pool(), connect_timeout=0.5)
        assert time.monotonic() - t0 < 2
    finally:
        server.close()


@pytest.mark.parametrize("command", [("info",), ("read", "--length", "512")])
def test_cli_connect_timeout_against_a_silent_listener(silent_listener, command):
    name, *rest = command
    t0 = time.monotonic()
    result = run_cli(
        name, f"nbd://127.0.0.1:{silent_listener}/", "--connect-timeout", "1", *rest, timeout=20
    )
    assert time.monotonic() - t0 < 6
    assert_one_line_error(result, 1, "timed out connecting to 127.0.0.1", "after 1 s")


# ---- request timeout ---------------------------------------------------------------------


async def test_a_stalled_read_times_out_and_the_connection_is_reopened(nbdkit):
    server = nbdkit("memory", "4M", filters=("delay",), extra_options=(*ONE_THREAD, "delay-read=2"))
    async with nbdtui.open(server.uri, pool=Pool(), timeout=0.5) as export:
        await export.write(0x1000, b"written before")  # writes are not delayed
        [before] = export.connection_stats()
        ticker = Ticker()
        t0 = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await export.read(0x1000, 4096)
        elapsed = time.monotonic() - t0
        assert ticker.stop() < 0.2  # the process stayed responsive meanwhile
        assert 0.45 <= elapsed < 1.5, elapsed
        assert str(info.value) == (
            f"read of 4096 bytes at offset 0x1000 timed out after 0.5 s "
            f"(server 127.0.0.1:{server.port})"
        )
        # the next request goes over a new connection and succeeds
        await export.write(0x2000, b"written after")
        [after] = export.connection_stats()
        assert after.state == "ready" and after.conn_id != before.conn_id
        assert export._group.reconnects == 1
        export.timeout = 10  # now wait for the slow reads
        assert await export.read(0x1000, 14) == b"written before"
        assert await export.read(0x2000, 13) == b"written after"


async def test_requests_in_flight_on_a_timed_out_connection_are_sent_again(nbdkit):
    """A zero stalls (5 s) and times out after 3 s; the reads sent after it on the same
    connection (1 s each, queued behind it: the server serves the connection with one
    thread) are still in flight when it is closed: they are sent again on the new
    connection and return the right bytes."""
    server = nbdkit(
        "memory",
        "16M",
        filters=("delay",),
        extra_options=(*ONE_THREAD, "delay-read=1", "delay-zero=5"),
    )
    async with nbdtui.open(server.uri, pool=Pool(), timeout=3, connections=1) as export:
        await export.write(MiB, b"A" * 512)
        await export.write(2 * MiB, b"B" * 512)
        zero = asyncio.create_task(export.zero(0, 512))
        await asyncio.sleep(1.5)
        reads = asyncio.gather(export.read(MiB, 512), export.read(2 * MiB, 512))
        t0 = time.monotonic()
        with pytest.raises(RequestTimeoutError, match="zero of 512 bytes at offset 0x0 timed"):
            await zero
        assert time.monotonic() - t0 < 2.5  # 1.5 s after the reads were sent
        results = await asyncio.wait_for(reads, 10)
        assert results == [b"A" * 512, b"B" * 512]
        assert time.monotonic() - t0 >= 1  # sent again, waited the read delay again
        assert export._group.reconnects == 1


def test_cli_read_times_out(nbdkit):
    options = (*ONE_THREAD, "delay-read=10")
    server = nbdkit("pattern", "4M", filters=("delay",), extra_options=options)
    t0 = time.monotonic()
    result = run_cli("read", server.uri, "--length", "4096", "--offset", "8192", "--timeout", "1")
    assert time.monotonic() - t0 < 6
    assert_one_line_error(
        result, 1, "read of 4096 bytes at offset 0x2000 timed out after 1 s", str(server.port)
    )


def test_cli_write_with_timeout_succeeds_when_the_server_is_quick_enough(nbdkit, tmp_path):
    server = nbdkit("memory", "4M", filters=("delay",), extra_options=("delay-write=100ms",))
    data = bytes(range(256)) * 4096
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    result = run_cli("write", server.uri, str(source), "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert oracle("nbdcopy", server.uri, "-")[: len(data)] == data


async def test_a_request_that_cannot_go_out_in_time_blames_the_server(nbdkit, monkeypatch):
    """A request that waited the whole timeout to be sent (behind requests that got no
    reply, as a piece that timed out on the bulk threads and is tried again on the
    event loop does) says what happened: the server did not answer in time."""
    from nbdtui.client.connection import Connection

    server = nbdkit("memory", "4M")
    async with nbdtui.open(server.uri, pool=Pool(), timeout=0.5) as export:

        async def window_full(self, request):
            await asyncio.sleep(10)

        monkeypatch.setattr(Connection, "submit_nowait", lambda self, request: None)
        monkeypatch.setattr(Connection, "submit", window_full)
        with pytest.raises(RequestTimeoutError) as info:
            await export.read(0x1000, 4096)
        assert str(info.value) == (
            "read of 4096 bytes at offset 0x1000 timed out after 0.5 s: the server did not "
            f"answer in time (server 127.0.0.1:{server.port})"
        )
