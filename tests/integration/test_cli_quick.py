"""`info`, `dump` and small `read`s on the blocking driver (nbdtui.cli.quick), and their
fallback to the asyncio client, against nbdkit; nbdinfo, nbdcopy and hexdump are the
oracles, and ``python -X importtime`` tells which path ran."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from nbdtui.proto.constants import IHAVEOPT, NBDMAGIC, OPTION_REPLY_MAGIC, Option, OptionReply
from tests.support.cli_helpers import Result, assert_one_line_error
from tests.support.oracles import nbdcopy_out, oracle
from tests.support.requirements import require

# `nbdtui ARGS` with the blocking driver turned off: what the usual (asyncio) path says.
USUAL = (
    "import sys; from nbdtui.client import oneshot; oneshot.usable = lambda endpoint: False; "
    "from nbdtui.cli import main; sys.exit(main())"
)


def run_timed(*args: str, usual: bool = False) -> tuple[Result, set[str]]:
    """`python -X importtime -m nbdtui ARGS`: the result and the modules imported.
    ``usual``: with the blocking driver turned off (the asyncio path runs)."""
    command = ["-c", USUAL] if usual else ["-m", "nbdtui"]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *command, *args],
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
# Over TLS ssl is needed; the rest stays forbidden.
HEAVY = frozenset({"asyncio", "ssl", "textual", "dataclasses", "inspect", "logging"})


def heavy_imports(imported: set[str], *, tls: bool = False) -> set[str]:
    """The HEAVY modules in ``imported`` that ``python -c pass`` does not import (ssl
    allowed when ``tls``)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, timeout=60
    )
    interpreter = set(re.findall(r"\|\s*(\S+)$", proc.stderr.decode(), re.M))
    return (imported - interpreter) & (HEAVY - {"ssl"} if tls else HEAVY)


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


# ---- over TLS (X.509): the same driver, wrapped in a TlsStream -----------------------

MiB = 1024 * 1024


@pytest.fixture(params=["nbdkit-tcp", "nbdkit-unix", "qemu-tcp", "qemu-unix"])
def tls_server(request, nbdkit, qemu_nbd, make_image, tmp_path, tls_certs):
    """A TLS-only server (certificates of ``tls_certs.dir``) with known, non-zero bytes."""
    kind, where = request.param.split("-")
    unix = where == "unix"
    if kind == "nbdkit":
        return nbdkit("pattern", "2M", unix=unix, tls=tls_certs)
    image = make_image(tmp_path, 2 * MiB, content=os.urandom(MiB + 777))
    return qemu_nbd(image, export="disk", unix=unix, tls=tls_certs)


def assert_like_the_usual_path(*args: str) -> Result:
    """Run ``nbdtui ARGS`` on the blocking driver and the usual way: the same exit
    status, stdout and stderr; the blocking one over TLS without asyncio."""
    quick, imported = run_timed(*args)
    usual, usual_imported = run_timed(*args, usual=True)
    assert "nbdtui.client.oneshot" in imported
    assert "asyncio" not in imported
    assert heavy_imports(imported, tls=True) == set()
    assert "asyncio" in usual_imported
    assert (quick.returncode, quick.stderr) == (usual.returncode, usual.stderr)
    assert quick.stdout == usual.stdout
    return quick


def test_info_over_tls_without_asyncio_as_the_usual_path(tls_server):
    uri = tls_server.tls_uri_for()
    result = assert_like_the_usual_path("info", "--json", uri)
    assert result.returncode == 0, result.stderr
    mine = result.json()
    theirs = json.loads(oracle("nbdinfo", "--json", uri))
    assert mine["TLS"] is theirs["TLS"] is True
    assert mine["exports"][0]["export-size"] == theirs["exports"][0]["export-size"] == 2 * MiB
    assert mine["exports"][0]["contexts"] == theirs["exports"][0]["contexts"]
    text = assert_like_the_usual_path("info", uri)
    assert "TLS (verified)" in text.text


