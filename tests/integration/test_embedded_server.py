"""The embedded NBD server end to end, with libnbd's nbdinfo/nbdcopy and QEMU as clients.

The server runs in the test's event loop; the clients run as subprocesses through
``asyncio.create_subprocess_exec`` so that the loop keeps serving while they talk.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbdtui.errors import BackendError, Errno, NbdError
from nbdtui.proto.constants import (
    IHAVEOPT,
    REQUEST_MAGIC,
    AllocationFlag,
    Command,
    Option,
    OptionReply,
)
from nbdtui.server import MemoryBackend, serve
from nbdtui.server.backend import CHUNK_SIZE, HOLE_FLAGS
from tests.support.requirements import SYSTEM_PYTHON, require, require_system_module

MIB = 1024 * 1024
TIB = 1024**4
DISK_SIZE = 8 * MIB

pytestmark = pytest.mark.timeout(120)


def _need(*tools: str) -> None:
    for tool in tools:
        require(tool)


async def run(*args: str, check: bool = True, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}): {err.decode()}")
    return proc.returncode, out.decode(), err.decode()


async def nbdinfo_json(*args: str) -> dict:
    _, out, _ = await run("nbdinfo", "--json", *args)
    return json.loads(out)


def _pieces() -> list[tuple[int, bytes]]:
    rnd = random.Random(1234)
    return [
        (0, b"\xeb\x3c\x90nbdtui" + bytes(500) + b"\x55\xaa"),
        (MIB + 100, rnd.randbytes(3000)),
        (3 * MIB, rnd.randbytes(2 * CHUNK_SIZE)),
        (DISK_SIZE - 512, b"end!" * 128),
    ]


@pytest.fixture(params=["tcp", "unix"])
async def server(request):
    exports = {
        "disk": MemoryBackend(DISK_SIZE, _pieces()),
        "ro": MemoryBackend(DISK_SIZE, _pieces(), read_only=True),
        "big": MemoryBackend(TIB),
    }
    descriptions = {"disk": "writable test disk", "ro": "read-only test disk"}
    srv = await serve(exports, unix=request.param == "unix", descriptions=descriptions)
    try:
        yield srv
    finally:
        await srv.close()


def _expected_map(backend: MemoryBackend) -> list[dict]:
    out, pos = [], 0
    for length, flags in backend.extents(0, backend.size):
        out.append({"offset": pos, "length": length, "type": flags})
        pos += length
    return out


# ---- nbdinfo -------------------------------------------------------------------------------


async def test_nbdinfo_reports_size_flags_block_sizes_and_contexts(server):
    _need("nbdinfo")
    info = await nbdinfo_json(server.uri_for("disk"))
    assert info["protocol"] == "newstyle-fixed"
    assert info["structured"] is True and info["TLS"] is False
    (export,) = info["exports"]
    assert export["export-name"] == "disk"
    assert export["description"] == "writable test disk"
    assert export["export-size"] == DISK_SIZE
    assert export["contexts"] == ["base:allocation"]
    assert export["is_read_only"] is False
    for flag in (
        "can_trim",
        "can_zero",
        "can_fast_zero",
        "can_flush",
        "can_fua",
        "can_multi_conn",
        "can_cache",
        "can_df",
    ):
        assert export[flag] is True, flag
    assert export["is_rotational"] is False
    assert export["block_size_minimum"] == 1
    assert export["block_size_preferred"] == 4096
    assert export["block_size_maximum"] == 32 * MIB


async def test_nbdinfo_read_only_export(server):
    _need("nbdinfo")
    (export,) = (await nbdinfo_json(server.uri_for("ro")))["exports"]
    assert export["is_read_only"] is True
    assert export["description"] == "read-only test disk"
    for flag in ("can_trim", "can_zero", "can_fast_zero", "can_fua"):
        assert export[flag] is False, flag
    assert export["can_flush"] is True and export["can_multi_conn"] is True


async def test_nbdinfo_lists_every_export(server):
    _need("nbdinfo")
    info = await nbdinfo_json("--list", server.uri)
    exports = {e["export-name"]: e for e in info["exports"]}
    assert list(exports) == ["disk", "ro", "big"]
    assert exports["disk"]["description"] == "writable test disk"
    assert "description" not in exports["big"]
    assert exports["big"]["export-size"] == TIB
    assert exports["ro"]["is_read_only"] is True


async def test_nbdinfo_map_shows_the_backend_holes_and_data(server):
    _need("nbdinfo")
    for name in ("disk", "big"):
        _, out, _ = await run("nbdinfo", "--map", "--json", server.uri_for(name))
        got = [{k: e[k] for k in ("offset", "length", "type")} for e in json.loads(out)]
        assert got == _expected_map(server.exports[name]), name
    assert _expected_map(server.exports["big"]) == [{"offset": 0, "length": TIB, "type": 3}]
    kinds = [e["type"] for e in _expected_map(server.exports["disk"])]
    assert kinds == [0, 3, 0, 3, 0, 3, 0]


async def test_default_export_and_percent_encoded_names():
    _need("nbdinfo")
    name = "my disk/é"
    async with await serve({name: MemoryBackend(MIB), "other": MemoryBackend(2 * MIB)}) as srv:
        assert srv.uri == f"nbd://127.0.0.1:{srv.port}/my%20disk%2F%C3%A9"
        (export,) = (await nbdinfo_json(srv.uri))["exports"]
        assert export["export-name"] == name and export["export-size"] == MIB
        # No export name: the default (first) export, which the server names.
        (export,) = (await nbdinfo_json(f"nbd://127.0.0.1:{srv.port}"))["exports"]
        assert export["export-name"] == name
        code, _, err = await run("nbdinfo", f"nbd://127.0.0.1:{srv.port}/nope", check=False)
        assert code != 0 and "No such file or directory for export: nope" in err  # ERR_UNKNOWN


# ---- nbdcopy -------------------------------------------------------------------------------


def _sparse_file(path: Path, size: int) -> bytes:
    """Random data with zero runs: some whole chunks, some unaligned."""
    rnd = random.Random(99)
    data = bytearray(rnd.randbytes(size))
    for start, length in [(0, 3 * CHUNK_SIZE), (MIB + 1000, 5000), (2 * MIB, 20 * CHUNK_SIZE)]:
        data[start : start + length] = bytes(length)
    data[size - 4 * CHUNK_SIZE :] = bytes(4 * CHUNK_SIZE)
    path.write_bytes(data)
    return bytes(data)


async def test_nbdcopy_round_trip(server, tmp_path):
    _need("nbdcopy")
    src, out = tmp_path / "src.img", tmp_path / "out.img"
    data = _sparse_file(src, DISK_SIZE)
    await run("nbdcopy", str(src), server.uri_for("disk"))
    backend = server.exports["disk"]
    assert backend.read(0, DISK_SIZE) == data
    # Every all-zero chunk of the file is a hole in the backend, every other chunk data.
    for (length, flags), pos in zip(
        backend.extents(0, DISK_SIZE), _offsets(backend.extents(0, DISK_SIZE)), strict=True
    ):
        zero = data[pos : pos + length] == bytes(length)
        assert zero == (flags == HOLE_FLAGS), (pos, length, flags)
    await run("nbdcopy", server.uri_for("disk"), str(out))
    assert out.read_bytes() == data


def _offsets(extents: list[tuple[int, int]]) -> list[int]:
    pos, out = 0, []
    for length, _ in extents:
        out.append(pos)
        pos += length
    return out


async def test_nbdcopy_with_several_connections_and_many_requests(server, tmp_path):
    _need("nbdcopy")
    src, out = tmp_path / "src.img", tmp_path / "out.img"
    data = random.Random(5).randbytes(DISK_SIZE)
    src.write_bytes(data)
    before = server.connections_accepted
    args = ["--connections=4", "--threads=4", "--requests=32", "--request-size=65536"]
    await run("nbdcopy", *args, str(src), server.uri_for("disk"))
    assert server.connections_accepted - before >= 4  # CAN_MULTI_CONN was honoured
    await run("nbdcopy", *args, "--flush", server.uri_for("disk"), str(out))
    assert out.read_bytes() == data
    assert server.exports["disk"].read(0, DISK_SIZE) == data


async def test_writes_to_the_read_only_export_fail(server, tmp_path):
    _need("nbdcopy")
    src = tmp_path / "src.img"
    src.write_bytes(b"\x01" * DISK_SIZE)
    code, _, err = await run("nbdcopy", str(src), server.uri_for("ro"), check=False)
    assert code != 0 and "read-only" in err
    assert server.exports["ro"].read(0, 1 << 20) == MemoryBackend(DISK_SIZE, _pieces()).read(
        0, 1 << 20
    )


async def test_server_errors_seen_by_libnbd_without_its_client_checks(server):
    """libnbd's strict mode refuses bad requests itself; turned off, the server answers."""
    require_system_module("nbd")
    script = f"""
import nbd
def attempt(h, what, f):
    try:
        f()
        print(what, "ok")
    except nbd.Error as exc:
        print(what, nbd.Error.__name__, exc.errno)
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri({server.uri_for("ro")!r})
attempt(h, "ro-write", lambda: h.pwrite(b"x" * 512, 0))
attempt(h, "ro-trim", lambda: h.trim(512, 0))
attempt(h, "ro-zero", lambda: h.zero(512, 0))
attempt(h, "ro-read-past-end", lambda: h.pread(512, {DISK_SIZE}))
h.shutdown()
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri({server.uri_for("disk")!r})
attempt(h, "write-past-end", lambda: h.pwrite(b"x" * 512, {DISK_SIZE}))
attempt(h, "read-too-big", lambda: h.pread({32 * MIB + 1}, 0))
attempt(h, "read-bad-flag", lambda: h.pread(10, 0, nbd.CMD_FLAG_REQ_ONE))
attempt(h, "fast-zero", lambda: h.zero({MIB}, 0, nbd.CMD_FLAG_FAST_ZERO))
attempt(h, "fua-write", lambda: h.pwrite(b"y" * 512, {MIB}, nbd.CMD_FLAG_FUA))
attempt(h, "flush", lambda: h.flush())
h.shutdown()
"""
    _, out, _ = await run(SYSTEM_PYTHON, "-c", script)
    assert out.split("\n")[:-1] == [
        "ro-write Error EPERM",
        "ro-trim Error EPERM",
        "ro-zero Error EPERM",
        "ro-read-past-end Error EINVAL",
        "write-past-end Error ENOSPC",
        "read-too-big Error EOVERFLOW",
        "read-bad-flag Error EINVAL",
        "fast-zero ok",
        "fua-write ok",
        "flush ok",
    ]
    disk = server.exports["disk"]
    assert disk.read(0, MIB) == bytes(MIB)  # the fast zero happened
    assert disk.read(MIB, 512) == b"y" * 512


