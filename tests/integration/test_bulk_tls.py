"""The bulk engine over TLS (nbdtui.client.bulk_tls): transfers go on threads over
blocking TLS connections of the engine's own, against nbdkit ``--tls=require`` and
qemu-nbd ``--tls-creds``; the bytes are nbdcopy's, certificates are still verified on
those connections, and ``--timeout`` still bounds a request."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading

import pytest

import nbdtui
from nbdtui.client import Pool, bulk_tls
from nbdtui.client.request import FileRange
from nbdtui.errors import ConnectError, TLSError
from nbdtui.proto.client_events import RequestDone
from nbdtui.proto.constants import Command
from nbdtui.uri import parse
from tests.support.cli_helpers import assert_one_line_error, nbdtui_measured
from tests.support.oracles import oracle

MiB = 1 << 20


def io_threads() -> int:
    return sum(t.name.startswith("nbdtui-io-") for t in threading.enumerate())


@pytest.fixture(params=["nbdkit-tcp", "nbdkit-unix", "qemu-tcp", "qemu-unix"])
def tls_server(request, nbdkit, qemu_nbd, make_image, tmp_path, tls_certs):
    """A TLS-only server (x509, verified against ``tls_certs.dir``) of each kind."""
    kind, where = request.param.split("-")
    unix = where == "unix"
    if kind == "nbdkit":
        return nbdkit("memory", "24M", unix=unix, tls=tls_certs)
    return qemu_nbd(make_image(tmp_path, 24 * MiB), export="disk", unix=unix, tls=tls_certs)


async def test_bulk_reads_and_writes_over_tls_are_byte_exact(tls_server, tmp_path):
    uri = tls_server.tls_uri_for()
    ours = os.urandom(24 * MiB)
    source = tmp_path / "source.bin"
    source.write_bytes(ours[8 * MiB :])
    async with nbdtui.open(uri, pool=Pool()) as export:
        assert export.negotiated.tls and export.negotiated.tls_verified
        async with export.bulk() as engine:
            assert engine.threaded
            # the engine's own connections, one thread each; the group's others stay
            # closed (the transfer would not use them)
            assert io_threads() == export._group.max_connections >= 2
            assert len(export._group.connections) == 1
            await engine.write(0, memoryview(ours)[: 8 * MiB])  # from memory
            with source.open("rb") as f:  # from a file (no sendfile under TLS)
                await engine.write(8 * MiB, FileRange(f, 0, 16 * MiB))
        assert io_threads() == 0
        assert {s.bulk_fallbacks for s in export.connection_stats()} == {0}
    copied = tmp_path / "copied.raw"
    oracle("nbdcopy", uri, str(copied))  # the writes were flushed and are all there
    assert copied.read_bytes() == ours

    theirs = os.urandom(24 * MiB)
    (tmp_path / "theirs.raw").write_bytes(theirs)
    oracle("nbdcopy", str(tmp_path / "theirs.raw"), uri)
    into = tmp_path / "into.bin"
    into.write_bytes(b"\xff" * 25 * MiB)
    buf = bytearray(12 * MiB)
    async with nbdtui.open(uri, pool=Pool()) as export:
        async with export.bulk() as engine:
            assert engine.threaded
            await engine.read_into(4096, memoryview(buf))  # into memory
            with into.open("r+b") as f:  # into a file (no splice under TLS)
                await engine.read_into(0, FileRange(f, MiB, 24 * MiB))
        # the event loop's connections are still there and usable
        assert await export.read(24 * MiB - 5, 5) == theirs[-5:]
    assert buf == theirs[4096 : 4096 + 12 * MiB]
    got = into.read_bytes()
    assert got[:MiB] == b"\xff" * MiB and got[MiB:] == theirs


async def test_the_bulk_connections_verify_the_certificate(nbdkit, tls_certs, tmp_path):
    """The engine's TLS connections check the server as the event loop's do: with the
    trusted CA changed between opening the export and the transfer, the transfer fails
    with the one-line verification error (it does not fall back to the event loop)."""
    server = nbdkit("pattern", "16M", tls=tls_certs)
    certs = tmp_path / "certs"
    shutil.copytree(tls_certs.dir, certs)
    uri = f"nbds://127.0.0.1:{server.port}/?tls-certificates={certs}"
    async with nbdtui.open(uri, pool=Pool()) as export:
        assert export.negotiated.tls_verified
        async with export.bulk() as engine:  # opens 4 TLS connections of its own
            assert engine.threaded and io_threads() == 4
        shutil.copy(tls_certs.wrong_ca_dir / "ca-cert.pem", certs / "ca-cert.pem")
        with pytest.raises(TLSError) as caught:
            await export.bulk()
        assert io_threads() == 0
    message = str(caught.value)
    assert "\n" not in message
    assert "TLS certificate verify failed" in message and "unknown CA" in message


async def test_cli_read_and_write_over_tls_go_on_threads(nbdkit, tls_certs, tmp_path):
    server = nbdkit("memory", "32M", tls=tls_certs)
    uri = server.tls_uri_for()
    data = os.urandom(32 * MiB)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    run = await asyncio.to_thread(nbdtui_measured, "write", uri, str(source), timeout=120)
    assert run.returncode == 0, run.stderr
    copied = tmp_path / "copied.raw"
    oracle("nbdcopy", uri, str(copied))
    assert copied.read_bytes() == data
    out = tmp_path / "out.bin"
    run = await asyncio.to_thread(nbdtui_measured, "read", uri, "-o", str(out), timeout=120)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == data


async def test_timeout_bounds_a_bulk_read_over_tls(nbdkit, tls_certs, tmp_path):
    """A server that takes 30 s per read: ``read --timeout 2`` over TLS ends with the
    one-line timeout error within seconds (the watchdog ends the TLS connection's
    stream), not after 30 s per request."""
    server = nbdkit(
        "pattern", "64M", filters=("delay",), extra_options=("rdelay=30",), tls=tls_certs
    )
    out = tmp_path / "out.bin"
    args = ("read", server.tls_uri_for(), "--length", "16M", "--timeout", "2", "-o", str(out))
    run = await asyncio.to_thread(nbdtui_measured, *args, timeout=90)
    assert_one_line_error(run, 1, "timed out after 2 s")
    assert run.seconds < 20, run.seconds


async def test_a_server_taking_no_more_connections_keeps_the_event_loop(nbdkit, tls_certs):
    """nbdkit's limit filter lets in 4 connections and no more: with the export's first
    one open, one of the engine's 4 TLS connections is refused, the transfer goes on the
    event loop (on the group's connections the server let in), byte exact, and the next
    transfer does not try again."""
    server = nbdkit("pattern", "16M", filters=("limit",), extra_options=("limit=4",), tls=tls_certs)
    async with nbdtui.open(server.tls_uri_for(), pool=Pool()) as export:
        for transfer in (1, 2):
            async with export.bulk() as engine:
                assert not engine.threaded and io_threads() == 0
                # opened by bulk() once the engine's own were refused; those just closed
                # may still count against the limit for a moment
                assert 1 <= len(export._group.connections) <= 4
                buf = bytearray(4 * MiB)
                await engine.read_into(12 * MiB, memoryview(buf))
            assert buf == b"".join(i.to_bytes(8, "big") for i in range(12 * MiB, 16 * MiB, 8))
            assert {s.bulk_fallbacks for s in export.connection_stats()} == {transfer}


async def test_a_file_read_on_the_event_loop_goes_through_a_bounded_buffer(
    nbdkit, tls_certs, tmp_path, monkeypatch
):
    """An engine left on the event loop (the server lets in no more connections) reads a
    large FileRange 4 MiB at a time through one buffer, not a buffer as large as the call
    (read_to_file's calls cover up to 64 MiB), and the file gets the pattern's bytes."""
    server = nbdkit("pattern", "16M", filters=("limit",), extra_options=("limit=4",), tls=tls_certs)
    out = tmp_path / "out"
    out.write_bytes(b"\xff" * 12 * MiB)
    async with nbdtui.open(server.tls_uri_for(), pool=Pool()) as export:
        lengths: list[int] = []
        real = type(export).read_into

        async def read_into(self, offset, buffer):
            lengths.append(len(buffer))
            await real(self, offset, buffer)

        monkeypatch.setattr(type(export), "read_into", read_into)
        async with export.bulk() as engine:
            assert not engine.threaded
            with open(out, "r+b", buffering=0) as f:
                await engine.read_into(3 * MiB, FileRange(f, MiB, 10 * MiB))
    assert lengths == [4 * MiB, 4 * MiB, 2 * MiB]
    got = out.read_bytes()
    pattern = b"".join(i.to_bytes(8, "big") for i in range(3 * MiB, 13 * MiB, 8))
    assert got[MiB : 11 * MiB] == pattern
    assert got[:MiB] == got[11 * MiB :] == b"\xff" * MiB


async def test_a_bulk_read_opens_only_the_engines_own_connections(nbdkit, tls_certs):
    """Over TLS the engine does not first open the group's other connections on the
    event loop (each a TLS handshake it would not use): the server sees the export's
    first connection and the engine's 4, all TLS, and the bytes are the pattern's."""
    server = nbdkit("pattern", "32M", log=True, tls=tls_certs)
    buf = bytearray(32 * MiB)
    uri = server.tls_uri_for()
    async with nbdtui.open(uri, pool=Pool()) as export, export.bulk() as engine:
        assert engine.threaded
        await engine.read_into(0, memoryview(buf))
    assert buf == b"".join(i.to_bytes(8, "big") for i in range(0, 32 * MiB, 8))
    connects = [line for line in server.log_path.read_text().splitlines() if " Connect " in line]
    assert len(connects) == 5, connects
    assert all("tls=1" in line for line in connects), connects


def test_an_own_connection_reads_qemu_nbd_byte_exact_and_its_handshake_times_out(
    qemu_nbd, make_image, tmp_path, tls_certs
):
    """The engine's blocking handshake driver (StartTLS hook) against qemu-nbd
    ``--tls-creds --shared=1``: one connection negotiates and reads the image byte exact;
    a second is accepted by the kernel but never answered (qemu-nbd has its one client),
    and gives up after the connect timeout with the one-line message of any connection."""
    content = os.urandom(2 * MiB)
    image = make_image(tmp_path, 2 * MiB, content=content)
    server = qemu_nbd(image, export="disk", extra=("--shared=1",), tls=tls_certs)
    endpoint = parse(server.tls_uri_for())
    side = bulk_tls.open_side(endpoint, connect_timeout=5, window=1)
    try:
        assert side.negotiated.info.size == 2 * MiB
        stream = side.sock
        stream.sendall(side.machine.request(Command.READ, 4096, MiB)[1])
        head = bytearray()
        while side.machine.read_target() is None:  # the reply's header, then its payload
            head += stream.recv(1)
            side.machine.receive_data(bytes(head[-1:]))
        got = bytearray(MiB)
        stream.receive_exactly(memoryview(got))
        done = [e for e in side.machine.payload_received(MiB) if isinstance(e, RequestDone)]
        assert got == content[4096 : 4096 + MiB] and done and not done[0].error
        with pytest.raises(ConnectError) as caught:
            bulk_tls.open_side(endpoint, connect_timeout=0.5, window=1)
    finally:
        side.sock.close()
    message = str(caught.value)
    assert "\n" not in message
    assert "timed out connecting to" in message and "after 0.5 s" in message


def test_an_own_connection_refuses_a_server_signed_by_another_ca(
    qemu_nbd, make_image, tmp_path, tls_certs
):
    """qemu-nbd's certificate from another CA: the blocking driver's StartTLS hook fails
    with the one-line verification error of the event loop's connections."""
    server = qemu_nbd(make_image(tmp_path, MiB), export="disk", tls=tls_certs.wrong_ca_dir)
    endpoint = parse(f"nbds://127.0.0.1:{server.port}/disk?tls-certificates={tls_certs.dir}")
    with pytest.raises(TLSError) as caught:
        bulk_tls.open_side(endpoint, connect_timeout=5, window=1)
    message = str(caught.value)
    assert "\n" not in message
    assert "TLS certificate verify failed" in message and "unknown CA" in message