def test_read_and_dump_over_tls_match_nbdcopy(tls_server, tmp_path):
    require("hexdump")
    uri = tls_server.tls_uri_for()
    whole = nbdcopy_out(uri)
    out = tmp_path / "out.bin"
    result, imported = run_timed("read", uri, "--offset", "12345", "--length", "4K", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "nbdtui.client.oneshot" in imported and "asyncio" not in imported
    assert out.read_bytes() == whole[12345 : 12345 + 4096]
    # 1 MiB to stdout: many TLS records, one request
    result, imported = run_timed("read", uri, "--offset", "777", "--length", "1M")
    assert result.returncode == 0, result.stderr
    assert "asyncio" not in imported
    assert result.stdout == whole[777 : 777 + MiB]
    assert_like_the_usual_path("dump", uri, "--offset", str(MiB + 700), "--length", "100")


def test_wrong_ca_over_tls_is_the_same_one_line_error(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", unix=True, tls=tls_certs.wrong_ca_dir)
    uri = f"{server.uri}&tls-certificates={tls_certs.dir}"
    result = assert_like_the_usual_path("info", "--json", uri)
    assert_one_line_error(result, 1, "TLS certificate verify failed", "unknown CA")
    assert result.stdout == b""
    result = assert_like_the_usual_path("read", uri, "--length", "4K")
    assert_one_line_error(result, 1, "TLS certificate verify failed", "unknown CA")
    # Not checked when asked so: connected, and told unverified
    result = assert_like_the_usual_path("info", f"{uri}&tls-verify-peer=false")
    assert result.returncode == 0, result.stderr
    assert "TLS (unverified)" in result.text


def test_unknown_export_over_tls_is_final_and_the_same_error(
    qemu_nbd, make_image, tmp_path, tls_certs
):
    server = qemu_nbd(make_image(tmp_path, MiB), export="disk", unix=True, tls=tls_certs)
    result = assert_like_the_usual_path("dump", server.tls_uri_for("nothing"))
    assert_one_line_error(result, 1, "nothing")


@pytest.mark.parametrize("kind", ["nbdkit", "qemu"])
def test_missing_client_certificate_is_the_same_one_line_error(
    kind, nbdkit, qemu_nbd, make_image, tmp_path, tls_certs
):
    # The server hangs up right after the TLS handshake (GnuTLS under TLS 1.3) or sends
    # an alert: the blocking driver tells it as the asyncio one does.
    if kind == "nbdkit":
        server = nbdkit("memory", "1M", tls=tls_certs, tls_verify_peer=True)
    else:
        server = qemu_nbd(make_image(tmp_path, MiB), tls=tls_certs, tls_verify_peer=True)
    ca_only = tmp_path / "ca-only"
    ca_only.mkdir()
    shutil.copy(tls_certs.ca_cert, ca_only / "ca-cert.pem")
    uri = f"{server.uri}?tls-certificates={ca_only}"
    result = assert_like_the_usual_path("info", uri)
    assert_one_line_error(result, 1, "client certificate", "client-cert.pem")


def test_plaintext_uri_against_tls_only_server_says_as_before(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", unix=True, tls=tls_certs)
    plain = server.uri.replace("nbds+unix://", "nbd+unix://")
    quick, imported = run_timed("info", plain)
    usual, _ = run_timed("info", plain, usual=True)
    assert_one_line_error(quick, 1, "server requires TLS: use nbds://")
    assert (quick.returncode, quick.stderr) == (usual.returncode, usual.stderr)
    assert "ssl" not in imported and "asyncio" not in imported


def _starttls_server(listener: socket.socket, after_ack: str) -> None:
    """Fixed newstyle, ACK to NBD_OPT_STARTTLS, then (``after_ack``) "silent": read the
    ClientHello and say nothing more, or "close": hang up on it. One connection."""
    conn, _ = listener.accept()
    with conn:
        conn.sendall(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3))
        flags = conn.recv(4)
        header = conn.recv(16)
        assert len(flags) == 4 and len(header) == 16
        magic, option, length = struct.unpack(">QII", header)
        assert (magic, option, length) == (IHAVEOPT, Option.STARTTLS, 0)
        conn.sendall(struct.pack(">QIII", OPTION_REPLY_MAGIC, option, OptionReply.ACK, 0))
        conn.recv(65536)  # the ClientHello
        if after_ack == "silent":
            conn.recv(65536)  # (until the client gives up)


@pytest.mark.parametrize("after_ack", ["silent", "close"])
def test_tls_handshake_is_bounded_and_told_as_the_usual_path(after_ack, tls_certs):
    results = []
    for usual in (False, True):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            server = threading.Thread(target=_starttls_server, args=(listener, after_ack))
            server.start()
            uri = f"nbds://127.0.0.1:{port}/?tls-certificates={tls_certs.dir}"
            started = time.monotonic()
            result, imported = run_timed("info", "--connect-timeout", "0.5", uri, usual=usual)
            elapsed = time.monotonic() - started
            server.join(10)
        assert ("asyncio" in imported) is usual
        results.append((result.returncode, result.stderr.replace(f":{port} ", ":PORT ")))
        if after_ack == "silent":
            assert_one_line_error(result, 1, "timed out connecting to", "after 0.5 s")
            assert elapsed < 3
        else:
            assert_one_line_error(result, 1, "closed the connection during the TLS handshake")
    assert results[0] == results[1]  # (the blocking driver, the usual path)


def test_psk_anon_and_ssh_still_go_the_usual_way(tmp_path):
    from nbdtui.client.oneshot import usable
    from nbdtui.uri import parse

    assert usable(parse("nbds://h/")) and usable(parse("nbds+unix:///?socket=/s"))
    assert usable(parse("nbds://h/?tls-type=x509&tls-verify-peer=false"))
    assert not usable(parse("nbds://h/?tls-type=psk&tls-psk-file=/k"))
    assert not usable(parse("nbds://h/?tls-psk-file=/k"))
    assert not usable(parse("nbds://h/?tls-type=anon"))
    assert not usable(parse("nbds+ssh://me@jump/"))
