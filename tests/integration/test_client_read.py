"""Reading through nbdtui.open from real servers; nbdcopy is the oracle."""

from __future__ import annotations

import random

import pytest

import nbdtui
from nbdtui.client import Pool, probe
from nbdtui.errors import NbdError, RangeError
from tests.support.oracles import nbdcopy_out, oracle

KiB = 1024
MiB = 1024 * KiB

# offsets/lengths: 1 byte, around request-size and payload boundaries, the last byte
RANGES = [
    (0, 1),
    (1, 1),
    (511, 2),
    (4095, 4098),
    (256 * KiB - 3, 6),
    (512 * KiB - 1, 1 * MiB + 2),
    (12345, 3 * MiB + 7),
    (4 * MiB - 1, 1),
]


async def check_ranges(uri: str, whole: bytes, ranges=RANGES) -> None:
    async with nbdtui.open(uri, pool=Pool()) as export:
        assert export.size == len(whole)
        assert await export.read(0, export.size) == whole
        for offset, length in ranges:
            assert await export.read(offset, length) == whole[offset : offset + length], (
                offset,
                length,
            )
        buf = bytearray(10)
        await export.read_into(export.size - 10, memoryview(buf))
        assert buf == whole[-10:]
        assert await export.read(export.size, 0) == b""


async def test_nbdkit_pattern(nbdkit):
    server = nbdkit("pattern", "4M")
    await check_ranges(server.uri, nbdcopy_out(server.uri))


async def test_nbdkit_memory_sparse(nbdkit):
    server = nbdkit("memory", "4M")
    data = random.Random(1).randbytes(MiB + 17)
    oracle("nbdcopy", "--destination-is-zero", "-", server.uri, input=data)
    whole = nbdcopy_out(server.uri)
    assert whole[: len(data)] == data
    await check_ranges(server.uri, whole)


async def test_nbdkit_unix_socket_with_export_name(nbdkit):
    server = nbdkit("pattern", "4M", unix=True)
    await check_ranges(server.uri, nbdcopy_out(server.uri))


async def test_nbd_server(nbd_server, tmp_path):
    content = random.Random(2).randbytes(4 * MiB)
    path = tmp_path / "disk.img"
    path.write_bytes(content)
    server = nbd_server({"disk": {"file": path}})
    assert nbdcopy_out(server.uri) == content
    await check_ranges(server.uri, content)


async def test_qemu_nbd_100_mib_read_crosses_its_32_mib_payload_limit(
    qemu_nbd, make_image, tmp_path
):
    size = 100 * MiB
    rng = random.Random(3)
    content = bytearray(size)
    for i in range(0, size, 4 * MiB):  # random islands: cheap to make, easy to misplace
        content[i + 1 : i + 1 + 64 * KiB] = rng.randbytes(64 * KiB)
    server = qemu_nbd(make_image(tmp_path, size, content=bytes(content)), export="disk")
    whole = nbdcopy_out(server.uri)
    assert whole == content
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        assert export.max_payload == 32 * MiB
        export.request_size = 100 * MiB  # still split at the server's maximum payload
        assert export.request_size == 32 * MiB
        data = await export.read(0, size)
        assert data == whole
        assert await export.read(size - 1, 1) == whole[-1:]
        assert await export.read(32 * MiB - 5, 10) == whole[32 * MiB - 5 : 32 * MiB + 5]


async def test_qemu_nbd_single_request_larger_than_payload_is_split(qemu_nbd, make_image, tmp_path):
    content = random.Random(4).randbytes(40 * MiB)
    server = qemu_nbd(make_image(tmp_path, 40 * MiB, content=content), export="disk")
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        export.request_size = 64 * MiB  # bigger than the server allows
        assert await export.read(3, 40 * MiB - 6) == content[3:-3]


async def test_ranges_past_the_end_are_refused_before_sending(nbdkit):
    server = nbdkit("pattern", "1M", log=True)
    async with nbdtui.open(server.uri, pool=Pool()) as export:
        with pytest.raises(RangeError, match=r"past the end of the export \(size 1048576\)"):
            await export.read(MiB - 1, 2)
        with pytest.raises(ValueError, match="past the end"):
            await export.read(MiB + 1, 0)
        with pytest.raises(NbdError, match="negative"):
            await export.read(-1, 1)
    log = server.log_path.read_text()
    assert " Read id=" not in log


async def test_probe(nbdkit):
    server = nbdkit("memory", "1M")
    negotiated = await probe(server.uri)
    assert negotiated.info.size == MiB
    assert negotiated.structured
    assert negotiated.context_id("base:allocation") is not None
    assert "base:allocation" in (negotiated.available_contexts or ())
