"""`nbdtui copy` (plain) against real servers: nbdkit memory/file exports, qemu-nbd;
nbdcopy and nbdinfo are the oracles, nbdkit's log filter tells what was read."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading

from tests.support.cli_helpers import assert_one_line_error, nbdtui
from tests.support.oracles import nbdcopy_out, nbdinfo_json, oracle

MiB = 1024 * 1024
SIZE = 24 * MiB
# data at these offsets (1 MiB each, one unaligned), zeroes elsewhere
DATA_AT = (0, 5 * MiB + 4096, 13 * MiB, SIZE - MiB)


def _sparse_image(tmp_path, name="src.img", seed=1):
    image = tmp_path / name
    rng = random.Random(seed)
    with open(image, "wb") as f:
        f.truncate(SIZE)
        for offset in DATA_AT:
            f.seek(offset)
            f.write(rng.randbytes(MiB))
    return image


def _log_lines(server):
    return len(server.log_path.read_text().splitlines())


def _reads(server, after=0):
    """The reads nbdkit's log filter saw, after its first ``after`` lines."""
    pattern = re.compile(r" Read id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)")
    out = []
    for m in map(pattern.search, server.log_path.read_text().splitlines()[after:]):
        if m:
            out.append((int(m[1], 16), int(m[2], 16)))
    return out


def _in_data(offset, count):
    """Inside a data extent (give or take the memory plugin's 64 KiB pages)."""
    page = 64 * 1024
    return any(a - page <= offset and offset + count <= a + MiB + page for a in DATA_AT)