class FailingBackend(MemoryBackend):
    """Reads of the second mebibyte fail as a bad sector; reads of the third crash."""

    fast_zero = False

    def read(self, offset: int, length: int) -> bytes:
        if offset < 2 * MIB and offset + length > MIB:
            raise BackendError(Errno.EIO, "bad sector")
        if offset < 3 * MIB and offset + length > 2 * MIB:
            raise RuntimeError("backend bug")
        return super().read(offset, length)


async def test_backend_failures_become_error_replies():
    require_system_module("nbd")
    backend = FailingBackend(4 * MIB, [(0, b"ok" * 256), (MIB, b"x" * 512), (2 * MIB, b"y")])
    async with await serve({"f": backend}, unix=True) as srv:
        script = f"""
import nbd
h = nbd.NBD()
h.connect_uri({srv.uri!r})
print(h.pread(4, 0), h.can_fast_zero())
for offset in ({MIB}, {2 * MIB}):
    try:
        h.pread(512, offset)
    except nbd.Error as exc:
        print(exc.errno)
print(h.pread(4, 0))
try:
    h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO)
except nbd.Error as exc:
    print(exc.errno)
h.zero(4096, 0)
print(h.pread(4, 0))
h.shutdown()
"""
        _, out, _ = await run(SYSTEM_PYTHON, "-c", script)
    assert out.split("\n")[:-1] == [
        "bytearray(b'okok') True",
        "EIO",
        "EIO",
        "bytearray(b'okok')",
        "ENOTSUP",  # honest: this backend cannot zero faster than it writes
        "bytearray(b'\\x00\\x00\\x00\\x00')",
    ]


