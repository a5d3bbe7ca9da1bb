"""`nbdtui copy --rescue --map FILE` against failing servers: nbdkit's ddrescue filter
(it fails exactly the ranges its own map does not mark finished), its error filter at a
random rate, and a server killed in the middle. ddrescuelog checks the maps."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time

from tests.support.cli_helpers import assert_one_line_error, nbdtui
from tests.support.oracles import nbdcopy_out, oracle
from tests.support.requirements import require

MiB = 1024 * 1024
SIZE = 8 * MiB
# The bad ranges of the source: one sector, eight sectors across a 256 KiB boundary,
# a long run, and the last sector of the disk.
BAD = [(MiB + 512, MiB + 1024), (3 * MiB - 2048, 3 * MiB + 2048), (5 * MiB, 5 * MiB + 100 * 1024)]
BAD.append((SIZE - 512, SIZE))


def _filter_map(path, bad, size=SIZE):
    """A ddrescue map (for nbdkit's ddrescue filter): ``bad`` is '-', the rest '+'."""
    lines = ["# for nbdkit-ddrescue-filter", "0x0 +"]
    pos = 0
    for a, b in bad:
        if a > pos:
            lines.append(f"{pos:#x} {a - pos:#x} +")
        lines.append(f"{a:#x} {b - a:#x} -")
        pos = b
    if pos < size:
        lines.append(f"{pos:#x} {size - pos:#x} +")
    path.write_text("\n".join(lines) + "\n")


def _source(tmp_path, seed=1):
    image = tmp_path / "src.img"
    image.write_bytes(random.Random(seed).randbytes(SIZE))
    return image


def _damaged(nbdkit, image, tmp_path, *, log=False):
    """nbdkit serving ``image`` with nbdkit's ddrescue filter failing the reads of BAD."""
    filter_map = tmp_path / "filter.map"
    _filter_map(filter_map, BAD)
    return nbdkit(
        "file",
        str(image),
        filters=("ddrescue",),
        extra_options=(f"ddrescue-mapfile={filter_map}",),
        log=log,
    )


def _failing(nbdkit, image, rate):
    """nbdkit serving ``image``, a read failing with EIO at ``rate`` ("20%"); logged."""
    return nbdkit(
        "file",
        str(image),
        filters=("error",),
        extra_options=("error-pread=EIO", f"error-pread-rate={rate}"),
        log=True,
    )


def _bad_blocks(map_path):
    """ddrescuelog's own reading of a map: the bad 512-byte sectors."""
    out = subprocess.run(
        [require("ddrescuelog"), "-b", "512", "--list-blocks=-", str(map_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(word) for word in out.split()]


def _sectors(ranges):
    return [s for a, b in ranges for s in range(a // 512, b // 512)]


def _map_ranges(map_path, status):
    out = []
    for line in map_path.read_text().splitlines():
        words = line.split()
        if len(words) == 3 and not line.startswith("#") and words[2] == status:
            out.append((int(words[0], 16), int(words[0], 16) + int(words[1], 16)))
    return out


def _reads(server, after=0):
    pattern = re.compile(r" Read id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)")
    lines = server.log_path.read_text().splitlines()[after:]
    return [(int(m[1], 16), int(m[2], 16)) for m in map(pattern.search, lines) if m]


def _inside(offset, count, ranges):
    return any(a <= offset and offset + count <= b for a, b in ranges)


def _summary(stderr):
    m = re.search(r"rescued (\d+) bytes, (\d+) bytes bad in (\d+) ranges?", stderr)
    assert m, stderr
    return int(m[1]), int(m[2]), int(m[3])


def test_ddrescue_filter_bad_ranges_are_exactly_the_maps_bad_ranges(nbdkit, tmp_path):
    image = _source(tmp_path)
    src = _damaged(nbdkit, image, tmp_path, log=True)
    dst = nbdkit("memory", str(SIZE))
    oracle("nbdcopy", "-", dst.uri, input=b"\xee" * SIZE)  # DST holds other bytes
    out_map = tmp_path / "out.map"
    r = nbdtui("copy", "--rescue", "--map", str(out_map), src.uri, dst.uri)
    assert r.returncode == 1, r.stderr
    bad_bytes = sum(b - a for a, b in BAD)
    assert _summary(r.stderr) == (SIZE - bad_bytes, bad_bytes, len(BAD))
    assert _map_ranges(out_map, "-") == BAD
    assert _bad_blocks(out_map) == _sectors(BAD)  # ddrescuelog reads the map the same
    expected = bytearray(image.read_bytes())
    for a, b in BAD:
        expected[a:b] = bytes(b - a)  # unreadable: left zero in DST
    assert nbdcopy_out(dst.uri) == bytes(expected)
    assert src.running and "abort" not in src.output().lower()

    # Again: only the bad ranges are read (each still fails), the map is the same.
    before = len(src.log_path.read_text().splitlines())
    r = nbdtui("copy", "--rescue", "--map", str(out_map), src.uri, dst.uri)
    assert r.returncode == 1, r.stderr
    reads = _reads(src, before)
    assert reads and all(_inside(o, n, BAD) for o, n in reads), reads
    assert _map_ranges(out_map, "-") == BAD
    assert nbdcopy_out(dst.uri) == bytes(expected)


def test_rescue_into_a_file_then_the_disk_heals(nbdkit, tmp_path):
    """The second run (the ranges now readable) finishes the file and exits 0."""
    image = _source(tmp_path, seed=2)
    src = _damaged(nbdkit, image, tmp_path)
    out, out_map = tmp_path / "out.img", tmp_path / "out.map"
    r = nbdtui("copy", "--rescue", "--map", str(out_map), src.uri, str(out))
    assert r.returncode == 1, r.stderr
    assert _map_ranges(out_map, "-") == BAD
    healed = nbdkit("file", str(image))
    uri = healed.uri + ("&" if "?" in healed.uri else "?") + "x-token=hunter2"
    r = nbdtui("copy", "--rescue", "--map", str(out_map), uri, str(out))
    assert r.returncode == 0, r.stderr
    text = out_map.read_text()
    assert "# Command line: nbdtui copy --rescue --map" in text
    assert "hunter2" not in text  # the map keeps no secret of the URI
    assert _summary(r.stderr) == (SIZE, 0, 0)
    assert out.read_bytes() == image.read_bytes()
    assert _bad_blocks(out_map) == []
    assert _map_ranges(out_map, "+") == [(0, SIZE)]


def test_random_errors_with_retries_rescue_everything(nbdkit, tmp_path):
    image = _source(tmp_path, seed=3)
    src = _failing(nbdkit, image, "20%")
    out, out_map = tmp_path / "out.img", tmp_path / "out.map"
    r = nbdtui("copy", "--rescue", "--map", str(out_map), src.uri, str(out), "--retries", "30")
    assert r.returncode == 0, r.stderr
    assert _summary(r.stderr) == (SIZE, 0, 0)
    assert out.read_bytes() == image.read_bytes()
    assert " Read id=" in src.log_path.read_text()
    assert src.running and "abort" not in src.output().lower()


def test_random_errors_without_retries_then_resume_reads_only_what_is_left(nbdkit, tmp_path):
    image = _source(tmp_path, seed=4)
    src = _failing(nbdkit, image, "60%")
    out, out_map = tmp_path / "out.img", tmp_path / "out.map"
    r = nbdtui("copy", "--rescue", "--map", str(out_map), src.uri, str(out), "--block-size", "4K")
    assert r.returncode == 1, r.stderr
    rescued, bad, ranges = _summary(r.stderr)
    assert bad and ranges and rescued + bad == SIZE
    left = _map_ranges(out_map, "-")
    assert sum(b - a for a, b in left) == bad
    assert all(b - a >= 4096 and a % 4096 == 0 for a, b in left)
    data = image.read_bytes()
    for a, b in left:
        assert out.read_bytes()[a:b] == bytes(b - a)
    before = len(src.log_path.read_text().splitlines())
    r = nbdtui("copy", "--rescue", "--map", str(out_map), src.uri, str(out), "--retries", "40")
    assert r.returncode == 0, r.stderr
    reads = _reads(src, before)
    assert reads and all(_inside(o, n, left) for o, n in reads)  # finished: never read again
    assert out.read_bytes() == data


def test_server_killed_mid_rescue_then_resumed_from_the_map(nbdkit, tmp_path):
    image = tmp_path / "src.img"
    image.write_bytes(random.Random(5).randbytes(2 * SIZE))  # 64 reads, 16 at a time
    slow = nbdkit("file", str(image), filters=("delay",), extra_options=("rdelay=1",))
    out, out_map = tmp_path / "out.img", tmp_path / "out.map"
    argv = ["copy", "--rescue", "--map", str(out_map), slow.uri, str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "nbdtui", *argv], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out_map.exists() and _map_ranges(out_map, "+")):
        time.sleep(0.05)
    slow.kill()  # with requests in flight
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 1, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbdtui: "), text
    assert "run the same command again to resume" in lines[0] and "Traceback" not in text
    done = _map_ranges(out_map, "+")
    assert done and sum(b - a for a, b in done) < 2 * SIZE
    for a, b in done:  # what the map says is finished is in the file
        assert out.read_bytes()[a:b] == image.read_bytes()[a:b]

    again = nbdkit("file", str(image), log=True)
    r = nbdtui("copy", "--rescue", "--map", str(out_map), again.uri, str(out))
    assert r.returncode == 0, r.stderr
    reads = _reads(again)
    assert reads and not any(a < o + n and o < b for o, n in reads for a, b in done), (
        "a finished range was read again"
    )
    assert out.read_bytes() == image.read_bytes()


def test_rescue_user_errors(nbdkit, tmp_path):
    src = nbdkit("memory", "1M")
    out = tmp_path / "out.img"
    r = nbdtui("copy", "--rescue", src.uri, str(out))
    assert_one_line_error(r, 2, "--map")
    torn = tmp_path / "torn.map"
    torn.write_text("0x0 ?\n0x0 0x1000 +\n0x10")
    r = nbdtui("copy", "--rescue", "--map", str(torn), src.uri, str(out))
    assert_one_line_error(r, 2, "torn.map line 3")
    foreign = tmp_path / "foreign.map"
    foreign.write_text("0x0 +\n0x0 0x10000000 +\n")
    r = nbdtui("copy", "--rescue", "--map", str(foreign), src.uri, str(out))
    assert_one_line_error(r, 2, "larger device")
    r = nbdtui("copy", "--rescue", "--map", str(tmp_path / "m"), str(out), src.uri)
    assert_one_line_error(r, 2, "SRC to be an NBD endpoint")
    done = tmp_path / "done.map"
    done.write_text("0x0 +\n0x0 0x1000 +\n")
    r = nbdtui("copy", "--rescue", "--map", str(done), src.uri, str(tmp_path / "new.img"))
    assert_one_line_error(r, 2, "4096 bytes were rescued already", "new.img")
    r = nbdtui("copy", "--rescue", "--map", str(tmp_path / "no" / "m"), src.uri, str(out))
    assert_one_line_error(r, 1, "No such file")


def test_dst_refusing_writes_ends_the_rescue_and_the_map_claims_nothing(nbdkit, tmp_path):
    """Only what DST acknowledged is ever marked finished."""
    image = _source(tmp_path, seed=6)
    src = nbdkit("file", str(image))
    dst = nbdkit(
        "memory",
        str(SIZE),
        filters=("error",),
        extra_options=("error-pwrite=ENOSPC", "error-pwrite-rate=100%"),
    )
    out_map = tmp_path / "out.map"
    r = nbdtui("copy", "--rescue", "--map", str(out_map), src.uri, dst.uri)
    assert_one_line_error(r, 1, "ENOSPC", "run the same command again to resume")
    assert _map_ranges(out_map, "+") == []
    r = nbdtui("copy", src.uri, dst.uri)
    assert_one_line_error(r, 1, "ENOSPC")


def test_rescue_of_a_range_leaves_the_rest_of_the_map_untried(nbdkit, tmp_path):
    image = _source(tmp_path, seed=7)
    src = _damaged(nbdkit, image, tmp_path)
    out, out_map = tmp_path / "out.img", tmp_path / "out.map"
    lo, hi = 2 * MiB, 4 * MiB
    argv = ["--offset", str(lo), "--length", str(hi - lo)]
    r = nbdtui("copy", "--rescue", "--map", str(out_map), *argv, src.uri, str(out))
    assert r.returncode == 1, r.stderr
    assert _summary(r.stderr) == (hi - lo - 4096, 4096, 1)  # the bad range at 3 MiB
    assert _map_ranges(out_map, "?") == [(0, lo), (hi, SIZE)]
    assert _map_ranges(out_map, "-") == [(3 * MiB - 2048, 3 * MiB + 2048)]
    data = out.read_bytes()
    assert len(data) == hi and data[:lo] == bytes(lo)  # (a file grows to the range)
    assert data[lo : 3 * MiB - 2048] == image.read_bytes()[lo : 3 * MiB - 2048]
