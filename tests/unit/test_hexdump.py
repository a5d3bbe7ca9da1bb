"""nbdtui.present.hexdump against the real ``hexdump -C`` (package bsdextrautils)."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbdtui.present.hexdump import HexDumper, format_line, hexdump, hexdump_lines
from tests.support.requirements import require


def real_hexdump(path: Path, skip: int, length: int) -> str:
    out = subprocess.run(
        [require("hexdump"), "-C", "-s", str(skip), "-n", str(length), str(path)],
        capture_output=True,
        check=True,
        env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")},
    )
    return out.stdout.decode("ascii")


def chunked(data: bytes, rng: random.Random, biggest: int = 64) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        size = rng.randint(0, biggest)  # empty chunks included
        yield data[pos : pos + size]
        pos += size


def ours(data: bytes, skip: int, chunks: list[bytes] | None = None) -> str:
    lines = hexdump_lines(chunks if chunks is not None else [data], skip)
    return "".join(line + "\n" for line in lines)


def patterned(rng: random.Random, size: int) -> bytes:
    """Runs of zeros, repeats and noise, so that squeezing starts and stops anywhere."""
    out = bytearray()
    while len(out) < size:
        kind = rng.randrange(5)
        n = rng.randrange(1, 90)
        if kind == 0:
            out += bytes(n)
        elif kind == 1:
            out += rng.randbytes(n)
        elif kind == 2:
            out += bytes([rng.randrange(256)]) * n
        elif kind == 3:
            out += (rng.randbytes(16) * 8)[: n + 48]
        else:
            out += b"\xff" * rng.randrange(16, 80)
    return bytes(out[:size])


CONTENTS = {
    "zeros": lambda rng, n: bytes(n),
    "random": lambda rng, n: rng.randbytes(n),
    "text": lambda rng, n: (b"Hello, NBD world!\n\t\x7f\x80\xff~ " * (n // 25 + 1))[:n],
    "period16": lambda rng, n: (rng.randbytes(16) * (n // 16 + 1))[:n],
    "period7": lambda rng, n: (rng.randbytes(7) * (n // 7 + 1))[:n],
    "period32": lambda rng, n: (rng.randbytes(32) * (n // 32 + 1))[:n],
    "patterned": patterned,
    "ones": lambda rng, n: b"\xff" * n,
}
LENGTHS = [0, 1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 100, 255, 4095, 4096, 4097]
SKIPS = [0, 1, 7, 15, 16, 17, 100, 511, 512, 513]


@pytest.mark.parametrize("kind", sorted(CONTENTS))
def test_matches_real_hexdump(kind: str, tmp_path: Path) -> None:
    rng = random.Random(kind)
    path = tmp_path / "data"
    data = CONTENTS[kind](rng, 8192)
    path.write_bytes(data)
    for length in LENGTHS:
        for skip in SKIPS:
            expected = real_hexdump(path, skip, length)
            piece = data[skip : skip + length]
            assert ours(piece, skip) == expected, (kind, skip, length)
            assert ours(piece, skip, list(chunked(piece, rng))) == expected, (kind, skip, length)


def test_runs_starting_mid_line(tmp_path: Path) -> None:
    # A run of zeros that starts at every position inside a line, and ends anywhere.
    path = tmp_path / "data"
    rng = random.Random(1)
    for start in range(0, 40):
        for run in (15, 16, 17, 31, 32, 33, 48, 80):
            data = rng.randbytes(start) + bytes(run) + rng.randbytes(rng.randrange(40))
            path.write_bytes(data)
            for skip in (0, 3):
                expected = real_hexdump(path, skip, len(data))
                assert ours(data[skip:], skip) == expected, (start, run, skip)


def test_random_files_random_chunks(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    path = tmp_path / "data"
    for _ in range(120):
        data = patterned(rng, rng.randrange(0, 3000))
        path.write_bytes(data)
        skip = rng.randrange(0, len(data) + 1)
        length = rng.randrange(0, len(data) - skip + 1)
        expected = real_hexdump(path, skip, length)
        piece = data[skip : skip + length]
        biggest = rng.choice([1, 5, 16, 17, 100, 5000])
        assert ours(piece, skip, list(chunked(piece, rng, biggest))) == expected


def test_long_runs_cross_chunks(tmp_path: Path) -> None:
    # Runs much longer than the fast-skip slice (4096 lines = 64 KiB), broken into
    # chunks of every size, with single differing bytes to stop the squeeze.
    rng = random.Random(7)
    path = tmp_path / "data"
    for _ in range(6):
        data = bytearray(rng.randrange(150_000, 300_000))
        for _ in range(rng.randrange(0, 4)):
            data[rng.randrange(len(data))] = rng.randrange(1, 256)
        data = bytes(data)
        path.write_bytes(data)
        skip = rng.randrange(0, 40)
        expected = real_hexdump(path, skip, len(data) - skip)
        piece = data[skip:]
        assert ours(piece, skip) == expected
        assert ours(piece, skip, list(chunked(piece, rng, 100_000))) == expected
        assert ours(piece, skip, [piece[i : i + 65536] for i in range(0, len(piece), 65536)]) == (
            expected
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=300)
    | st.lists(st.sampled_from([b"\0" * 8, b"ab", b"\xff"])).map(b"".join),
    skip=st.integers(0, 40),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_hypothesis_against_hexdump(
    data: bytes, skip: int, cuts: list[int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("hx") / "data"
    path.write_bytes(data)
    piece = data[skip:]
    expected = real_hexdump(path, skip, len(piece))
    bounds = [0, *sorted(c for c in cuts if c <= len(piece)), len(piece)]
    chunks = [piece[a:b] for a, b in itertools.pairwise(bounds)]
    assert ours(piece, skip, chunks) == expected


def test_offsets_beyond_32_bits() -> None:
    # Output of util-linux 2.38.1 hexdump -C on a sparse file with "hello" at
    # 0x100000003: the offset column widens to 9 digits.
    data = bytes(16) + b"\0\0\0hello" + bytes(8) + bytes(32)
    assert hexdump(data, 0xFFFFFFF0) == (
        "fffffff0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
        "100000000  00 00 00 68 65 6c 6c 6f  00 00 00 00 00 00 00 00  |...hello........|\n"
        "100000010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
        "*\n"
        "100000030\n"
    )
    assert hexdump(b"\0", 0xFFFFFFFF) == (
        "ffffffff  00                                                |.|\n100000000\n"
    )
    assert hexdump(b"\0", 0xFFFFFFFE) == (
        "fffffffe  00                                                |.|\nffffffff\n"
    )


def test_offsets_beyond_32_bits_sparse_file(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    with path.open("wb") as f:
        f.truncate(0x100001000)
        f.seek(0x100000003)
        f.write(b"hello")
    if path.stat().st_blocks * 512 > 1 << 24:
        pytest.skip("the file system does not keep sparse files sparse")
    for skip, length in [(0xFFFFFFF0, 64), (0xFFFFFFFF, 1), (0xFFFFFFFD, 40), (0x100000001, 7)]:
        with path.open("rb") as f:
            f.seek(skip)
            data = f.read(length)
        assert hexdump(data, skip) == real_hexdump(path, skip, length)


def test_exact_format() -> None:
    assert hexdump(b"abc") == (
        "00000000  61 62 63                                          |abc|\n00000003\n"
    )
    assert hexdump(bytes(range(0x1E, 0x2E)), 5) == (
        "00000005  1e 1f 20 21 22 23 24 25  26 27 28 29 2a 2b 2c 2d  |.. !\"#$%&'()*+,-|\n"
        "00000015\n"
    )
    assert format_line(0, b"\x7f\x80\xa0\xff ~\t") == (
        "00000000  7f 80 a0 ff 20 7e 09                              |.... ~.|"
    )


def test_squeeze_rules() -> None:
    a, b = b"A" * 16, b"B" * 16
    lines = list(hexdump_lines([a, a, a, b, b, a, a + b"A"]))
    assert lines == [
        format_line(0x00, a),
        "*",
        format_line(0x30, b),
        "*",
        format_line(0x50, a),
        "*",
        # A partial last line is printed even when it repeats the line before.
        format_line(0x70, b"A"),
        "00000071",
    ]


def test_squeezed_tail_prints_only_star_and_end() -> None:
    assert list(hexdump_lines([bytes(48)])) == [format_line(0, bytes(16)), "*", "00000030"]


def test_empty_input_prints_nothing() -> None:
    assert hexdump(b"") == ""
    assert hexdump(b"", 100) == ""
    assert list(hexdump_lines([b"", b""], 7)) == []


def test_accepts_bytes_like_chunks() -> None:
    data = bytes(range(40))
    chunks = [bytearray(data[:5]), memoryview(data)[5:21], data[21:]]
    assert ours(data, 0, chunks) == hexdump(data)


def test_negative_offset_refused() -> None:
    with pytest.raises(ValueError, match="negative start offset -1"):
        list(hexdump_lines([b"x"], -1))


def test_streaming_is_lazy_and_bounded() -> None:
    # 1 GiB of zeros in 1 MiB chunks: three lines, produced without holding the data.
    produced = 0

    def zeros() -> Iterator[bytes]:
        nonlocal produced
        chunk = bytes(1 << 20)
        for _ in range(1024):
            produced += len(chunk)
            yield chunk

    lines = hexdump_lines(zeros(), 0)
    assert next(lines) == format_line(0, bytes(16))
    assert produced == 1 << 20
    assert list(lines) == ["*", "40000000"]
    assert produced == 1 << 30


def test_push_style_dumper_matches_generator() -> None:
    rng = random.Random(3)
    for _ in range(50):
        data = patterned(rng, rng.randrange(0, 2000))
        skip = rng.randrange(0, 50)
        dumper = HexDumper(skip)
        lines: list[str] = []
        for chunk in chunked(data, rng, 100):
            lines += dumper.feed(chunk)
        lines += dumper.finish()
        assert lines == list(hexdump_lines([data], skip))
        assert dumper.finish() == []
        with pytest.raises(ValueError, match=r"feed\(\) after finish\(\)"):
            dumper.feed(b"x")


def test_push_style_dumper_returns_lines_as_soon_as_final() -> None:
    dumper = HexDumper(0)
    assert dumper.feed(b"a" * 10) == []
    assert dumper.feed(b"a" * 10) == [format_line(0, b"a" * 16)]
    assert dumper.feed(b"a" * 12) == ["*"]  # the second line repeats the first
    assert dumper.feed(b"b") == []
    assert dumper.finish() == [format_line(32, b"b"), "00000021"]