async def _raw_go(reader, writer, name: bytes) -> None:
    """Fixed newstyle handshake without structured replies, by hand."""
    assert await reader.readexactly(18) == b"NBDMAGICIHAVEOPT\x00\x03"
    payload = struct.pack(">I", len(name)) + name + b"\x00\x00"
    writer.write(struct.pack(">IQII", 3, IHAVEOPT, Option.GO, len(payload)) + payload)
    while True:
        _, _, kind, length = struct.unpack(">QIII", await reader.readexactly(20))
        await reader.readexactly(length)
        if kind == OptionReply.ACK:
            return
        assert kind == OptionReply.INFO


async def test_pipelined_large_writes_are_answered_in_order():
    """Three 32 MiB writes and a read sent back to back, replies read only afterwards:
    the server queues, pauses reading, and answers every request in order."""
    backend = MemoryBackend(128 * MIB)
    async with await serve({"d": backend}) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        await _raw_go(reader, writer, b"d")
        size = 32 * MIB
        for i in range(3):
            header = struct.pack(">IHHQQI", REQUEST_MAGIC, 0, Command.WRITE, i, i * size, size)
            writer.write(header + bytes([i + 1]) * size)
        writer.write(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, Command.READ, 7, size - 2, 4))
        writer.write(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, Command.DISC, 8, 0, 0))
        writer.write_eof()
        replies = []
        for _ in range(4):
            magic, error, cookie = struct.unpack(">IIQ", await reader.readexactly(16))
            assert magic == 0x67446698 and error == 0
            replies.append(cookie)
        assert replies == [0, 1, 2, 7]
        assert await reader.readexactly(4) == b"\x01\x01\x02\x02"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # DISC: the server hangs up
        writer.close()
    assert backend.read(3 * size - 1, 2) == b"\x03\x00"


