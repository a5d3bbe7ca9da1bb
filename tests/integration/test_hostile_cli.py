"""The command line against servers that fail, drip, flood or break the rules (issue 13).

Real peers where one can produce the case (nbdkit's error and delay filters); the
scenario-driven fake server of ``tests/support/fakes.py`` where none can.
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
import time

import pytest

from nbdtui.proto.constants import (
    OPTION_REPLY_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    ChunkType,
    Command,
    Option,
    OptionReply,
    TransmissionFlag,
)
from tests.support.cli_helpers import assert_one_line_error, nbdtui, nbdtui_measured
from tests.support.fakes import HandshakePeer, Peer

MiB = 1024 * 1024


def test_large_write_failing_everywhere_is_one_line_and_prompt(nbdkit, tmp_path):
    """Every write fails with EIO: the bulk engine falls back to the event loop, whose
    sendfile must not touch the input file once the command gave up (asyncio printed
    'Exception in callback ... Bad file descriptor'), nor wait for a half-sent payload
    (a 5 s stall)."""
    server = nbdkit(
        "memory",
        "64M",
        filters=("error",),
        unix=True,
        extra_options=("error-pwrite=EIO", "error-pwrite-rate=100%"),
    )
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(16 * MiB))
    for _ in range(5):
        started = time.monotonic()
        result = nbdtui("write", server.uri, str(source))
        elapsed = time.monotonic() - started
        assert_one_line_error(result, 1, "write: EIO (Input/output error)")
        assert elapsed < 3, elapsed


# ---- item 1: endless option reply streams -----------------------------------------------


async def _endless_list(peer: HandshakePeer) -> None:
    await peer.greet()
    await peer.until(Option.LIST)
    name = b"x" * 8
    await peer.flood(_option_reply(Option.LIST, OptionReply.SERVER, _server_payload(name)))


async def _endless_contexts(peer: HandshakePeer) -> None:
    await peer.greet()
    await peer.until(Option.LIST_META_CONTEXT)
    payload = struct.pack(">I", 0) + b"base:allocation"
    await peer.flood(_option_reply(Option.LIST_META_CONTEXT, OptionReply.META_CONTEXT, payload))


def _option_reply(option: int, reply: int, payload: bytes) -> bytes:
    return struct.pack(">QIII", OPTION_REPLY_MAGIC, option, reply, len(payload)) + payload


def _server_payload(name: bytes) -> bytes:
    return struct.pack(">I", len(name)) + name


@pytest.mark.parametrize(
    ("command", "handshake", "option"),
    [
        ("list", _endless_list, "NBD_OPT_LIST"),
        ("info", _endless_contexts, "NBD_OPT_LIST_META_CONTEXT"),
    ],
)
async def test_endless_option_replies_meet_a_cap(fake_server, command, handshake, option):
    uri = await fake_server(handshake=handshake)
    run = await asyncio.to_thread(nbdtui_measured, command, uri, "--connect-timeout", "60")
    assert_one_line_error(run, 1, f"replies to {option}", "cap")
    assert run.seconds < 10, run.seconds
    assert run.peak_rss < 200 * MiB, run.peak_rss


# ---- the export list: large, or slow ---------------------------------------------------


def _listing(count: int, *, stall_after: int | None = None, described: int | None = None):
    """A handshake scenario: ``count`` exports; the list stops coming after
    ``stall_after`` of them, or the details after ``described`` exports (else the
    server supports neither NBD_OPT_INFO nor NBD_OPT_LIST_META_CONTEXT)."""

    async def play(peer: HandshakePeer) -> None:
        await peer.greet()
        await peer.until(Option.LIST)
        for i in range(count):
            if i == stall_after:
                await peer.writer.drain()
                await asyncio.sleep(3600)
            name = f"export-{i:06d}".encode()
            peer.writer.write(_option_reply(Option.LIST, OptionReply.SERVER, _server_payload(name)))
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
                export = struct.pack(">HQH", 0, MiB, 1)
                peer.reply(option, OptionReply.INFO, export)
                peer.reply(option, OptionReply.ACK)
            else:
                peer.reply(option, OptionReply.ERR_UNSUP)

    return play


async def test_a_list_of_100000_exports_at_the_default_timeout(fake_server):
    uri = await fake_server(handshake=_listing(100_000))
    run = await asyncio.to_thread(nbdtui_measured, "list", uri)
    assert run.returncode == 0, run.stderr
    lines = run.text.splitlines()
    assert len(lines) == 100_000
    assert lines[0].startswith("export-000000") and lines[-1].startswith("export-099999")
    assert run.peak_rss < 200 * MiB, run.peak_rss


async def test_a_slow_export_list_says_the_list_was_slow(fake_server):
    uri = await fake_server(handshake=_listing(2000, stall_after=1500))
    run = await asyncio.to_thread(nbdtui_measured, "list", uri, "--connect-timeout", "1")
    assert_one_line_error(
        run, 1, "timed out after 1 s receiving the export list of", "(1500 so far;"
    )
    assert "connecting" not in run.stderr


async def test_slow_export_details_say_the_listing_was_slow(fake_server):
    uri = await fake_server(handshake=_listing(10, described=3))
    run = await asyncio.to_thread(nbdtui_measured, "list", uri, "--connect-timeout", "1")
    assert_one_line_error(run, 1, "timed out after 1 s asking", "about its exports (3 of 10")


# ---- item 9: READ_ONLY without HAS_FLAGS -----------------------------------------------

READ_ONLY_NO_HAS_FLAGS = int(TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_FLUSH)


async def _read_only_without_has_flags(peer: HandshakePeer) -> None:
    await peer.greet()
    await peer.until(Option.GO)
    peer.go(flags=READ_ONLY_NO_HAS_FLAGS)


async def test_read_only_without_has_flags_is_honoured_with_a_warning(fake_server, tmp_path):
    commands: list[int] = []

    async def record(peer: Peer) -> None:
        while True:
            commands.append((await peer.request())[1])

    uri = await fake_server(record, handshake=_read_only_without_has_flags)
    info = await asyncio.to_thread(nbdtui, "info", uri)
    assert info.returncode == 0, info.stderr
    assert re.search(r"read-only: +yes", info.text), info.text
    assert "supports:" in info.text and "flush" not in info.text.split("supports:")[1]
    [warning] = info.stderr.splitlines()
    assert warning.startswith("nbdtui: warning: server 127.0.0.1:")
    assert "without HAS_FLAGS" in warning and "honours READ_ONLY" in warning

    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 4096)
    write = await asyncio.to_thread(nbdtui, "write", uri, str(source))
    assert write.returncode == 1
    lines = write.stderr.splitlines()
    assert lines[0].startswith("nbdtui: warning:") and "without HAS_FLAGS" in lines[0]
    assert len(lines) == 2 and "read-only" in lines[1], write.stderr
    assert Command.WRITE not in commands


async def test_json_info_says_read_only_too(fake_server):
    uri = await fake_server(handshake=_read_only_without_has_flags)
    info = await asyncio.to_thread(nbdtui, "info", "--json", uri)
    assert info.returncode == 0, info.stderr
    assert info.json()["exports"][0]["is_read_only"] is True


# ---- item 3: --timeout on every path ---------------------------------------------------

DRIP_SIZE = 64 * MiB


async def _plain_go(peer: HandshakePeer) -> None:
    """A server that knows no meta context (no block status): every byte is read."""
    await peer.greet()
    await peer.until(Option.GO)
    peer.go(size=DRIP_SIZE, flags=int(TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH))


async def _drip(peer: Peer) -> None:
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


@pytest.mark.parametrize("output", ["file", "pipe"])
async def test_a_dripping_server_cannot_keep_a_large_read_alive(fake_server, tmp_path, output):
    """16 MiB over TCP go on threads (the bulk engine): a server that sends a byte now
    and then used to keep ``read --timeout 3`` running for ever."""
    uri = await fake_server(_drip, handshake=_plain_go)
    out = str(tmp_path / "out.bin") if output == "file" else "-"
    args = ("read", uri, "--length", "16M", "--timeout", "2", "-o", out)
    run = await asyncio.to_thread(nbdtui_measured, *args, timeout=60)
    assert_one_line_error(run, 1, "timed out after 2 s")
    assert run.seconds < 15, run.seconds
