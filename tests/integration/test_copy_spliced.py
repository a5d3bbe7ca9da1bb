"""Export to export copies spliced socket -> pipe -> socket (nbdtui.client.splice_copy),
against nbdkit and qemu-nbd: the bytes equal the source's (nbdcopy the oracle), holes in
a qemu-nbd reply become zeroes, and a server error in the middle of the copy ends it with
exit 1, one line, and nothing written that was not read."""

from __future__ import annotations

import random
import subprocess
import sys
import threading

import pytest

import nbdtui
from nbdtui.client import Pool
from nbdtui.client.splice_copy import splice_copy
from nbdtui.errors import RequestError
from tests.support.cli_helpers import assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_nbdtui
from tests.support.oracles import nbdcopy_out, oracle

MiB = 1 << 20
SIZE = 24 * MiB


def _image(tmp_path, seed=1):
    image = tmp_path / "src.img"
    image.write_bytes(random.Random(seed).randbytes(SIZE))
    return image


@pytest.mark.parametrize("server", ["nbdkit", "qemu-nbd"])
async def test_splice_copy_moves_every_byte_and_counts_only_acknowledged(
    server, nbdkit, qemu_nbd, make_image, tmp_path
):
    """The spliced path is taken (True) into nbdkit's memory plugin and into qemu-nbd
    serving qcow2; every byte arrives and exactly the acknowledged ones are counted."""
    image = _image(tmp_path)
    src = nbdkit("file", str(image))
    if server == "nbdkit":
        dst = nbdkit("memory", str(SIZE))
    else:
        qcow = make_image(tmp_path, SIZE, fmt="qcow2", name="dst.qcow2")
        dst = qemu_nbd(qcow, fmt="qcow2", export="disk")
    counted: list[int] = []
    pool = Pool()
    async with (
        nbdtui.open(src.uri, pool=pool, connections=4) as a,
        nbdtui.open(dst.uri, pool=pool, connections=4) as b,
    ):
        ranges = [(0, 3 * MiB), (5 * MiB, SIZE)]
        assert await splice_copy(a, b, ranges, counted.append)
        assert sum(counted) == SIZE - 2 * MiB
        # the connections came back usable
        assert await b.read(0, 4096) == image.read_bytes()[:4096]
    want = bytearray(image.read_bytes())
    want[3 * MiB : 5 * MiB] = bytes(2 * MiB)
    assert nbdcopy_out(dst.uri) == bytes(want)


def test_copy_export_to_export_is_byte_exact(nbdkit, tmp_path):
    image = _image(tmp_path, seed=2)
    src = nbdkit("file", str(image))
    dst = nbdkit("memory", str(SIZE))
    r = run_nbdtui("copy", "--connections", "4", "--requests", "8", src.uri, dst.uri)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert nbdcopy_out(dst.uri) == image.read_bytes()


def test_copy_from_qemu_nbd_with_holes_to_nbdkit(qemu_nbd, make_image, nbdkit, tmp_path):
    """qemu-nbd answers reads of unallocated clusters with hole chunks: zeroes in DST
    (which held other bytes there), data spliced elsewhere."""
    content = random.Random(3).randbytes(40 * MiB)  # past qemu-nbd's 32 MiB payload
    size = 48 * MiB
    server = qemu_nbd(make_image(tmp_path, size, content=content), export="disk")
    dst = nbdkit("memory", str(size))
    fill = tmp_path / "fill.img"
    fill.write_bytes(b"\xa5" * size)
    assert run_nbdtui("copy", str(fill), dst.uri).returncode == 0
    r = run_nbdtui("copy", "--connections", "2", "--requests", "4", server.uri, dst.uri)
    assert r.returncode == 0, r.stderr
    assert nbdcopy_out(dst.uri) == content + bytes(8 * MiB)