# ---- QEMU ----------------------------------------------------------------------------------


async def test_qemu_img_and_qemu_io(server):
    _need("qemu-img", "qemu-io")
    _, out, _ = await run("qemu-img", "info", "--output=json", server.uri_for("ro"))
    assert json.loads(out)["virtual-size"] == DISK_SIZE
    await run("qemu-io", "-r", "-f", "raw", "-c", "read -P 0 4M 4k", server.uri_for("ro"))
    uri = server.uri_for("disk")
    await run(
        "qemu-io",
        "-f",
        "raw",
        "-c",
        "write -P 0x5a 100k 12k",
        "-c",
        "read -P 0x5a 100k 12k",
        "-c",
        "write -z 104k 4k",
        "-c",
        "read -P 0 104k 4k",
        "-c",
        "discard 6M 1M",
        "-c",
        "flush",
        uri,
    )
    disk = server.exports["disk"]
    assert disk.read(100 * 1024, 4096) == b"\x5a" * 4096
    assert disk.read(104 * 1024, 4096) == bytes(4096)
    assert disk.read(108 * 1024, 4096) == b"\x5a" * 4096
    code, _, err = await run(
        "qemu-io", "-f", "raw", "-c", "write 0 4k", server.uri_for("ro"), check=False
    )
    assert code != 0 or "read-only" in err.lower() or "permission" in err.lower()