def test_file_to_export_to_export_to_file_keeps_bytes_and_holes(nbdkit, tmp_path):
    image = _sparse_image(tmp_path)
    a = nbdkit("memory", str(SIZE), log=True)
    b = nbdkit("memory", str(SIZE), log=True)
    r = nbdtui("copy", str(image), a.uri)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == b"", r.stderr
    assert nbdcopy_out(a.uri) == image.read_bytes()
    before = _log_lines(a)
    r = nbdtui("copy", a.uri, b.uri)
    assert r.returncode == 0, r.stderr
    assert nbdcopy_out(b.uri) == image.read_bytes()
    # the source's zeroes were never read: every read lies inside a data extent
    reads = _reads(a, before)
    assert reads and all(_in_data(o, n) for o, n in reads), reads
    # and the destination still has them as holes
    holes = [e for e in nbdinfo_json(b.uri, "--map") if e["type"] & 1]
    assert sum(e["length"] for e in holes) >= SIZE - (len(DATA_AT) + 1) * MiB
    out = tmp_path / "out.img"
    r = nbdtui("copy", b.uri, str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == image.read_bytes()
    assert out.stat().st_blocks * 512 <= len(DATA_AT) * MiB + 64 * 1024  # holes left


def test_copy_zeroes_what_dst_holds_where_src_has_holes(nbdkit, tmp_path):
    """A DST full of bytes: SRC's holes become zero requests (not reads, not data)."""
    image = _sparse_image(tmp_path)
    src = nbdkit("file", str(image), log=True)
    dst = nbdkit("memory", str(SIZE), log=True)
    oracle("nbdcopy", "-", dst.uri, input=random.Random(9).randbytes(SIZE))
    r = nbdtui("copy", src.uri, dst.uri, "--flush")
    assert r.returncode == 0, r.stderr
    assert nbdcopy_out(dst.uri) == image.read_bytes()
    log = dst.log_path.read_text()
    assert " Zero id=" in log and " Flush id=" in log
    assert all(_in_data(o, n) for o, n in _reads(src))


def test_copy_into_existing_file_punches_holes(nbdkit, tmp_path):
    image = _sparse_image(tmp_path)
    src = nbdkit("file", str(image))
    out = tmp_path / "out.img"
    out.write_bytes(b"\xff" * SIZE)
    r = nbdtui("copy", src.uri, str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == image.read_bytes()
    assert out.stat().st_blocks * 512 < SIZE // 2


def test_copy_range_with_offset_and_length(nbdkit, tmp_path):
    image = _sparse_image(tmp_path)
    src = nbdkit("file", str(image))
    dst = nbdkit("memory", str(SIZE))
    offset, length = 5 * MiB + 1000, 3 * MiB + 7
    r = nbdtui("copy", src.uri, dst.uri, "--offset", str(offset), "--length", str(length))
    assert r.returncode == 0, r.stderr
    expected = bytearray(SIZE)
    expected[offset : offset + length] = image.read_bytes()[offset : offset + length]
    assert nbdcopy_out(dst.uri) == bytes(expected)


def test_copy_from_qemu_nbd_with_many_requests(qemu_nbd, make_image, tmp_path):
    content = random.Random(5).randbytes(40 * MiB)  # past qemu-nbd's 32 MiB payload limit
    server = qemu_nbd(make_image(tmp_path, 48 * MiB, content=content), export="disk")
    out = tmp_path / "out.img"
    r = nbdtui("copy", server.uri, str(out), "--connections", "2", "--requests", "4")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == content + bytes(8 * MiB)


def test_copy_through_pipes(nbdkit, tmp_path):
    image = _sparse_image(tmp_path)
    dst = nbdkit("memory", str(SIZE))
    r = nbdtui("copy", "-", dst.uri, input=image.read_bytes()[: 6 * MiB])
    assert r.returncode == 0, r.stderr
    assert nbdcopy_out(dst.uri)[: 6 * MiB] == image.read_bytes()[: 6 * MiB]
    r = nbdtui("copy", dst.uri, "-")
    assert r.returncode == 0, r.stderr
    assert r.stdout[: 6 * MiB] == image.read_bytes()[: 6 * MiB]
    assert len(r.stdout) == SIZE


def test_sizes_that_differ_are_refused_before_anything_is_written(nbdkit):
    a = nbdkit("memory", "2M")
    b = nbdkit("memory", "3M", log=True)
    oracle("nbdcopy", "-", a.uri, input=b"\x01" * (2 * MiB))
    r = nbdtui("copy", a.uri, b.uri)
    assert_one_line_error(r, 2, "differ in size", "2097152", "3145728", "--length")
    assert " Write id=" not in b.log_path.read_text()
    r = nbdtui("copy", a.uri, b.uri, "--length", "2M")
    assert r.returncode == 0, r.stderr
    assert nbdcopy_out(b.uri) == b"\x01" * (2 * MiB) + bytes(MiB)
    r = nbdtui("copy", b.uri, a.uri, "--length", "3M")
    assert_one_line_error(r, 2, "past the end of DST")


def test_user_errors_are_one_line(nbdkit, tmp_path):
    src = nbdkit("memory", "1M")
    ro = nbdkit("memory", "1M", readonly=True, log=True)
    r = nbdtui("copy", str(tmp_path / "missing.img"), src.uri)
    assert_one_line_error(r, 1, "missing.img", "No such file")
    r = nbdtui("copy", src.uri, ro.uri)
    assert_one_line_error(r, 1, "read-only")
    assert " Write id=" not in ro.log_path.read_text()
    readonly_file = tmp_path / "ro.img"
    readonly_file.write_bytes(bytes(MiB))
    readonly_file.chmod(0o444)
    r = nbdtui("copy", src.uri, str(readonly_file))
    if r.returncode != 0:  # (root may write anyway)
        assert_one_line_error(r, 1, "ro.img", "Permission denied")
    r = nbdtui("copy", src.uri, src.uri)
    assert_one_line_error(r, 2, "same export")
    r = nbdtui("copy", "-", "-")
    assert_one_line_error(r, 2, "both be -")
    r = nbdtui("copy", str(readonly_file), str(tmp_path / "." / "ro.img"))
    assert r.returncode != 0 and r.stderr.startswith("nbdtui: ")  # same file, or read-only
    same = tmp_path / "same.img"
    same.write_bytes(b"x" * 4096)
    r = nbdtui("copy", str(same), str(tmp_path / "." / "same.img"))
    assert_one_line_error(r, 2, "same file")
    assert same.read_bytes() == b"x" * 4096
    r = nbdtui("copy", src.uri, "nbd://[bad")
    assert r.returncode == 2 and r.stderr.startswith("nbdtui: ")


def test_src_disappearing_mid_copy_fails_with_one_line(nbdkit, tmp_path):
    """The server goes away during the copy: exit 1, one line, no traceback."""
    src = nbdkit("memory", "64M", filters=("delay",), extra_options=("rdelay=3",))
    oracle("nbdcopy", "-", src.uri, input=random.Random(3).randbytes(64 * MiB))
    out = tmp_path / "out.img"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbdtui", "copy", src.uri, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    threading.Timer(1.0, src.kill).start()
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 1, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbdtui: "), text
    assert "Traceback" not in text


def test_copy_matches_nbdcopy(nbdkit, tmp_path):
    """The oracle: nbdcopy of the same export gives the same file."""
    image = _sparse_image(tmp_path, seed=4)
    src = nbdkit("file", str(image))
    ours, theirs = tmp_path / "ours.img", tmp_path / "theirs.img"
    assert nbdtui("copy", src.uri, str(ours)).returncode == 0
    oracle("nbdcopy", src.uri, str(theirs))
    assert ours.read_bytes() == theirs.read_bytes()


def test_copy_over_tls_goes_the_event_loop_way(nbdkit, tls_certs, tmp_path):
    """TLS streams are not lent to threads: the copy uses the buffered path."""
    image = _sparse_image(tmp_path, seed=6)
    src = nbdkit("file", str(image), tls=tls_certs)
    dst = nbdkit("memory", str(SIZE), tls=tls_certs)
    r = nbdtui("copy", src.tls_uri_for(), dst.tls_uri_for())
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out.img"
    r = nbdtui("copy", dst.tls_uri_for(), str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == image.read_bytes()


def test_progress_bar_on_a_terminal_and_nothing_else(nbdkit, tmp_path):
    """stderr a terminal: rich draws a bar there, and leaves stdout alone (not a
    terminal, stderr stays empty: see the first test)."""
    src = nbdkit("memory", "32M")
    oracle("nbdcopy", "-", src.uri, input=random.Random(8).randbytes(32 * MiB))
    out = tmp_path / "out.img"
    master, slave = os.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "nbdtui", "copy", src.uri, str(out)],
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=60,
        )
        os.close(slave)
        slave = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the writer is gone
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0 and proc.stdout == b""
    assert b"copy" in drawn and b"Traceback" not in drawn, drawn
    assert b"MiB" in drawn, drawn
    assert out.read_bytes() == nbdcopy_out(src.uri)