def test_read_error_mid_copy_one_line_and_nothing_unread_written(nbdkit, tmp_path):
    """nbdkit's ddrescue filter fails every read past 8 MiB: exit 1, one line naming
    the read error, and DST holds the source's bytes before, zeroes after."""
    image = _image(tmp_path, seed=4)
    mapfile = tmp_path / "filter.map"
    mapfile.write_text(f"0 +\n0 {8 * MiB:#x} +\n{8 * MiB:#x} {SIZE - 8 * MiB:#x} -\n")
    src = nbdkit(
        "file", str(image), filters=("ddrescue",), extra_options=(f"ddrescue-mapfile={mapfile}",)
    )
    dst = nbdkit("memory", str(SIZE))
    r = run_nbdtui("copy", "--connections", "2", "--requests", "2", src.uri, dst.uri)
    assert_one_line_error(r, 1, "read")
    assert r.stdout == b""
    got = nbdcopy_out(dst.uri)
    assert got[8 * MiB :] == bytes(SIZE - 8 * MiB)
    copied = got[: 8 * MiB]
    for at in range(0, 8 * MiB, MiB):  # each request is whole or not written at all
        piece = copied[at : at + MiB]
        assert piece in (image.read_bytes()[at : at + MiB], bytes(MiB)), at


def test_write_error_fails_with_one_line(nbdkit, tmp_path):
    image = _image(tmp_path, seed=5)
    src = nbdkit("file", str(image))
    dst = nbdkit(
        "memory",
        str(SIZE),
        filters=("error",),
        extra_options=("error-pwrite=EIO", "error-pwrite-rate=1"),
    )
    r = run_nbdtui("copy", src.uri, dst.uri)
    assert_one_line_error(r, 1, "write")


async def test_server_error_is_raised_after_every_reply(nbdkit, tmp_path):
    image = _image(tmp_path, seed=6)
    src = nbdkit(
        "file", str(image), filters=("error",),
        extra_options=("error-pread=EIO", "error-pread-rate=1"),
    )  # fmt: skip
    dst = nbdkit("memory", str(SIZE))
    counted: list[int] = []
    pool = Pool()
    async with (
        nbdtui.open(src.uri, pool=pool, connections=2) as a,
        nbdtui.open(dst.uri, pool=pool, connections=2) as b,
    ):
        with pytest.raises(RequestError):
            await splice_copy(a, b, [(0, SIZE)], counted.append)
        assert counted == []
        assert await b.read(0, 16) == bytes(16)  # usable after the error


def test_src_killed_mid_copy_fails_with_one_line(nbdkit, tmp_path):
    """The source goes away while reads are in flight: exit 1, one line; DST holds
    no byte that was not the source's."""
    src = nbdkit("memory", "64M", filters=("delay",), extra_options=("rdelay=3",))
    data = random.Random(7).randbytes(64 * MiB)
    oracle("nbdcopy", "-", src.uri, input=data)
    dst = nbdkit("memory", "64M")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbdtui", "copy", src.uri, dst.uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    threading.Timer(1.0, src.kill).start()
    out, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 1, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbdtui: "), text
    assert out == b""
    got = nbdcopy_out(dst.uri)
    for at in range(0, 64 * MiB, MiB):
        assert got[at : at + MiB] in (data[at : at + MiB], bytes(MiB)), at


def test_copy_to_qemu_nbd_qcow2_over_unix(nbdkit, qemu_nbd, make_image, tmp_path):
    """nbdkit (Unix socket) to qemu-nbd serving a qcow2 image (Unix socket): byte-exact,
    by nbdcopy and by qemu-img's own reading of the image."""
    image = _image(tmp_path, seed=8)
    src = nbdkit("file", str(image), unix=True)
    qcow = make_image(tmp_path, SIZE, fmt="qcow2", name="dst.qcow2")
    dst = qemu_nbd(qcow, fmt="qcow2", export="disk", unix=True)
    r = run_nbdtui("copy", "--connections", "4", src.uri, dst.uri, "--flush")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert nbdcopy_out(dst.uri) == image.read_bytes()
    dst.kill()
    raw = tmp_path / "dst.raw"
    oracle("qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow), str(raw))
    assert raw.read_bytes() == image.read_bytes()
