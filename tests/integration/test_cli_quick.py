"""`info`, `dump` and small `read`s on the blocking driver (nbdtui.cli.quick), and their
fallback to the asyncio client, against nbdkit; nbdinfo, nbdcopy and hexdump are the
oracles, and ``python -X importtime`` tells which path ran."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

from tests.support.cli_helpers import Result, assert_one_line_error
from tests.support.oracles import nbdcopy_out, oracle
from tests.support.requirements import require


def run_timed(*args: str) -> tuple[Result, set[str]]:
    """`python -X importtime -m nbdtui ARGS`: the result and the modules imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nbdtui", *args],
        capture_output=True,
        timeout=60,
    )
    stderr = proc.stderr.decode()
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", stderr, re.M))
    rest = "\n".join(line for line in stderr.splitlines() if not line.startswith("import time"))
    return Result(proc.returncode, proc.stdout, rest), imported


# What a one-shot command must not import (beyond what the interpreter's own start-up,
# site and .pth files, imports): asyncio (with ssl, logging, concurrent.futures), the
# UI, and dataclasses and inspect (4 ms and more of a 60 ms start-up; proto/records.py).
HEAVY = frozenset({"asyncio", "ssl", "textual", "dataclasses", "inspect", "logging"})


def heavy_imports(imported: set[str]) -> set[str]:
    """The HEAVY modules in ``imported`` that ``python -c pass`` does not import."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, timeout=60
    )
    interpreter = set(re.findall(r"\|\s*(\S+)$", proc.stderr.decode(), re.M))
    return (imported - interpreter) & HEAVY


def test_info_json_without_asyncio_matches_nbdinfo(nbdkit):
    server = nbdkit("memory", "5M", unix=True)
    result, imported = run_timed("info", "--json", server.uri)
    assert result.returncode == 0, result.stderr
    assert "nbdtui.client.oneshot" in imported
    assert heavy_imports(imported) == set()
    mine = result.json()
    theirs = json.loads(oracle("nbdinfo", "--json", server.uri))
    assert mine["protocol"] == theirs["protocol"] == "newstyle-fixed"
    assert mine["structured"] is True
    assert mine["exports"][0]["export-size"] == 5 * 1024 * 1024
    assert mine["exports"][0]["contexts"] == theirs["exports"][0]["contexts"]
    assert mine["exports"][0]["can_trim"] is theirs["exports"][0]["can_trim"] is True


def test_read_4k_without_asyncio_matches_nbdcopy(nbdkit, tmp_path):
    server = nbdkit("pattern", "1M", unix=True)
    out = tmp_path / "out.bin"
    result, imported = run_timed(
        "read", server.uri, "--offset", "12345", "--length", "4K", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "nbdtui.client.oneshot" in imported
    assert heavy_imports(imported) == set()
    assert out.read_bytes() == nbdcopy_out(server.uri)[12345 : 12345 + 4096]


def test_read_over_tcp_to_stdout_in_several_requests(nbdkit):
    # The server takes 64 KiB per request at most: 1 MiB is 16 requests, pipelined.
    server = nbdkit(
        "pattern",
        "2M",
        filters=("blocksize-policy",),
        extra_options=("blocksize-maximum=65536", "blocksize-error-policy=error"),
    )
    result, imported = run_timed("read", server.uri, "--offset", "8", "--length", "1M")
    assert result.returncode == 0, result.stderr
    assert "asyncio" not in imported
    # nbdcopy asks more than 64 KiB at once; the pattern plugin's bytes are known: each
    # 8-byte word holds its own offset, big-endian.
    expected = b"".join(o.to_bytes(8, "big") for o in range(8, 8 + 1024 * 1024, 8))
    assert result.stdout == expected


def test_dump_without_asyncio_matches_hexdump(nbdkit, tmp_path):
    require("hexdump")
    server = nbdkit("pattern", "64K", unix=True)
    result, imported = run_timed("dump", server.uri, "--offset", "1000", "--length", "100")
    assert result.returncode == 0, result.stderr
    assert heavy_imports(imported) == set()
    image = tmp_path / "whole.bin"
    image.write_bytes(nbdcopy_out(server.uri))
    expected = subprocess.run(
        ["hexdump", "-C", "-s", "1000", "-n", "100", str(image)],
        capture_output=True,
        check=True,
    ).stdout
    assert result.stdout == expected


def test_unaligned_read_goes_the_usual_way_and_reads_the_bytes(nbdkit):
    # A minimum block size of 4 KiB: the asyncio client reads the covering blocks.
    server = nbdkit(
        "pattern",
        "1M",
        unix=True,
        filters=("blocksize-policy",),
        extra_options=("blocksize-minimum=4096", "blocksize-error-policy=error"),
    )
    result, imported = run_timed("read", server.uri, "--offset", "100", "--length", "10")
    assert result.returncode == 0, result.stderr
    assert "asyncio" in imported
    assert result.stdout == nbdcopy_out(server.uri)[100:110]


def test_error_reply_falls_back_with_the_usual_one_line_error(nbdkit):
    server = nbdkit("memory", "1M", unix=True, filters=("error",), extra_options=("error-rate=1",))
    result, imported = run_timed("read", server.uri, "--length", "4K")
    assert "asyncio" in imported  # the blocking driver gave up: the usual path said why
    assert_one_line_error(result, 1, "Input/output error")


def test_read_past_the_end_is_refused_as_before(nbdkit):
    server = nbdkit("memory", "64K", unix=True)
    result, _ = run_timed("read", server.uri, "--offset", "60K", "--length", "8K")
    assert_one_line_error(result, 2, "past the end", "65536")


def test_missing_socket_is_one_line_exit_1(tmp_path):
    path = tmp_path / "nothing.sock"
    result, imported = run_timed("info", f"nbd+unix:///?socket={path}")
    assert_one_line_error(result, 1, "no such socket", str(path))
    assert "nbdtui.client.oneshot" in imported


def test_silent_server_times_out_with_the_usual_message(tmp_path):
    # A listening socket that never speaks: no NBD server behaves so on purpose.
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        result, _ = run_timed("info", "--connect-timeout", "0.5", f"nbd+unix:///?socket={path}")
    assert_one_line_error(result, 1, "timed out connecting to", "after 0.5 s")
