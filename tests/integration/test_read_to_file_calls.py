"""`nbdtui read` and `nbdtui copy` from an export into a file on threads
(nbdtui.cli.transfer.read_to_file, nbdtui.cli.copy_engine): once bytes have come in, a call
to the bulk engine covers several 4 MiB pieces (nbdtui.cli.engine_calls), never one that
block status says is all zeros, and the file gets nbdcopy's bytes, over a plain Unix
socket and over TLS (the engine's own connections)."""

from __future__ import annotations

import random

import pytest

import nbdtui
from nbdtui.cli import copy_engine, engine_calls, transfer
from nbdtui.cli.copy_sides import ExportSide, FileSide
from nbdtui.client import Pool
from nbdtui.client.bulk import BulkEngine
from tests.support.oracles import nbdcopy_out, oracle

MiB = 1 << 20
HOLE = (20 * MiB, 32 * MiB)  # three whole pieces of zeros


class Bar:
    def __init__(self) -> None:
        self.done = 0

    def advance(self, n: int) -> None:
        self.done += n


@pytest.mark.parametrize("command", ["read", "copy"])
@pytest.mark.parametrize("tls", [False, True], ids=["unix", "tls"])
async def test_calls_grow_over_data_pieces_and_skip_the_hole(
    nbdkit, tls_certs, tmp_path, monkeypatch, tls, command
):
    size = 64 * MiB
    server = nbdkit("memory", str(size), unix=not tls, tls=tls_certs if tls else None)
    uri = server.tls_uri_for() if tls else server.uri
    image = tmp_path / "image"
    rng = random.Random(18)
    with open(image, "wb") as f:
        f.write(rng.randbytes(HOLE[0]))
        f.seek(HOLE[1])
        f.write(rng.randbytes(size - HOLE[1]))
    oracle("nbdcopy", str(image), uri)  # the zeros stay a hole of the memory plugin
    # Two calls in flight, and calls as large as 16 MiB once anything has arrived.
    monkeypatch.setattr(transfer, "FILE_PIECES_IN_FLIGHT", 2)  # (copy's calls are read's)
    monkeypatch.setattr(transfer, "FILE_CALL_MOST", 16 * MiB)
    monkeypatch.setattr(engine_calls, "EVERY", 1e6)
    calls: list[tuple[int, int]] = []
    real = BulkEngine.read_into

    async def read_into(self, offset, buffer):
        assert self.threaded
        calls.append((offset, len(buffer)))
        await real(self, offset, buffer)

    monkeypatch.setattr(BulkEngine, "read_into", read_into)
    out = tmp_path / "out"
    out.write_bytes(b"\xff" * size)  # the hole must be written as zeros over this
    bar = Bar()
    with open(out, "r+b", buffering=0) as f:
        async with nbdtui.open(uri, pool=Pool()) as export:
            if command == "read":
                await transfer.read_to_file(export, 0, size, f.fileno(), bar)
            else:
                src = ExportSide(export, uri)
                dst = FileSide(f, str(out), size, seekable=True, regular=True)
                data, zero = await copy_engine.plan(src, dst, 0, size)
                assert data == [(0, HOLE[0]), (HOLE[1], size)]
                await copy_engine.copy_ranges(src, dst, data, zero, bar)
    assert out.read_bytes() == nbdcopy_out(uri) == image.read_bytes()
    assert bar.done == size
    assert calls[:2] == [(0, 4 * MiB), (4 * MiB, 4 * MiB)]
    assert max(n for _, n in calls) == 16 * MiB
    assert all(o % (4 * MiB) == 0 and n % (4 * MiB) == 0 for o, n in calls)
    assert not any(o < HOLE[1] and o + n > HOLE[0] for o, n in calls), calls
    covered = sorted(calls)
    assert sum(n for _, n in covered) == size - (HOLE[1] - HOLE[0])
