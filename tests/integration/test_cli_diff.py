"""`nbdtui diff A B` against real servers and local files; `cmp -l` is the oracle."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.cli_helpers import assert_one_line_error, nbdtui
from tests.support.oracles import nbdsh_write, oracle
from tests.support.requirements import require

MiB = 1024 * 1024


def cmp_runs(a: Path, b: Path) -> list[tuple[int, int]]:
    """Maximal runs of differing bytes ``(offset, length)`` from ``cmp -l`` (which
    numbers bytes from 1 and stops at the end of the shorter file)."""
    proc = subprocess.run([require("cmp"), "-l", str(a), str(b)], capture_output=True)
    assert proc.returncode in (0, 1), proc.stderr
    runs: list[list[int]] = []
    for line in proc.stdout.decode().splitlines():
        pos = int(line.split()[0]) - 1
        if runs and runs[-1][0] + runs[-1][1] == pos:
            runs[-1][1] += 1
        else:
            runs.append([pos, 1])
    return [(o, n) for o, n in runs]


def text_runs(stdout: bytes) -> list[tuple[int, int]]:
    out = []
    for line in stdout.decode().splitlines():
        m = re.fullmatch(r"0x([0-9a-f]+) (\d+)", line)
        if m:
            out.append((int(m[1], 16), int(m[2])))
    return out


def changed_copy(data: bytes, changes: list[tuple[int, int]], seed: int = 1) -> bytes:
    """``data`` with every byte of each ``(offset, length)`` changed."""
    rng = random.Random(seed)
    out = bytearray(data)
    for offset, length in changes:
        for i in range(offset, offset + length):
            out[i] = (out[i] + rng.randint(1, 255)) % 256
    return bytes(out)


# Runs at the edges, on and across 4 MiB piece boundaries, and a long one.
CHANGES = [
    (0, 1),
    (4095, 2),
    (4 * MiB - 3, 6),
    (5 * MiB, 300000),
    (8 * MiB - 1, 1),
    (10 * MiB - 2, 2),
]


@pytest.fixture
def two_files(tmp_path):
    data = random.Random(5).randbytes(10 * MiB)
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    a.write_bytes(data)
    b.write_bytes(changed_copy(data, CHANGES))
    return a, b


def test_local_files_every_run_as_cmp_sees_it(two_files):
    a, b = two_files
    result = nbdtui("diff", str(a), str(b))
    assert result.returncode == 1, result.stderr
    assert text_runs(result.stdout) == cmp_runs(a, b) == CHANGES
    assert result.text.splitlines()[0] == "0x0 1"
    assert "sizes differ" not in result.text


def test_json_output(two_files):
    a, b = two_files
    result = nbdtui("diff", "--json", str(a), str(b))
    assert result.returncode == 1, result.stderr
    doc = result.json()
    assert doc["size_a"] == doc["size_b"] == 10 * MiB
    assert [(d["offset"], d["length"]) for d in doc["differences"]] == CHANGES
    assert doc["bytes_differ"] == sum(n for _, n in CHANGES)
    assert doc["max_reached"] is False


def test_identical_is_exit_0_and_silent(two_files):
    a, _ = two_files
    result = nbdtui("diff", str(a), str(a))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", "")


def test_offset_length_and_max(two_files):
    a, b = two_files
    result = nbdtui("diff", str(a), str(b), "--offset", "4096", "--length", str(4 * MiB - 4097))
    assert result.returncode == 1, result.stderr
    assert text_runs(result.stdout) == [(4096, 1), (4 * MiB - 3, 2)]  # clipped at the end
    result = nbdtui("diff", str(a), str(b), "--max", "2")
    assert result.returncode == 1
    assert text_runs(result.stdout) == CHANGES[:2]
    doc = nbdtui("diff", "--json", "--max", "3", str(a), str(b)).json()
    assert len(doc["differences"]) == 3 and doc["max_reached"] is True
    assert nbdtui("diff", str(a), str(b), "--offset", "1", "--length", "4094").returncode == 0


def test_export_against_file_with_holes_on_both_sides(nbdkit, tmp_path):
    """Zero ranges on both sides are not read (the server's log shows no read there);
    where only one side has data, its bytes are compared with zeros."""
    size = 64 * MiB
    server = nbdkit("memory", "64M", log=True)
    rng = random.Random(9)
    regions = [(MiB, MiB), (20 * MiB + 5, MiB), (40 * MiB, MiB)]
    image = tmp_path / "sparse.img"
    other = tmp_path / "other.img"
    changes = [(MiB + 77, 10), (40 * MiB, 1)]
    with open(image, "wb") as f, open(other, "wb") as g:
        f.truncate(size)
        g.truncate(size)
        for offset, length in regions:
            blob = rng.randbytes(length)
            f.seek(offset)
            f.write(blob)
            g.seek(offset)
            g.write(
                changed_copy(
                    blob, [(o - offset, n) for o, n in changes if offset <= o < offset + length]
                )
            )
        g.seek(60 * MiB)
        g.write(b"extra")  # zeros in the export
    oracle("nbdcopy", str(image), server.uri)  # leaves the zero regions as holes
    server.log_path.write_text("")
    result = nbdtui("diff", server.uri, str(other))
    assert result.returncode == 1, result.stderr
    assert text_runs(result.stdout) == cmp_runs(image, other) == [*changes, (60 * MiB, 5)]
    log = server.log_path.read_text()
    reads = [
        (int(m[1], 16), int(m[2], 16))
        for m in re.finditer(r" Read id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)", log)
    ]
    assert reads, log
    assert sum(n for _, n in reads) <= 4 * MiB  # the data, not the 64 MiB
    assert not any(o + n > 42 * MiB for o, n in reads)


def test_qemu_nbd_against_nbdkit_pattern_and_file(qemu_nbd, nbdkit, make_image, tmp_path):
    size = 12 * MiB
    pattern_bytes = oracle("nbdcopy", nbdkit("pattern", "12M").uri, "-")
    changes = [(3, 5), (4 * MiB, 4 * MiB + 1), (size - 1, 1)]
    content = changed_copy(pattern_bytes, changes)
    image = make_image(tmp_path, size, content=content)
    qemu = qemu_nbd(image, export="disk")
    pattern = nbdkit("pattern", "12M")
    result = nbdtui("diff", qemu.uri, pattern.uri)
    assert result.returncode == 1, result.stderr
    pattern_file = tmp_path / "pattern.img"
    pattern_file.write_bytes(pattern_bytes)
    assert text_runs(result.stdout) == cmp_runs(image, pattern_file) == changes
    # the same export on both sides (each side has its own connections)
    result = nbdtui("diff", qemu.uri, qemu.uri)
    assert (result.returncode, result.stdout) == (0, b""), result.stderr
    # a file against an export
    result = nbdtui("diff", "--json", str(pattern_file), qemu.uri)
    assert [(d["offset"], d["length"]) for d in result.json()["differences"]] == changes


def test_sizes_that_differ(nbdkit, tmp_path):
    small = nbdkit("pattern", "1M")
    big = nbdkit("pattern", "2M")
    result = nbdtui("diff", small.uri, big.uri)
    assert result.returncode == 1, result.stderr
    assert result.text == "sizes differ: A is 1048576 bytes, B is 2097152 bytes\n"
    doc = nbdtui("diff", "--json", big.uri, small.uri).json()
    assert (doc["size_a"], doc["size_b"], doc["differences"]) == (2 * MiB, MiB, [])
    # A range short of the end of the shorter side: the sizes do not matter.
    result = nbdtui("diff", small.uri, big.uri, "--length", "512K")
    assert (result.returncode, result.stdout) == (0, b"")
    bad = nbdtui("diff", small.uri, big.uri, "--offset", "1M", "--length", "1")
    assert_one_line_error(bad, 2, "past the end of the shorter side")


def test_sparse_terabyte_exports(nbdkit):
    """1 TiB each, a few MiB of data: only the data is read (the test would take hours
    otherwise)."""
    a = nbdkit("memory", "1T")
    b = nbdkit("memory", "1T")
    blob = random.Random(2).randbytes(8192)
    for uri in (a.uri, b.uri):
        nbdsh_write(uri, 1 << 39, blob)
    nbdsh_write(b.uri, (1 << 40) - 3, b"xyz")
    nbdsh_write(a.uri, (1 << 39) + 100, bytes([blob[100] ^ 1]))
    result = nbdtui("diff", a.uri, b.uri, timeout=120)
    assert result.returncode == 1, result.stderr
    assert text_runs(result.stdout) == [((1 << 39) + 100, 1), ((1 << 40) - 3, 3)]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("missing.img", "{a}"), "missing.img"),
        (("{a}", "nbd://"), "needs a host"),
        (("{a}", "nbd+unix:///x?socket=/nonexistent.sock"), "nonexistent"),
    ],
)
def test_trouble_is_exit_2_with_one_line(two_files, args, needle):
    a, _ = two_files
    result = nbdtui("diff", *(x.format(a=a) for x in args))
    assert_one_line_error(result, 2, needle)


def test_bad_command_line_is_exit_2(two_files):
    a, b = two_files
    assert_one_line_error(nbdtui("diff", str(a)), 2, "B")
    assert_one_line_error(nbdtui("diff", str(a), str(b), "--max", "0"), 2, "--max")


def test_read_error_is_exit_2_with_one_line(nbdkit, two_files):
    """A read the server fails ends the comparison: trouble, not "different"."""
    a, _ = two_files
    server = nbdkit(
        "pattern", "10M", filters=("error",), extra_options=("error=EIO", "error-pread-rate=1")
    )
    result = nbdtui("diff", str(a), server.uri)
    assert_one_line_error(result, 2)
    assert result.stdout == b""
    assert "EIO" in result.stderr or "Input/output" in result.stderr, result.stderr


def test_nbdkit_file_and_unaligned_range_on_a_server_with_a_minimum_block_size(nbdkit, two_files):
    """nbdkit file against a server that refuses requests not made of 512-byte blocks
    (blocksize-policy filter), from an unaligned offset to an unaligned end: the reads
    of the bulk engine stay whole blocks."""
    a, b = two_files
    served_a = nbdkit("file", str(a))
    policy = ("blocksize-minimum=512", "blocksize-error-policy=error")
    served_b = nbdkit("file", str(b), filters=("blocksize-policy",), extra_options=policy)
    start, end = 4095, 5 * MiB + 1000
    result = nbdtui(
        "diff", served_a.uri, served_b.uri, "--offset", str(start), "--length", str(end - start)
    )
    assert result.returncode == 1, result.stderr
    expected = [
        (max(o, start), min(o + n, end) - max(o, start))
        for o, n in cmp_runs(a, b)
        if o + n > start and o < end
    ]
    assert text_runs(result.stdout) == expected
    assert expected[0] == (4095, 2) and expected[-1] == (5 * MiB, 1000)