async def test_one_tebibyte_export_costs_only_what_is_written(server):
    _need("qemu-io")
    uri = server.uri_for("big")
    await run(
        "qemu-io",
        "-f",
        "raw",
        "-c",
        "write -P 0xab 1099511562240 64k",
        "-c",
        "read -P 0xab 1099511562240 64k",
        "-c",
        "read -P 0 512G 1M",
        uri,
    )
    big = server.exports["big"]
    assert big.allocated == CHUNK_SIZE
    assert big.extents(0, TIB) == [(TIB - CHUNK_SIZE, HOLE_FLAGS), (CHUNK_SIZE, 0)]


# ---- the server itself ---------------------------------------------------------------------


async def test_close_disconnects_clients_and_removes_the_socket_directory():
    srv = await serve({"d": MemoryBackend(MIB)}, unix=True)
    path = srv.unix_path
    assert path is not None and os.path.exists(path)
    directory = os.path.dirname(path)
    assert os.stat(directory).st_mode & 0o777 == 0o700
    assert srv.uri == f"nbd+unix:///d?socket={path}"
    reader, writer = await asyncio.open_unix_connection(path)
    assert await reader.readexactly(18) == b"NBDMAGICIHAVEOPT\x00\x03"
    await srv.close()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert not os.path.exists(directory)
    with pytest.raises(OSError):
        await asyncio.open_unix_connection(path)


async def test_bad_magic_from_a_client_closes_only_that_connection():
    async with await serve({"d": MemoryBackend(MIB)}) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        await reader.readexactly(18)
        writer.write(struct.pack(">I", 3) + struct.pack(">QII", IHAVEOPT ^ 1, 3, 0))
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        assert await reader.readexactly(18) == b"NBDMAGICIHAVEOPT\x00\x03"
        writer.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
async def test_refuses_to_listen_beyond_loopback(host):
    with pytest.raises(NbdError, match="only listens on loopback"):
        await serve({"d": MemoryBackend(MIB)}, host=host)


async def test_ipv6_loopback_and_localhost():
    async with await serve({"d": MemoryBackend(MIB)}, host="::1") as srv:
        assert srv.uri == f"nbd://[::1]:{srv.port}/d"
    async with await serve({"d": MemoryBackend(MIB)}, host="localhost") as srv:
        assert srv.host == "127.0.0.1"


async def test_unix_socket_path_must_be_in_a_private_directory(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    async with await serve({"d": MemoryBackend(MIB)}, unix_path=private / "s.sock") as srv:
        assert srv.unix_path == str(private / "s.sock") and srv.port is None
    assert not (private / "s.sock").exists() and private.exists()
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o755)
    with pytest.raises(NbdError, match="not a private directory"):
        await serve({"d": MemoryBackend(MIB)}, unix_path=public / "s.sock")


# ---- the demo ------------------------------------------------------------------------------


@pytest.mark.parametrize("unix", [True, False])
async def test_demo_server_exports(unix, tmp_path):
    _need("nbdinfo", "nbdcopy")
    from nbdtui.disk.demo_image import DEMO_SIZE, build_demo_image
    from nbdtui.server.demo_exports import start_demo

    async with await start_demo(unix=unix) as srv:
        assert srv.export_names == ("demo", "scratch", "readonly")
        assert srv.uri == srv.uri_for("demo")
        assert srv.uri.startswith("nbd+unix:///demo?socket=" if unix else "nbd://127.0.0.1:")
        exports = {e["export-name"]: e for e in (await nbdinfo_json("--list", srv.uri))["exports"]}
        assert exports["demo"]["export-size"] == DEMO_SIZE
        assert exports["scratch"]["export-size"] == TIB
        assert exports["readonly"]["export-size"] == DEMO_SIZE
        assert exports["readonly"]["is_read_only"] is True
        assert exports["demo"]["is_read_only"] is False
        assert all(e["description"] for e in exports.values())
        out = tmp_path / "demo.img"
        await run("nbdcopy", srv.uri_for("readonly"), str(out))
        image = build_demo_image(DEMO_SIZE)
        assert out.read_bytes() == image.read(0, image.size)
        _, got, _ = await run("nbdinfo", "--map", "--json", srv.uri_for("demo"))
        holes = sum(e["length"] for e in json.loads(got) if e["type"] & AllocationFlag.HOLE)
        assert holes > DEMO_SIZE // 2  # sparse: only the structures are data


