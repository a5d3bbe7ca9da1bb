"""`map`, `dump`, `read`, `write`, `flush`, `trim`, `zero` against real servers.

nbdcopy, nbdinfo and util-linux hexdump are the oracles.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess

import pytest

from tests.support.cli_helpers import assert_one_line_error, nbdtui
from tests.support.oracles import nbdcopy_out, oracle

MiB = 1024 * 1024


@pytest.fixture
def populated(nbdkit):
    """A 4 MiB memory export holding random bytes in its first 1.5 MiB, holes after."""
    server = nbdkit("memory", "4M")
    data = random.Random(7).randbytes(3 * MiB // 2)
    oracle("nbdcopy", "--destination-is-zero", "-", server.uri, input=data)
    return server, data


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, None), (0, 1), (4095, 2), (MiB - 1, 3), (4 * MiB - 1, 1), (12345, 300000)],
)
def test_read_matches_nbdcopy(populated, offset, length):
    server, _ = populated
    whole = nbdcopy_out(server.uri)
    args = ["read", server.uri, "--offset", str(offset)]
    if length is not None:
        args += ["--length", str(length)]
    result = nbdtui(*args)
    assert result.returncode == 0, result.stderr
    end = len(whole) if length is None else offset + length
    assert result.stdout == whole[offset:end]


def test_read_to_file_with_size_suffixes(populated, tmp_path):
    server, data = populated
    out = tmp_path / "out.bin"
    result = nbdtui("read", server.uri, "--offset", "2s", "--length", "1K", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == data[1024:2048]
    # The editor's goto syntax too: s before the number (s2 = 2s = sector 2).
    result = nbdtui("read", server.uri, "--offset", "s2", "--length", "s1", "-o", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout == data[1024:1536]


def test_read_large_from_qemu_nbd_crosses_payload_limit(qemu_nbd, make_image, tmp_path):
    size = 40 * MiB  # qemu-nbd's maximum payload is 32 MiB
    content = random.Random(3).randbytes(size)
    server = qemu_nbd(make_image(tmp_path, size, content=content), export="disk")
    out = tmp_path / "out.bin"
    result = nbdtui("read", server.uri, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == content


@pytest.mark.parametrize("where", ["file", "stdout"])
def test_read_of_many_pieces_with_holes_matches_nbdcopy(nbdkit, tmp_path, where):
    """More pieces than buffers in the ring, pieces that are holes (not read), data
    pieces after them reusing the buffers, an unaligned start and end; into a file
    (each piece written at its place as it comes) and into a pipe (in order)."""
    server = nbdkit("memory", "48M")
    image = tmp_path / "sparse.img"
    rng = random.Random(4)
    with open(image, "wb") as f:
        f.truncate(48 * MiB)
        for offset in (0, 9 * MiB - 3, 20 * MiB, 33 * MiB + 5, 47 * MiB):
            f.seek(offset)
            f.write(rng.randbytes(MiB))
    oracle("nbdcopy", str(image), server.uri)  # leaves the zero regions as holes
    expected = image.read_bytes()[12345 : 48 * MiB - 777]
    out = tmp_path / "out.bin"
    args = ["read", server.uri, "--offset", "12345", "--length", str(len(expected))]
    if where == "file":
        out.write_bytes(b"longer than what is read" * MiB)  # truncated first
        result = nbdtui(*args, "-o", str(out))
        assert result.returncode == 0, result.stderr
        assert out.read_bytes() == expected
    else:
        result = nbdtui(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected
    assert nbdcopy_out(server.uri)[12345 : 48 * MiB - 777] == expected


def test_read_past_end_is_refused(populated):
    server, _ = populated
    result = nbdtui("read", server.uri, "--offset", "4M", "--length", "1")
    assert_one_line_error(result, 2, "past the end")


@pytest.mark.parametrize("command", ["read", "dump"])
def test_offset_past_end_is_named_without_a_length(populated, command):
    # no --length: the length left from the offset would be negative
    server, _ = populated
    result = nbdtui(command, server.uri, "--offset", "5M")
    assert_one_line_error(result, 2, "offset 5242880 is past the end of the export (size 4194304)")
    assert "+-" not in result.stderr


def test_write_reads_back_and_leaves_neighbours(populated, tmp_path):
    server, _data = populated
    before = nbdcopy_out(server.uri)
    payload = random.Random(11).randbytes(70001)
    src = tmp_path / "in.bin"
    src.write_bytes(payload)
    result = nbdtui("write", server.uri, str(src), "--offset", "0x1001")
    assert result.returncode == 0, result.stderr
    after = nbdcopy_out(server.uri)
    assert after[0x1001 : 0x1001 + len(payload)] == payload
    assert after[:0x1001] == before[:0x1001]
    assert after[0x1001 + len(payload) :] == before[0x1001 + len(payload) :]


def test_write_from_stdin_with_fua(populated):
    server, _ = populated
    result = nbdtui("write", server.uri, "-", "--offset", "8s", "--fua", input=b"hello, disk")
    assert result.returncode == 0, result.stderr
    assert nbdcopy_out(server.uri)[4096 : 4096 + 11] == b"hello, disk"


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_write_of_many_pieces_matches_nbdcopy(nbdkit, tmp_path, source):
    """More pieces than are in flight at once (buffers and file ranges are reused), an
    unaligned offset, a short last piece; from a file (sent with sendfile) and a pipe."""
    server = nbdkit("memory", "64M")
    payload = random.Random(12).randbytes(45 * MiB + 12345)
    if source == "file":
        src = tmp_path / "in.bin"
        src.write_bytes(payload)
        result = nbdtui("write", server.uri, str(src), "--offset", "4097")
    else:
        result = nbdtui("write", server.uri, "-", "--offset", "4097", input=payload)
    assert result.returncode == 0, result.stderr
    after = nbdcopy_out(server.uri)
    assert after[4097 : 4097 + len(payload)] == payload
    assert after[:4097] == bytes(4097) and after[4097 + len(payload) :] == bytes(
        64 * MiB - 4097 - len(payload)
    )


def test_write_flush_flushes_after_the_writes(nbdkit, tmp_path):
    server = nbdkit("memory", "16M", log=True)
    src = tmp_path / "in.bin"
    src.write_bytes(random.Random(3).randbytes(9 * MiB))
    result = nbdtui("write", server.uri, str(src))
    assert result.returncode == 0, result.stderr
    assert "Flush" not in server.log_path.read_text()  # not unless asked
    result = nbdtui("write", server.uri, str(src), "--offset", "1M", "--flush")
    assert result.returncode == 0, result.stderr
    log = server.log_path.read_text().splitlines()
    # nbdkit's log filter: "Write id=N ..." when a request comes, "...Write id=N return=0"
    # when it is answered
    answered = [i for i, line in enumerate(log) if "...Write id=" in line]
    flushes = [i for i, line in enumerate(log) if " Flush id=" in line]
    assert len(flushes) == 1 and answered
    assert flushes[0] > max(answered)  # sent after the last write was answered
    assert nbdcopy_out(server.uri)[MiB : 10 * MiB] == src.read_bytes()


def test_write_flush_without_server_flush_writes_nothing(nbd_server, tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(MiB))
    server = nbd_server({"disk": {"file": str(image)}})
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 4096)
    result = nbdtui("write", server.uri, str(src), "--flush")
    assert_one_line_error(result, 1, "does not support flush")
    assert image.read_bytes() == bytes(MiB)


def test_write_past_end_sends_nothing(nbdkit, tmp_path):
    server = nbdkit("memory", "64K", log=True)
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 4096)
    result = nbdtui("write", server.uri, str(src), "--offset", "62K")
    assert_one_line_error(result, 2, "past the end")
    assert "Write" not in server.log_path.read_text()


def test_write_to_read_only_export_sends_no_write(nbdkit, tmp_path):
    server = nbdkit("memory", "1M", log=True, extra_options=("-r",))
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 512)
    result = nbdtui("write", server.uri, str(src))
    assert_one_line_error(result, 1, "read-only")
    log = server.log_path.read_text()
    assert "connection=1" in log or "Connect" in log  # the server did see us
    assert "Write" not in log


def test_map_matches_nbdinfo(populated):
    server, _ = populated
    ours = nbdtui("map", "--json", server.uri)
    assert ours.returncode == 0, ours.stderr
    theirs = json.loads(oracle("nbdinfo", "--map", "--json", server.uri))
    assert ours.json() == theirs
    human = nbdtui("map", server.uri).text
    assert human == oracle("nbdinfo", "--map", server.uri).decode()


def test_trim_shows_as_hole_and_zero_reads_zeros(populated):
    server, _ = populated
    assert nbdtui("trim", server.uri, "--offset", "0", "--length", "64K").returncode == 0
    first = json.loads(oracle("nbdinfo", "--map", "--json", server.uri))[0]
    assert first["offset"] == 0 and first["length"] >= 65536
    assert "hole" in first["description"]
    result = nbdtui("zero", server.uri, "--offset", "100K", "--length", "5000")
    assert result.returncode == 0, result.stderr
    assert nbdcopy_out(server.uri)[100 * 1024 : 100 * 1024 + 5000] == bytes(5000)


def test_flush(populated):
    server, _ = populated
    assert nbdtui("flush", server.uri).returncode == 0


def test_trim_needs_length():
    result = nbdtui("trim", "nbd://localhost/x", "--offset", "0")
    assert result.returncode == 2
    assert "--length" in result.stderr


@pytest.mark.parametrize(("offset", "length"), [(0, 512), (3, 1), (17, 4096), (0x1FFF0, 100)])
def test_dump_matches_hexdump(populated, tmp_path, offset, length):
    server, _ = populated
    image = tmp_path / "image.bin"
    image.write_bytes(nbdcopy_out(server.uri))
    expected = subprocess.run(
        ["hexdump", "-C", "-s", str(offset), "-n", str(length), str(image)],
        capture_output=True,
        check=True,
    ).stdout
    result = nbdtui("dump", server.uri, "--offset", str(offset), "--length", str(length))
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_dump_squeezes_a_hole(populated, tmp_path):
    server, _ = populated
    start, length = 2 * MiB, 64 * 1024
    result = nbdtui("dump", server.uri, "-s", str(start), "-n", str(length))
    lines = result.text.splitlines()
    assert lines == [
        f"{start:08x}  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|",
        "*",
        f"{start + length:08x}",
    ]


def test_read_pipe_closed_early_is_quiet(nbdkit):
    server = nbdkit("pattern", "64M")
    proc = subprocess.run(
        f"python -m nbdtui read '{server.uri}' | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=60,
    )
    assert "Traceback" not in proc.stderr


def test_read_to_dev_null_reads_every_byte_once(nbdkit):
    # /dev/null is written like a file (each piece at its place): the server must still
    # be asked for every byte of the range, once.
    server = nbdkit("pattern", "40M", log=True)
    result = nbdtui("read", server.uri, "--offset", "1M", "--length", "37M", "-o", os.devnull)
    assert result.returncode == 0, result.stderr
    pattern = re.compile(r" Read id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)")
    spans = sorted(
        (int(m[1], 16), int(m[2], 16))
        for m in map(pattern.search, server.log_path.read_text().splitlines())
        if m
    )
    assert sum(n for _, n in spans) == 37 * MiB
    at = MiB
    for offset, n in spans:
        assert offset == at
        at += n


@pytest.mark.parametrize("redirect", [">", ">>"])
def test_read_to_redirected_stdout_lands_between_what_comes_before_and_after(
    nbdkit, tmp_path, redirect
):
    # `>`: stdout is a file written at its place piece by piece, from where the shell's
    # offset is, which is left after the range; `>>` (append): in order.
    server = nbdkit("pattern", "64M")
    out = tmp_path / "out.bin"
    out.write_bytes(b"old bytes, gone with > and kept with >>\n")
    before = out.read_bytes() if redirect == ">>" else b""
    script = (
        f"{{ printf 'head\\n'; python -m nbdtui read '{server.uri}' --offset 3M --length 37M;"
        f" printf 'tail\\n'; }} {redirect} '{out}'"
    )
    proc = subprocess.run(script, shell=True, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = before + b"head\n" + nbdcopy_out(server.uri)[3 * MiB : 40 * MiB] + b"tail\n"
    assert out.read_bytes() == expected
