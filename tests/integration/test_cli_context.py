"""Incremental copies and meta contexts: `nbdtui copy --context qemu:dirty-bitmap:NAME`
and `nbdtui map --context CTX`, against qemu-nbd serving a qcow2 image with a dirty
bitmap (qemu-img bitmap --add, writes through qemu-io). nbdinfo --map=CTX is the oracle
of the map, the source's bytes of the copy."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.cli_helpers import assert_one_line_error, nbdtui
from tests.support.oracles import nbdcopy_out, oracle
from tests.support.requirements import require

MiB = 1024 * 1024
SIZE = 16 * MiB
BITMAP = "qemu:dirty-bitmap:b0"
# (offset, length, byte) written after the bitmap was added; byte None: write -z
DIRTY = [(4 * MiB, 64 * 1024, 0x22), (9 * MiB, MiB, 0x33), (12 * MiB, MiB, None)]


@pytest.fixture
def bitmap_image(tmp_path):
    image = tmp_path / "disk.qcow2"
    qemu_img, qemu_io = require("qemu-img"), require("qemu-io")

    def run(*argv):
        subprocess.run(argv, check=True, capture_output=True)

    run(qemu_img, "create", "-q", "-f", "qcow2", str(image), str(SIZE))
    run(qemu_io, "-f", "qcow2", "-c", "write -P 0x11 0 2M", "-c", "write -P 0x44 12M 1M", image)
    run(qemu_img, "bitmap", "--add", str(image), "b0")
    for offset, length, byte in DIRTY:
        cmd = (
            f"write -z {offset} {length}" if byte is None else f"write -P {byte} {offset} {length}"
        )
        run(qemu_io, "-f", "qcow2", "-c", cmd, str(image))
    return image


@pytest.fixture
def bitmap_server(qemu_nbd, bitmap_image):
    return qemu_nbd(bitmap_image, fmt="qcow2", readonly=True, extra=("-B", "b0", "-A"))


@pytest.mark.parametrize("context", [BITMAP, "qemu:allocation-depth", "base:allocation"])
def test_map_context_matches_nbdinfo(bitmap_server, context):
    theirs = oracle("nbdinfo", f"--map={context}", bitmap_server.uri).decode()
    r = nbdtui("map", "--context", context, bitmap_server.uri)
    assert r.returncode == 0, r.stderr
    assert r.text == theirs
    theirs_json = oracle("nbdinfo", "--json", f"--map={context}", bitmap_server.uri)
    r = nbdtui("map", "--json", "--context", context, bitmap_server.uri)
    assert r.json() == json.loads(theirs_json)


def test_map_several_contexts_side_by_side(bitmap_server):
    r = nbdtui("map", "--context", BITMAP, "--context", "qemu:allocation-depth", bitmap_server.uri)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.text.splitlines()]
    dirty = [(int(o), int(o) + int(n)) for o, n, t, d, *_ in rows if d == "dirty"]
    assert dirty == [(a, a + n) for a, n, _ in DIRTY]
    assert all(row[4:] == ["1", "local"] for row in rows if row[3] == "dirty")
    assert sum(int(row[1]) for row in rows) == SIZE
    r = nbdtui(
        "map", "--json", "--context", BITMAP, "--context", "base:allocation", bitmap_server.uri
    )
    doc = r.json()
    assert doc[0]["contexts"][BITMAP] == {"type": 0, "description": "clean"}
    assert doc[0]["contexts"]["base:allocation"]["description"] == "data"


def test_copy_context_copies_only_the_dirty_extents(bitmap_server, nbdkit):
    dst = nbdkit("memory", str(SIZE), log=True)
    oracle("nbdcopy", "-", dst.uri, input=b"\xff" * SIZE)
    before = len(dst.log_path.read_text().splitlines())
    r = nbdtui("copy", "--context", BITMAP, bitmap_server.uri, dst.uri)
    assert r.returncode == 0, r.stderr
    source = nbdcopy_out(bitmap_server.uri)
    expected = bytearray(b"\xff" * SIZE)
    for offset, length, _ in DIRTY:
        expected[offset : offset + length] = source[offset : offset + length]
    got = nbdcopy_out(dst.uri)
    assert got == bytes(expected)
    assert got[12 * MiB : 13 * MiB] == bytes(MiB)  # the dirty zeroes: a zero request
    log = dst.log_path.read_text().splitlines()[before:]
    assert any(" Zero id=" in line for line in log)


def test_context_the_server_does_not_offer(bitmap_server, nbdkit, tmp_path):
    r = nbdtui("map", "--context", "qemu:dirty-bitmap:nope", bitmap_server.uri)
    assert_one_line_error(r, 1, "does not offer", "qemu:dirty-bitmap:nope")
    dst = nbdkit("memory", str(SIZE), log=True)
    r = nbdtui("copy", "--context", "qemu:dirty-bitmap:nope", bitmap_server.uri, dst.uri)
    assert_one_line_error(r, 1, "does not offer", "qemu:dirty-bitmap:nope")
    assert " Write id=" not in dst.log_path.read_text()
    r = nbdtui("copy", "--context", BITMAP, str(tmp_path / "x.img"), dst.uri)
    assert_one_line_error(r, 2, "--context needs SRC to be an NBD endpoint")
    r = nbdtui("copy", "--context", BITMAP, bitmap_server.uri, "-")
    assert_one_line_error(r, 2, "need DST to be an export, a file or a device")
    assert r.stdout == b""