def test_demo_runs_standalone():
    _need("nbdinfo")
    command = [sys.executable, "-m", "nbdtui.server.demo_exports", "--tcp"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        try:
            lines = dict(proc.stdout.readline().rstrip("\n").split("\t") for _ in range(3))
            assert set(lines) == {"demo", "scratch", "readonly"}
            assert lines["demo"].startswith("nbd://127.0.0.1:")
            info = subprocess.run(
                ["nbdinfo", "--json", lines["scratch"]], capture_output=True, check=True, timeout=30
            )
            assert json.loads(info.stdout)["exports"][0]["export-size"] == TIB
        finally:
            proc.terminate()
            proc.wait(10)


# ---- MemoryBackend against a model -----------------------------------------------------------

SMALL = 5 * CHUNK_SIZE + 1000

operations = st.lists(
    st.tuples(
        st.sampled_from(["write", "zero", "trim"]),
        st.integers(min_value=0, max_value=SMALL - 1),
        st.integers(min_value=0, max_value=3 * CHUNK_SIZE),
        st.sampled_from([0, 1, 0xFF]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_memory_backend_matches_a_flat_model(ops):
    backend = MemoryBackend(SMALL)
    model = bytearray(SMALL)
    for op, offset, length, byte in ops:
        length = min(length, SMALL - offset)
        if op == "write":
            data = bytes([byte]) * length
            backend.write(offset, data)
            model[offset : offset + length] = data
        elif op == "zero":
            backend.zero(offset, length)
            model[offset : offset + length] = bytes(length)
        else:  # trim drops the chunks it covers whole and leaves partial ones alone
            backend.trim(offset, length)
            for index in range(SMALL // CHUNK_SIZE + 1):
                start, stop = index * CHUNK_SIZE, min(SMALL, (index + 1) * CHUNK_SIZE)
                if offset <= start and stop <= offset + length:
                    model[start:stop] = bytes(stop - start)
        assert backend.read(0, SMALL) == model
    offset = ops[0][1] if ops else 0
    extents = backend.extents(offset, SMALL - offset)
    assert sum(length for length, _ in extents) == SMALL - offset
    pos = offset
    for length, flags in extents:
        assert length > 0 and flags in (0, HOLE_FLAGS)
        if flags == HOLE_FLAGS:
            assert model[pos : pos + length] == bytes(length)
        pos += length


def test_memory_backend_big_ranges_stay_cheap():
    big = MemoryBackend(TIB, [(0, b"a"), (TIB // 2, b"b" * 100), (TIB - 1, b"z")])
    assert big.allocated == 3 * CHUNK_SIZE
    assert big.extents(0, TIB) == [
        (CHUNK_SIZE, 0),
        (TIB // 2 - CHUNK_SIZE, HOLE_FLAGS),
        (CHUNK_SIZE, 0),
        (TIB // 2 - 2 * CHUNK_SIZE, HOLE_FLAGS),
        (CHUNK_SIZE, 0),
    ]
    big.zero(1, TIB - 2)  # partial first and last chunks, everything else dropped
    assert big.allocated == 2 * CHUNK_SIZE
    assert big.read(0, 2) == b"a\x00" and big.read(TIB - 2, 2) == b"\x00z"
    big.trim(0, TIB)
    assert big.allocated == 0 and big.extents(TIB - 10, 10) == [(10, HOLE_FLAGS)]
    with pytest.raises(ValueError, match="outside"):
        MemoryBackend(10, [(8, b"abc")])
