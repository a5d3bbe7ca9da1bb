"""The command line against servers that fail, drip, flood or break the rules (issue 13).

Real peers where one can produce the case (nbdkit's error and delay filters); the
scenario-driven fake server of ``tests/support/fakes.py`` where none can.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest

from nbdtui.proto.constants import Command
from tests.support.cli_helpers import assert_one_line_error, nbdtui, nbdtui_measured
from tests.support.fakes import (
    Peer,
    drip,
    endless_contexts,
    endless_list,
    listing,
    plain_go,
    read_only_without_has_flags,
    sip,
    tiny_extents,
    with_allocation,
)

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


@pytest.mark.parametrize(
    ("command", "handshake", "option"),
    [
        ("list", endless_list, "NBD_OPT_LIST"),
        ("info", endless_contexts, "NBD_OPT_LIST_META_CONTEXT"),
    ],
)
async def test_endless_option_replies_meet_a_cap(fake_server, command, handshake, option):
    uri = await fake_server(handshake=handshake)
    run = await asyncio.to_thread(nbdtui_measured, command, uri, "--connect-timeout", "60")
    assert_one_line_error(run, 1, f"replies to {option}", "cap")
    assert run.seconds < 10, run.seconds
    assert run.peak_rss < 200 * MiB, run.peak_rss


# ---- the export list: large, or slow ---------------------------------------------------


async def test_a_list_of_100000_exports_at_the_default_timeout(fake_server):
    uri = await fake_server(handshake=listing(100_000))
    run = await asyncio.to_thread(nbdtui_measured, "list", uri)
    assert run.returncode == 0, run.stderr
    lines = run.text.splitlines()
    assert len(lines) == 100_000
    assert lines[0].startswith("export-000000") and lines[-1].startswith("export-099999")
    assert run.peak_rss < 200 * MiB, run.peak_rss


async def test_a_slow_export_list_says_the_list_was_slow(fake_server):
    uri = await fake_server(handshake=listing(2000, stall_after=1500))
    run = await asyncio.to_thread(nbdtui_measured, "list", uri, "--connect-timeout", "1")
    assert_one_line_error(
        run, 1, "timed out after 1 s receiving the export list of", "(1500 so far;"
    )
    assert "connecting" not in run.stderr


async def test_slow_export_details_say_the_listing_was_slow(fake_server):
    uri = await fake_server(handshake=listing(10, described=3))
    run = await asyncio.to_thread(nbdtui_measured, "list", uri, "--connect-timeout", "1")
    assert_one_line_error(run, 1, "timed out after 1 s asking", "about its exports (3 of 10")


# ---- item 9: READ_ONLY without HAS_FLAGS -----------------------------------------------


async def test_read_only_without_has_flags_is_honoured_with_a_warning(fake_server, tmp_path):
    commands: list[int] = []

    async def record(peer: Peer) -> None:
        while True:
            commands.append((await peer.request())[1])

    uri = await fake_server(record, handshake=read_only_without_has_flags)
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
    uri = await fake_server(handshake=read_only_without_has_flags)
    info = await asyncio.to_thread(nbdtui, "info", "--json", uri)
    assert info.returncode == 0, info.stderr
    assert info.json()["exports"][0]["is_read_only"] is True


# ---- item 3: --timeout on every path ---------------------------------------------------


@pytest.mark.parametrize("output", ["file", "pipe"])
async def test_a_dripping_server_cannot_keep_a_large_read_alive(fake_server, tmp_path, output):
    """16 MiB over TCP go on threads (the bulk engine): a server that sends a byte now
    and then used to keep ``read --timeout 3`` running for ever."""
    uri = await fake_server(drip, handshake=plain_go(64 * MiB))
    out = str(tmp_path / "out.bin") if output == "file" else "-"
    args = ("read", uri, "--length", "16M", "--timeout", "2", "-o", out)
    run = await asyncio.to_thread(nbdtui_measured, *args, timeout=60)
    assert_one_line_error(run, 1, "timed out after 2 s")
    assert "waiting to be sent" not in run.stderr  # (tried again on the event loop)
    assert run.seconds < 15, run.seconds


async def test_a_sipping_server_cannot_keep_a_large_write_alive(fake_server, tmp_path):
    """The same for `write`: a server that takes a byte of payload every 0.3 s (the
    socket's send timeout alone never expires)."""
    uri = await fake_server(sip, handshake=plain_go(64 * MiB))
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(16 * MiB))
    args = ("write", uri, str(source), "--timeout", "2")
    run = await asyncio.to_thread(nbdtui_measured, *args, timeout=60)
    assert_one_line_error(run, 1, "timed out after 2 s")
    assert "waiting to be sent" not in run.stderr
    # 2 s on the threads, 2 s again on the event loop; the socket's send timeout alone
    # took 11.6 s here (the kernel's window updates stall the sends now and then)
    assert run.seconds < 10, run.seconds


# ---- item 2: block status in 1-byte extents ----------------------------------------------


@pytest.mark.parametrize("run", [1, 4096])
async def test_read_of_an_export_in_1_byte_extents_stays_small(fake_server, tmp_path, run):
    """Every byte its own extent (flags alternating every ``run`` extents): `read`
    collected them all before reading (12 GB for 64 MiB); now each reply holds at most
    MAX_STATUS_EXTENTS and only zero ranges that can hold a whole piece are kept."""
    uri = await fake_server(tiny_extents(run), handshake=with_allocation(16 * MiB))
    out = tmp_path / "out.bin"
    run_ = await asyncio.to_thread(nbdtui_measured, "read", uri, "-o", str(out), timeout=120)
    assert run_.returncode == 0, run_.stderr
    assert out.read_bytes() == bytes(16 * MiB)
    assert run_.peak_rss < 100 * MiB, run_.peak_rss


async def test_map_of_an_export_in_1_byte_extents_streams(fake_server):
    """`map` prints the extents as they come; merged where their kind does not change."""
    uri = await fake_server(tiny_extents(4096), handshake=with_allocation(16 * MiB))
    run = await asyncio.to_thread(nbdtui_measured, "map", uri, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.text.splitlines()
    assert len(lines) == 16 * MiB // 4096
    assert lines[0].split() == ["0", "4096", "0", "data"]
    assert lines[1].split() == ["4096", "4096", "3", "hole,zero"]
    assert lines[-1].split()[:2] == [str(16 * MiB - 4096), "4096"]
    assert run.peak_rss < 100 * MiB, run.peak_rss
