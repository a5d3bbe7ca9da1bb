"""Writing, trimming, zeroing and mapping through nbdtui.open; nbdcopy/nbdinfo are oracles."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re

import pytest

import nbdtui
from nbdtui.client import Extent, Pool
from nbdtui.errors import NotSupportedError
from nbdtui.proto.constants import AllocationFlag
from tests.support.oracles import nbdcopy_out, oracle

KiB = 1024
MiB = 1024 * KiB


def nbdinfo_map(uri: str) -> list[dict]:
    return json.loads(oracle("nbdinfo", "--map", "--json", uri))


def merged(entries) -> list[tuple[int, int, int]]:
    out: list[list[int]] = []
    for offset, length, flags in entries:
        if out and out[-1][2] == flags and out[-1][0] + out[-1][1] == offset:
            out[-1][1] += length
        else:
            out.append([offset, length, flags])
    return [tuple(e) for e in out]


def log_requests(server, kind: str) -> list[tuple[int, int]]:
    """(offset, count) of every request of ``kind`` (Read, Write, Trim, Zero) in the log."""
    pattern = re.compile(rf" {kind} id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)")
    return [(int(o, 16), int(c, 16)) for o, c in pattern.findall(server.log_path.read_text())]


@pytest.mark.parametrize("fua", [False, True])
async def test_writes_read_back_and_leave_neighbours_untouched(nbdkit, fua):
    server = nbdkit("memory", "8M")
    base = random.Random(5).randbytes(8 * MiB)
    oracle("nbdcopy", "-", server.uri, input=base)
    shadow = bytearray(base)
    rng = random.Random(6)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        for offset, length in [
            (0, 1),
            (1, 3),
            (4095, 2),
            (MiB - 7, 2 * MiB + 13),
            (8 * MiB - 1, 1),
        ]:
            data = rng.randbytes(length)
            await export.write(offset, data, fua=fua)
            shadow[offset : offset + length] = data
        await export.write(100, memoryview(bytearray(b"view")))
        shadow[100:104] = b"view"
        await export.flush()
    assert nbdcopy_out(server.uri) == shadow


async def test_unaligned_writes_use_read_modify_write_of_4k_blocks(nbdkit):
    server = nbdkit(
        "memory",
        "1M",
        filters=("blocksize-policy",),
        extra_options=("blocksize-minimum=4096", "blocksize-error-policy=error"),
        log=True,
    )
    base = random.Random(8).randbytes(MiB)
    oracle("nbdcopy", "-", server.uri, input=base)
    shadow = bytearray(base)
    rng = random.Random(9)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        assert export.block_minimum == 4096
        cases = [(1, 1), (4095, 2), (4096, 4096), (10000, 20000), (MiB - 3, 3), (0, MiB)]
        for offset, length in cases:
            data = rng.randbytes(length)
            await export.write(offset, data)
            shadow[offset : offset + length] = data
        assert await export.read(4097, 3) == shadow[4097:4100]  # unaligned read, too
        await export.zero(5000, 9000)
        shadow[5000:14000] = bytes(9000)
    assert nbdcopy_out(server.uri) == shadow
    for kind in ("Read", "Write", "Zero"):
        for offset, count in log_requests(server, kind):
            assert offset % 4096 == 0 and count % 4096 == 0, (kind, offset, count)


async def test_concurrent_unaligned_writes_do_not_undo_each_other(nbdkit):
    server = nbdkit(
        "memory",
        "64K",
        filters=("blocksize-policy", "delay"),
        extra_options=("blocksize-minimum=4096", "blocksize-error-policy=error", "rdelay=5ms"),
    )
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        # 12 one-byte writes into the same two blocks, all at once
        await asyncio.gather(*(export.write(4090 + i, bytes([i + 1])) for i in range(12)))
        assert await export.read(4090, 12) == bytes(range(1, 13))


async def test_trim_makes_a_hole_and_zero_reads_back_zeroes(nbdkit):
    server = nbdkit("memory", "4M")
    oracle("nbdcopy", "-", server.uri, input=b"\xff" * 4 * MiB)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        await export.trim(MiB, MiB)
        await export.zero(3 * MiB + 5, 100)
        await export.zero(0, 64 * KiB, no_hole=True, fua=True)
        await export.zero(64 * KiB, 64 * KiB, fast=True)
    entries = nbdinfo_map(server.uri)
    holes = [(e["offset"], e["length"]) for e in entries if e["type"] & 1]
    assert (MiB, MiB) in holes
    data = nbdcopy_out(server.uri)
    assert data[3 * MiB + 5 : 3 * MiB + 105] == bytes(100)
    assert data[3 * MiB + 4] == 0xFF and data[3 * MiB + 105] == 0xFF
    assert data[: 128 * KiB] == bytes(128 * KiB)
    assert data[128 * KiB : MiB] == b"\xff" * (MiB - 128 * KiB)


async def test_extents_agree_with_nbdinfo_map(nbdkit):
    server = nbdkit("memory", "16M")
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        rng = random.Random(10)
        for offset in (0, 3 * MiB, 3 * MiB + 40 * KiB, 9 * MiB, 16 * MiB - 32 * KiB):
            await export.write(offset, rng.randbytes(32 * KiB))
        await export.zero(5 * MiB, MiB, no_hole=True)
        extents = await export.extents()
        assert extents[0].offset == 0 and sum(e.length for e in extents) == 16 * MiB
        assert all(a.end == b.offset for a, b in itertools.pairwise(extents))
        oracle_map = merged((e["offset"], e["length"], e["type"]) for e in nbdinfo_map(server.uri))
        assert [(e.offset, e.length, e.flags) for e in extents] == oracle_map
        descriptions = {e["type"]: e["description"] for e in nbdinfo_map(server.uri)}
        for e in extents:
            assert e.description == descriptions[e.flags]
        # a sub-range is clipped exactly to what was asked
        part = await export.extents(3 * MiB + 1, 100 * KiB)
        assert part[0].offset == 3 * MiB + 1 and part[-1].end == 3 * MiB + 1 + 100 * KiB
        assert part[0].flags == 0 and part[-1].hole
    assert Extent(0, 1, 3).description == "hole,zero"
    assert Extent(0, 1, AllocationFlag.ZERO).zero and not Extent(0, 1, 0).hole


async def test_extents_of_a_server_reporting_all_data(nbdkit):
    server = nbdkit("memory", "1M", filters=("noextents",))
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        await export.trim(0, 1024 * KiB)
        assert await export.extents(5, 100) == [Extent(5, 100, 0)]
        assert await export.extents() == [Extent(0, MiB, 0)]


async def test_write_to_read_only_export_sends_nothing(nbdkit):
    server = nbdkit("memory", "1M", log=True, readonly=True)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        assert export.info.read_only
        for call in (
            export.write(0, b"x" * 4096),
            export.trim(0, 4096),
            export.zero(0, 4096),
        ):
            with pytest.raises(NotSupportedError, match="read-only"):
                await call
    log = server.log_path.read_text()
    assert " Write id=" not in log and " Trim id=" not in log and " Zero id=" not in log


EVAL_DISK = (
    "get_size=echo 1048576",
    "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
    "pwrite=cat >/dev/null",
)


async def test_unsupported_commands_are_refused_before_sending(nbdkit):
    # the eval plugin without can_fua/flush/trim/cache scripts supports none of them
    server = nbdkit("eval", *EVAL_DISK, log=True)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        assert not (export.info.can_fua or export.info.can_flush or export.info.can_trim)
        for call, message in [
            (export.write(0, b"x", fua=True), "FUA"),
            (export.zero(0, 512, fua=True), "FUA"),
            (export.trim(0, 512), "trim"),
            (export.flush(), "flush"),
            (export.cache(0, 512), "cache"),
        ]:
            with pytest.raises(NotSupportedError, match=message):
                await call
        await export.write(0, b"plain write works")
    log = server.log_path.read_text()
    assert len(log_requests(server, "Write")) == 1
    assert " Trim id=" not in log and " Flush id=" not in log and " Cache id=" not in log


async def test_fast_zero_refused_and_zero_falls_back_to_writes(nbdkit):
    server = nbdkit("memory", "1M", filters=("nozero",), log=True)
    oracle("nbdcopy", "-", server.uri, input=b"\x07" * MiB)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        assert not export.info.can_zero and not export.info.can_fast_zero
        with pytest.raises(NotSupportedError, match="fast-zero"):
            await export.zero(0, 512, fast=True)
        writes_before = len(log_requests(server, "Write"))
        await export.zero(100, 700 * KiB)
    assert len(log_requests(server, "Write")) > writes_before
    data = nbdcopy_out(server.uri)
    assert data[100 : 100 + 700 * KiB] == bytes(700 * KiB)
    assert data[99] == 7 and data[100 + 700 * KiB] == 7


async def test_no_trim_no_flush(nbd_server, tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(MiB))
    server = nbd_server({"disk": {"file": path, "trim": False, "flush": False}})
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        with pytest.raises(NotSupportedError, match="trim"):
            await export.trim(0, 4096)
        with pytest.raises(NotSupportedError, match="flush"):
            await export.flush()
        await export.write(10, b"still works")
        assert await export.read(10, 11) == b"still works"
    assert path.read_bytes()[10:21] == b"still works"


async def test_cache_and_zero_fallback_on_qemu(qemu_nbd, make_image, tmp_path):
    image = make_image(tmp_path, 4 * MiB, content=b"\x01" * 4 * MiB)
    server = qemu_nbd(image, export="disk")
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        await export.cache(0, 4 * MiB)
        await export.zero(1, 3 * MiB)
        await export.flush()
    data = nbdcopy_out(server.uri)
    assert data[:1] == b"\x01" and data[1 : 3 * MiB + 1] == bytes(3 * MiB)
    assert data[3 * MiB + 1 :] == b"\x01" * (MiB - 1)
