"""Search (unit tests against the in-memory stand-in) and ]/[ extent navigation."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbdtui.editor.extents import next_data, previous_data
from nbdtui.editor.search import Alignment, find, find_all, parse_pattern
from nbdtui.errors import PatternError
from tests.support.fakes import MemoryExport

TIB = 1 << 40


@pytest.mark.parametrize(
    ("text", "mode", "expected", "kind"),
    [
        ("de ad be ef", "hex", b"\xde\xad\xbe\xef", "hex"),
        ("0xdeadbeef", "hex", b"\xde\xad\xbe\xef", "hex"),
        ("DEADBEEF", "guess", b"\xde\xad\xbe\xef", "hex"),
        ("0xde 0xad, be", "guess", b"\xde\xad\xbe", "hex"),
        ("53 ef", "guess", b"\x53\xef", "hex"),
        ('"EFI PART"', "hex", b"EFI PART", "text"),
        ('"EFI PART"', "guess", b"EFI PART", "text"),
        ("'a b'", "guess", b"a b", "text"),
        ("EFI PART", "text", b"EFI PART", "text"),
        ('"x"', "text", b'"x"', "text"),
        ("NEEDLE", "guess", b"NEEDLE", "text"),  # not hex: searched as text
        ("abc", "guess", b"abc", "text"),  # an odd number of hex digits is no hex bytes
        ("EFI PART", "guess", b"EFI PART", "text"),
        ("cafe", "text", b"cafe", "text"),  # hex-looking text, one toggle away
        ("héllo", "guess", "héllo".encode(), "text"),
    ],
)
def test_parse_pattern(text, mode, expected, kind):
    pattern = parse_pattern(text, mode)
    assert (pattern.data, pattern.kind) == (expected, kind)


def test_a_pattern_says_how_it_was_read():
    assert parse_pattern("NEEDLE").describe() == 'text "NEEDLE" (6 bytes)'
    assert parse_pattern("53ef").describe() == "hex bytes 53 ef (2 bytes)"


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ("", "guess", "type hex bytes"),
        ("  ", "guess", "type hex bytes"),
        ("xyz", "hex", "not hex bytes"),
        ("abc", "hex", "odd number"),
        ('""', "guess", "nothing to search"),
        ("", "text", "nothing to search"),
        ("00" * 4097, "guess", "longer than"),
    ],
)
def test_parse_pattern_errors(text, mode, message):
    with pytest.raises(PatternError, match=message):
        parse_pattern(text, mode)


async def test_forward_finds_matches_across_chunk_boundaries():
    data = bytes(random.Random(7).randrange(1, 256) for _ in range(5000))
    mem = MemoryExport(8192)
    mem.put(0, data)
    for chunk in (64, 100, 4096):
        for at in (60, 61, 63, 64, 127, 4094):
            pattern = data[at : at + 5]
            expected = data.find(pattern)
            assert await find(mem, pattern, 0, chunk=chunk) == expected
            assert await find(mem, pattern, expected + 1, chunk=chunk) == data.find(
                pattern, expected + 1
            )


async def test_backward_finds_the_last_match_at_or_before_start():
    mem = MemoryExport(1 << 20)
    for where in (10, 4095, 70000, 500000):
        mem.put(where, b"\x55\xaa\x01")
    assert await find(mem, b"\x55\xaa\x01", (1 << 20) - 1, backward=True, chunk=4096) == 500000
    assert await find(mem, b"\x55\xaa\x01", 499999, backward=True, chunk=4096) == 70000
    assert await find(mem, b"\x55\xaa\x01", 70000, backward=True, chunk=4096) == 70000
    assert await find(mem, b"\x55\xaa\x01", 4096, backward=True, chunk=4096) == 4095
    assert await find(mem, b"\x55\xaa\x01", 9, backward=True) is None
    assert await find(mem, b"\x55\xaa\x01", 500001) is None


async def test_a_terabyte_of_holes_is_skipped_without_reading_it():
    mem = MemoryExport(TIB)
    mem.put(TIB - 4096 - 2, b"NEEDLE")  # crosses a page (and chunk) boundary
    seen = []
    hit = await find(mem, b"NEEDLE", 0, progress=lambda d, t: seen.append((d, t)))
    assert hit == TIB - 4096 - 2
    assert sum(n for _, n in mem.reads) <= 2 << 20
    assert seen and seen[-1][1] == TIB
    mem.reads.clear()
    assert await find(mem, b"NEEDLE", TIB - 1, backward=True) == TIB - 4096 - 2
    assert sum(n for _, n in mem.reads) <= 2 << 20


async def test_matches_touching_zero_regions_are_found():
    mem = MemoryExport(1 << 24)
    mem.put(1 << 22, b"\x01\x02")  # data page at 4 MiB, zeros around
    # Pattern starting in the data page and ending in a hole after it.
    mem.put((1 << 22) + 4094, b"\x07\x08")
    pattern = b"\x07\x08\x00\x00\x00"
    assert await find(mem, pattern, 0) == (1 << 22) + 4094
    # Pattern starting in the hole before the page.
    assert await find(mem, b"\x00\x00\x01\x02", 5) == (1 << 22) - 2
    assert await find(mem, b"\x00\x00\x01\x02", 1 << 23, backward=True) == (1 << 22) - 2
    # All-zero patterns are found at once in holes.
    assert await find(mem, bytes(8), 12345) == 12345
    assert await find(mem, bytes(8), (1 << 24) - 1, backward=True) == (1 << 24) - 8


async def test_without_block_status_everything_is_read():
    mem = MemoryExport(1 << 20, block_status=False)
    mem.put(900000, b"xyz")
    assert await find(mem, b"xyz", 0) == 900000
    assert await find(mem, b"xyz", 1 << 20, backward=True) == 900000
    assert sum(n for _, n in mem.reads) >= 900000


async def test_next_and_previous_allocated_extent():
    mem = MemoryExport(TIB)
    mem.put(0, b"x")  # data [0, 4096)
    mem.put(1 << 30, b"y" * 8192)  # data [1 GiB, 1 GiB + 8192)
    mem.put(TIB - 1, b"z")  # data [TIB - 4096, TIB)
    assert await next_data(mem, 0, TIB) == 1 << 30
    assert await next_data(mem, 5000, TIB) == 1 << 30
    assert await next_data(mem, (1 << 30) + 100, TIB) == TIB - 4096
    assert await next_data(mem, TIB - 10, TIB) is None
    assert await previous_data(mem, TIB - 10) == TIB - 4096  # start of the current run
    assert await previous_data(mem, TIB - 4096) == 1 << 30
    assert await previous_data(mem, (1 << 30) + 5000) == 1 << 30
    assert await previous_data(mem, 1 << 30) == 0
    assert await previous_data(mem, 0) is None


@given(
    st.dictionaries(st.integers(0, 15), st.binary(min_size=1, max_size=64), max_size=6),
    st.binary(min_size=1, max_size=6),
    st.integers(0, 65535),
    st.sampled_from([4096, 8192, 65536]),
)
@settings(max_examples=150, deadline=None)
def test_search_agrees_with_bytes_find(writes, pattern, start, chunk):
    """Forward and backward search give what bytes.find / bytes.rfind give."""
    mem = MemoryExport(1 << 16)
    for page, data in writes.items():
        mem.put(page * 4096 + 4096 - len(data) // 2, data[: 65536 - page * 4096])
    if writes:  # plant the pattern in a data page, astride a page boundary
        mem.put(min(writes) * 4096 + 4093, pattern)
    whole = mem.get(0, 1 << 16)
    expected = whole.find(pattern, start)
    got = asyncio.run(find(mem, pattern, start, chunk=chunk))
    assert got == (None if expected < 0 else expected)
    expected = whole.rfind(pattern, 0, start + len(pattern))
    got = asyncio.run(find(mem, pattern, start, backward=True, chunk=chunk))
    assert got == (None if expected < 0 else expected)


# ---- alignment and find all -----------------------------------------------------------


async def test_search_at_an_alignment_skips_unaligned_matches():
    mem = MemoryExport(1 << 20)
    for where in (0x38, 0x400 + 0x10, 0x400 + 0x38, 0x8000 + 0x38, 0x8001):
        mem.put(where, b"\x53\xef")
    align = Alignment(1024, 0x438)
    assert align.remainder == 0x38
    assert await find(mem, b"\x53\xef", 0x39, align=align, chunk=4096) == 0x438
    assert await find(mem, b"\x53\xef", 0x439, align=align, chunk=4096) == 0x8038
    assert await find(mem, b"\x53\xef", 0x8037, backward=True, align=align) == 0x438
    assert await find(mem, b"\x53\xef", 0x37, backward=True, align=align) is None
    hits, more = await find_all(mem, b"\x53\xef", align=align, chunk=4096)
    assert (hits, more) == ([0x38, 0x438, 0x8038], False)


async def test_an_aligned_zero_pattern_is_found_inside_a_hole():
    mem = MemoryExport(TIB)
    mem.put(0, b"\xff" * 4096)
    align = Alignment(1 << 30, 7)
    assert await find(mem, bytes(4), 0, align=align) == (1 << 30) + 7
    assert await find(mem, bytes(4), TIB - 1, backward=True, align=align) == TIB - (1 << 30) + 7
    assert sum(n for _, n in mem.reads) <= 2 << 20


async def test_find_all_lists_overlapping_matches_and_stops_at_its_limit():
    mem = MemoryExport(1 << 20)
    mem.put(5000, b"aaaa")
    mem.put(70000, b"xaax")
    hits, more = await find_all(mem, b"aa", chunk=4096)
    assert (hits, more) == ([5000, 5001, 5002, 70001], False)
    assert await find_all(mem, b"aa", limit=2) == ([5000, 5001], True)
    assert await find_all(mem, b"aa", start=5002) == ([5002, 70001], False)


@given(
    st.binary(min_size=1, max_size=3),
    st.integers(1, 600),
    st.integers(0, 1000),
    st.integers(0, 8191),
    st.sampled_from([4096, 8192]),
)
@settings(max_examples=150, deadline=None)
def test_aligned_search_agrees_with_a_scan(pattern, modulus, remainder, start, chunk):
    mem = MemoryExport(1 << 13)
    rng = random.Random(modulus * 7 + remainder)
    mem.put(0, bytes(rng.choice(b"ab\x00") for _ in range(6000)))
    whole = mem.get(0, 1 << 13)
    m = len(pattern)
    aligned = [
        o
        for o in range(len(whole) - m + 1)
        if whole[o : o + m] == pattern and o % modulus == remainder % modulus
    ]
    align = Alignment(modulus, remainder)
    after = [o for o in aligned if o >= start]
    got = asyncio.run(find(mem, pattern, start, align=align, chunk=chunk))
    assert got == (after[0] if after else None)
    before = [o for o in aligned if o <= start]
    got = asyncio.run(find(mem, pattern, start, backward=True, align=align, chunk=chunk))
    assert got == (before[-1] if before else None)
    hits, more = asyncio.run(find_all(mem, pattern, align=align, chunk=chunk, limit=10**6))
    assert hits == aligned and not more
