"""`nbdtui doctor`: each failure of the issue reproduced with a real server (nbdkit,
qemu-nbd, nbd-server, sshd), asserting the step that fails, its status and its hint;
libnbd's ``nbdinfo`` is the oracle for what a healthy export is."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from nbdtui.client.diagnosis import STEP_NAMES, diagnose, export_steps
from tests.support.cli_helpers import Result, assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_nbdtui
from tests.support.oracles import oracle
from tests.support.servers import only_exports

MiB = 1024 * 1024


def doctor(*args: str, env: dict[str, str] | None = None) -> tuple[Result, dict]:
    """`nbdtui doctor --json --quick ARGS`: the result and its steps by name."""
    proc = subprocess.run(
        [sys.executable, "-m", "nbdtui", "doctor", "--json", "--quick", *args],
        capture_output=True,
        timeout=90,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr.decode())
    assert "Traceback" not in result.stderr, result.stderr
    doc = result.json()
    assert [s["name"] for s in doc["steps"]] == list(STEP_NAMES)
    return result, {s["name"]: s for s in doc["steps"]}


def statuses(steps: dict) -> dict[str, str]:
    return {name: step["status"] for name, step in steps.items()}


def plain(uri: str) -> str:
    """The same endpoint without TLS (``nbds://`` -> ``nbd://``)."""
    return uri.replace("nbds://", "nbd://", 1).replace("nbds+unix://", "nbd+unix://", 1)


def with_params(uri: str, **params: str | Path) -> str:
    for key, value in params.items():
        uri += ("&" if "?" in uri else "?") + f"{key.replace('_', '-')}={quote(str(value))}"
    return uri


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- a healthy export ------------------------------------------------------------------


async def test_healthy_export_every_step_ok_and_agrees_with_nbdinfo(nbdkit, monkeypatch):
    monkeypatch.setattr(export_steps, "THROUGHPUT_SECONDS", 0.3)
    server = nbdkit("memory", "3M", "--filter=blocksize-policy", "blocksize-preferred=65536")
    diagnosis = await diagnose(server.uri, connect_timeout=5)
    steps = {s.name: s for s in diagnosis.steps}
    assert {n: s.status for n, s in steps.items()} == {
        "resolve": "ok",
        "connect": "ok",
        "ssh": "skipped",
        "greeting": "ok",
        "tls": "ok",
        "export": "ok",
        "info": "ok",
        "features": "ok",
        "read": "ok",
        "throughput": "ok",
    }, diagnosis.steps
    theirs = json.loads(oracle("nbdinfo", "--json", server.uri))
    (export,) = theirs["exports"]
    assert diagnosis.size == export["export-size"] == 3 * MiB
    assert diagnosis.read_only is export["is_read_only"] is False
    assert theirs["protocol"] == "newstyle-fixed"
    assert steps["greeting"].detail.startswith("fixed newstyle")
    assert "block sizes 1/65536/" in steps["features"].detail
    assert "base:allocation" in steps["features"].detail
    assert "4096 bytes at offset 0" in steps["read"].detail
    assert diagnosis.latency is not None and 0 < diagnosis.latency < 5
    assert diagnosis.throughput is not None and diagnosis.throughput > 0
    assert "MiB/s" in steps["throughput"].detail
    assert steps["tls"].detail == (
        "not used (the server does not require it); it does not offer TLS"
    )
    assert not any(s.hint for s in diagnosis.steps)


async def test_tls_offered_but_not_required(nbdkit, tls_certs, monkeypatch):
    monkeypatch.setattr(export_steps, "THROUGHPUT_SECONDS", 0.1)
    server = nbdkit(
        "memory", "1M", extra_options=("--tls=on", f"--tls-certificates={tls_certs.dir}")
    )
    diagnosis = await diagnose(server.uri, connect_timeout=5)
    assert diagnosis.ok, diagnosis.steps
    tls = diagnosis.step("tls")
    assert tls is not None and tls.status == "ok"
    assert tls.detail == (
        "not used (the server does not require it); it offers TLS: nbds:// would encrypt"
    )
    quick = await diagnose(server.uri, connect_timeout=5, quick=True)  # one connection only
    assert quick.step("tls").detail == "not used (the server does not require it)"


def test_cli_healthy_text_and_exit_status(nbdkit):
    server = nbdkit("memory", "1M", readonly=True)
    result = run_nbdtui("doctor", "--quick", server.uri)
    assert result.returncode == 0, result.stderr
    lines = result.text.splitlines()
    assert lines[0] == f"nbdtui doctor {server.uri}"
    assert any(line.split()[:2] == ["export", "ok"] for line in lines)
    assert any(line.split()[:2] == ["throughput", "skipped"] for line in lines)
    assert "read-only" in result.text and "commands: read " in result.text
    assert "commands: read write" not in result.text
    assert lines[-1] == "no step failed"
    names = [line.split()[0] for line in lines[1:-1] if not line.strip().startswith("hint:")]
    assert names == list(STEP_NAMES)


def test_cli_text_of_a_failure_in_step_order():
    port = free_port()
    result = run_nbdtui("doctor", "--quick", f"nbd://127.0.0.1:{port}/")
    assert result.returncode == 1
    lines = result.text.splitlines()
    assert lines[2].split()[:2] == ["connect", "FAIL"]
    assert lines[3].strip() == f"hint: nothing listens on port {port} of 127.0.0.1: is the " + (
        "server running, on this port?"
    )
    names = [line.split()[0] for line in lines[1:-1] if not line.strip().startswith("hint:")]
    assert names == list(STEP_NAMES)
    assert lines[-1].startswith("failed at connect: nothing listens on port")


# ---- nothing listening, no socket, a silent server, a bad command line -----------------


def test_nothing_listening():
    port = free_port()
    result, steps = doctor(f"nbd://127.0.0.1:{port}/disk")
    assert result.returncode == 1
    assert steps["resolve"]["status"] == "ok"
    assert steps["connect"]["status"] == "fail"
    assert steps["connect"]["detail"] == f"connection refused: nothing listens on {port}"
    assert f"nothing listens on port {port} of 127.0.0.1" in steps["connect"]["hint"]
    assert steps["greeting"] == {
        "name": "greeting",
        "status": "skipped",
        "detail": "not reached: connect failed",
        "hint": "",
    }


def test_missing_unix_socket(tmp_path):
    path = tmp_path / "gone.sock"
    result, steps = doctor(f"nbd+unix:///?socket={path}")
    assert result.returncode == 1
    assert steps["resolve"]["status"] == "fail"
    assert steps["resolve"]["detail"] == f"no such socket: {path}"
    assert "is the server running" in steps["resolve"]["hint"]


def test_unknown_host_name():
    result, steps = doctor("nbd://no-such-host.invalid/disk")
    assert result.returncode == 1
    assert steps["resolve"]["status"] == "fail"
    assert "cannot resolve host 'no-such-host.invalid'" in steps["resolve"]["detail"]
    assert "check the host name" in steps["resolve"]["hint"]


def test_silent_server_fails_the_greeting_on_time():
    with socket.socket() as listener:  # accepts (the kernel's backlog) and never speaks
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        start = time.monotonic()
        result, steps = doctor("--connect-timeout", "0.5", f"nbd://127.0.0.1:{port}/")
        elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert statuses(steps)["connect"] == "ok"
    assert steps["greeting"]["status"] == "fail"
    assert "sent no NBD greeting within 0.5 s" in steps["greeting"]["detail"]
    assert "is this an NBD server" in steps["greeting"]["hint"]
    assert elapsed < 10


def test_bad_command_line_is_one_line_and_exit_2():
    assert_one_line_error(run_nbdtui("doctor", "nbd://host:99999/x"), 2)
    assert_one_line_error(run_nbdtui("doctor"), 2, "URI")
    assert_one_line_error(run_nbdtui("doctor", "--connect-timeout", "0", "nbd://h/"), 2)


# ---- wrong export name ---------------------------------------------------------------------


def test_wrong_export_name_nbdkit_exportname_filter_lists_the_offers(nbdkit):
    server = nbdkit(
        "memory",
        "1M",
        filters=("exportname",),
        export="a",
        extra_options=only_exports("a", "b"),
    )
    result, steps = doctor(server.uri_for("nope"))
    assert result.returncode == 1
    assert statuses(steps)["tls"] == "ok"
    assert steps["export"]["status"] == "fail"
    assert steps["export"]["detail"].startswith("export 'nope' not found")
    assert steps["export"]["hint"] == "export 'nope' not found; the server offers: a, b"
    assert steps["info"]["detail"] == "not reached: export failed"

    result, steps = doctor(server.uri_for("b"))  # and a listed name works
    assert result.returncode == 0 and steps["export"]["status"] == "ok"


def test_wrong_export_name_qemu_nbd(qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(make_image(tmp_path, MiB), export="disk")
    result, steps = doctor(server.uri_for("dsik"))
    assert result.returncode == 1
    assert steps["export"]["status"] == "fail"
    assert steps["export"]["hint"] == "export 'dsik' not found; the server offers: disk"


def test_export_name_with_control_characters_is_escaped(qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(make_image(tmp_path, MiB), export="disk")
    _, steps = doctor(server.uri_for("x\x1b[2Jy"))
    assert steps["export"]["status"] == "fail"
    assert "\x1b" not in steps["export"]["detail"] + steps["export"]["hint"]
    assert "'x\\x1b[2Jy'" in steps["export"]["detail"]


# ---- TLS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nbdkit", "qemu-nbd"])
def test_tls_required_by_the_server(kind, nbdkit, qemu_nbd, make_image, tmp_path, tls_certs):
    if kind == "nbdkit":
        server = nbdkit("memory", "1M", tls=tls_certs)
    else:
        server = qemu_nbd(make_image(tmp_path, MiB), export="disk", tls=tls_certs)
    result, steps = doctor(plain(server.uri))
    assert result.returncode == 1
    assert statuses(steps)["greeting"] == "ok"
    assert steps["tls"]["status"] == "fail"
    assert steps["tls"]["detail"] == "the server requires TLS"
    assert steps["tls"]["hint"].startswith("the server requires TLS: use nbds://")
    assert steps["export"]["status"] == "skipped"


def test_tls_verified(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs)
    result, steps = doctor(server.tls_uri_for())
    assert result.returncode == 0, steps
    assert steps["tls"]["status"] == "ok"
    assert steps["tls"]["detail"].startswith("TLSv1.")
    assert steps["tls"]["detail"].endswith(", verified")
    assert steps["read"]["status"] == "ok"


@pytest.mark.parametrize("kind", ["nbdkit", "qemu-nbd"])
def test_tls_wrong_ca(kind, nbdkit, qemu_nbd, make_image, tmp_path, tls_certs):
    if kind == "nbdkit":
        server = nbdkit("memory", "1M", tls=tls_certs.wrong_ca_dir)
    else:
        server = qemu_nbd(make_image(tmp_path, MiB), tls=tls_certs.wrong_ca_dir)
    result, steps = doctor(with_params(server.uri, tls_certificates=tls_certs.dir))
    assert result.returncode == 1
    assert steps["tls"]["status"] == "fail"
    assert "unknown CA" in steps["tls"]["detail"]
    assert "not signed by a CA nbdtui trusts" in steps["tls"]["hint"]


def test_tls_wrong_host_name(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs)
    result, steps = doctor(with_params(server.tls_uri_for(), tls_hostname="wrong.example"))
    assert result.returncode == 1
    assert steps["tls"]["status"] == "fail"
    assert "hostname mismatch" in steps["tls"]["detail"]
    assert "'wrong.example'" in steps["tls"]["detail"]
    assert "a name the certificate carries" in steps["tls"]["hint"]


def test_tls_client_certificate_missing(nbdkit, tls_certs, tmp_path):
    server = nbdkit("memory", "1M", tls=tls_certs, tls_verify_peer=True)
    ca_only = tmp_path / "ca-only"
    ca_only.mkdir()
    (ca_only / "ca-cert.pem").write_bytes(tls_certs.ca_cert.read_bytes())
    result, steps = doctor(with_params(server.uri, tls_certificates=ca_only))
    assert result.returncode == 1
    assert steps["tls"]["status"] == "fail"
    assert "client certificate" in steps["tls"]["detail"]
    assert "client-cert.pem" in steps["tls"]["detail"]
    assert "client certificate" in steps["tls"]["hint"]
    assert steps["export"]["status"] == "skipped"


def test_tls_asked_of_a_plaintext_server(nbdkit):
    server = nbdkit("memory", "1M", extra_options=("--tls=off",))
    result, steps = doctor(server.uri.replace("nbd://", "nbds://", 1))
    assert result.returncode == 1
    assert steps["tls"]["status"] == "fail"
    assert steps["tls"]["detail"].startswith("the server does not do TLS")
    assert "nbd://" in steps["tls"]["hint"]


def test_oldstyle_server(nbdkit):
    server = nbdkit("memory", "1M", extra_options=("--oldstyle",))
    result, steps = doctor(server.uri)
    assert result.returncode == 0, steps
    assert json.loads(oracle("nbdinfo", "--json", server.uri))["protocol"] == "oldstyle"
    assert steps["greeting"]["status"] == "warn"
    assert steps["greeting"]["detail"].startswith("oldstyle protocol")
    assert steps["tls"] == {
        "name": "tls",
        "status": "skipped",
        "detail": "not available with the oldstyle protocol",
        "hint": "",
    }
    assert steps["export"]["detail"] == "the oldstyle server's only export (1.0 MiB)"
    assert steps["info"]["status"] == "skipped"
    assert steps["read"]["status"] == "ok"


def test_server_supplied_description_is_escaped(nbdkit):
    server = nbdkit(
        "memory", "1M", filters=("exportname",), extra_options=("exportdesc=fixed:ev\x1b[2Jil",)
    )
    _, steps = doctor(server.uri)
    detail = steps["export"]["detail"]
    assert "\x1b" not in detail
    assert detail == "NBD_OPT_GO: export '' (ev\\x1b[2Jil)"


# ---- servers that lack features ----------------------------------------------------------


def test_nbd_server_no_structured_replies_and_info_size_zero(nbd_server, tmp_path):
    server = nbd_server({"disk": {"size": 2 * MiB}})
    result, steps = doctor(server.uri)
    assert result.returncode == 0, steps  # warnings are not failures
    theirs = json.loads(oracle("nbdinfo", "--json", server.uri))
    assert steps["export"]["status"] == "ok"
    assert theirs["structured"] is False  # nbd-server 3.24 has none
    assert steps["features"]["status"] == "warn"
    assert "no structured replies" in steps["features"]["detail"]
    assert "no block status" in steps["features"]["hint"]
    assert steps["info"]["status"] == "warn"
    assert steps["info"]["detail"] == (
        f"NBD_OPT_INFO says 0 bytes, NBD_OPT_GO says {2 * MiB} bytes"
    )
    assert "nbd-server reports 0" in steps["info"]["hint"]
    assert f"size {2 * MiB}" in steps["features"]["detail"]
    assert steps["read"]["status"] == "ok"


def test_nbdkit_no_structured_replies(nbdkit):
    server = nbdkit("memory", "1M", extra_options=("--no-sr",))
    result, steps = doctor(server.uri)
    assert result.returncode == 0
    assert json.loads(oracle("nbdinfo", "--json", server.uri))["structured"] is False
    assert steps["features"]["status"] == "warn"
    assert "no structured replies" in steps["features"]["detail"]
    assert "nbdkit --no-sr" in steps["features"]["hint"]
    assert steps["read"]["status"] == "ok"


def test_nbdkit_mask_handshake_non_fixed_newstyle(nbdkit):
    server = nbdkit("memory", "1M", extra_options=("--mask-handshake=0",))
    result, steps = doctor(server.uri)
    assert result.returncode == 0, steps
    assert steps["greeting"]["status"] == "warn"
    assert steps["greeting"]["detail"].startswith("newstyle, not fixed")
    assert "--mask-handshake" in steps["greeting"]["hint"]
    assert steps["tls"]["status"] == "skipped"
    assert steps["export"]["status"] == "ok"
    assert steps["export"]["detail"].startswith("NBD_OPT_EXPORT_NAME")
    assert steps["info"]["status"] == "skipped"
    assert steps["read"]["status"] == "ok"
    assert f"size {MiB}" in steps["features"]["detail"]


def test_mask_handshake_wrong_export_name_is_a_closed_connection(nbdkit):
    server = nbdkit(
        "memory",
        "1M",
        filters=("exportname",),
        extra_options=(
            "--mask-handshake=0",
            "exportname=a",
            "exportname-strict=true",
        ),
    )
    result, steps = doctor(server.uri_for("nope"))
    assert result.returncode == 1
    assert steps["export"]["status"] == "fail"
    assert "closed the connection after NBD_OPT_EXPORT_NAME" in steps["export"]["detail"]
    assert "check the export name" in steps["export"]["hint"]


def test_nbdkit_mask_handshake_fixed_without_no_zeroes(nbdkit):
    server = nbdkit("memory", "1M", extra_options=("--mask-handshake=1",))
    result, steps = doctor(server.uri)
    assert result.returncode == 0, steps
    assert steps["greeting"] == {
        "name": "greeting",
        "status": "ok",
        "detail": "fixed newstyle",
        "hint": "",
    }
    assert steps["read"]["status"] == "ok"


def test_read_error_is_reported_with_the_errno(nbdkit):
    server = nbdkit(
        "memory", "1M", filters=("error",), extra_options=("error-pread=EIO", "error-pread-rate=1")
    )
    result, steps = doctor(server.uri)
    assert result.returncode == 1
    assert steps["export"]["status"] == "ok"
    assert steps["read"]["status"] == "fail"
    assert steps["read"]["detail"].startswith("read of 4096 bytes at offset 0 failed: EIO")


# ---- SSH ---------------------------------------------------------------------------------


@pytest.fixture
def disk(tmp_path, make_image, qemu_nbd):
    return qemu_nbd(make_image(tmp_path, MiB, content=os.urandom(MiB)), export="disk", unix=True)


def test_ssh_healthy(sshd, disk):
    server = sshd()
    result, steps = doctor(server.nbd_ssh_uri("disk", disk.socket), env=server.env())
    assert result.returncode == 0, steps
    assert steps["ssh"]["status"] == "ok"
    assert steps["ssh"]["detail"].startswith("logged in to ")
    assert f"remote socket {disk.socket}" in steps["ssh"]["detail"]
    assert steps["read"]["status"] == "ok"


def test_ssh_changed_host_key(sshd, disk, tmp_path):
    server = sshd()
    server.expect_other_host_key()
    result, steps = doctor(server.nbd_ssh_uri("disk", disk.socket), env=server.env())
    assert result.returncode == 1
    assert steps["ssh"]["status"] == "fail"
    assert "does not match known_hosts" in steps["ssh"]["detail"]
    assert "the SSH host key changed" in steps["ssh"]["hint"]
    assert steps["greeting"]["detail"] == "not reached: ssh failed"


def test_ssh_missing_remote_socket(sshd, tmp_path):
    server = sshd()
    missing = tmp_path / "nothing.sock"
    result, steps = doctor(server.nbd_ssh_uri("disk", str(missing)), env=server.env())
    assert result.returncode == 1
    assert steps["ssh"]["status"] == "fail"
    assert f"remote socket {missing}" in steps["ssh"]["detail"]
    assert "is the NBD server running on the SSH host" in steps["ssh"]["hint"]


# ---- servers that hang or crawl ------------------------------------------------------------


def test_server_hanging_mid_handshake(nbdkit):
    server = nbdkit("memory", "1M", filters=("delay",), extra_options=("delay-open=5",))
    start = time.monotonic()
    result, steps = doctor("--connect-timeout", "0.5", server.uri)
    assert time.monotonic() - start < 8
    assert result.returncode == 1
    assert statuses(steps)["tls"] == "ok"
    assert steps["export"]["status"] == "fail"
    assert steps["export"]["detail"] == "no answer to NBD_OPT_INFO within 0.5 s"
    assert "hangs in the handshake" in steps["export"]["hint"]


async def test_deadline_ends_a_walk_that_answers_slowly(nbdkit):
    # each open (INFO, then GO) takes 0.4 s: within the 0.5 s of each wait, not of the
    # 0.7 s that the whole walk may take
    server = nbdkit("memory", "1M", filters=("delay",), extra_options=("delay-open=400ms",))
    start = time.monotonic()
    diagnosis = await diagnose(server.uri, connect_timeout=0.5, deadline=0.7, quick=True)
    assert time.monotonic() - start < 3
    failed = diagnosis.failed
    assert failed is not None and failed.name == "export"
    assert failed.detail == "gave up: the whole walk may take 0.7 s"
    assert "too slowly" in failed.hint
    assert [s.status for s in diagnosis.steps[-4:]] == ["skipped"] * 4
    relaxed = await diagnose(server.uri, connect_timeout=0.5, quick=True)
    assert relaxed.ok, relaxed.steps


# ---- a server without NBD_OPT_GO (no real server left behaves so: a socket server) -------


async def test_go_unsupported_falls_back_to_export_name():
    import asyncio
    import struct

    from nbdtui.proto.constants import (
        IHAVEOPT,
        NBDMAGIC,
        OPTION_REPLY_MAGIC,
        SIMPLE_REPLY_MAGIC,
        Option,
        OptionReply,
    )

    asked: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3))  # fixed newstyle, no zeroes
        await reader.readexactly(4)
        while True:
            _, option, length = struct.unpack(">QII", await reader.readexactly(16))
            name = await reader.readexactly(length)
            asked.append(option)
            if option == Option.EXPORT_NAME:
                assert name == b"old"
                writer.write(struct.pack(">QH", 8192, 1 | 2))  # HAS_FLAGS | READ_ONLY
                break
            reply = OptionReply.ERR_UNSUP
            writer.write(struct.pack(">QIII", OPTION_REPLY_MAGIC, option, reply, 0))
        _, _, kind, cookie, offset, length = struct.unpack(">IHHQQI", await reader.readexactly(28))
        assert (kind, offset, length) == (0, 0, 4096)
        writer.write(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, 0, cookie) + b"\xab" * length)
        await writer.drain()
        await reader.read()  # NBD_CMD_DISC, then the close
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        diagnosis = await diagnose(f"nbd://127.0.0.1:{port}/old", quick=True, connect_timeout=5)
    finally:
        server.close()
        await server.wait_closed()
    steps = {s.name: s for s in diagnosis.steps}
    assert asked == [Option.STRUCTURED_REPLY, Option.INFO, Option.GO, Option.EXPORT_NAME]
    assert steps["export"].status == "warn"
    assert steps["export"].detail == (
        "NBD_OPT_GO unsupported: NBD_OPT_EXPORT_NAME fallback: export 'old'"
    )
    assert "closed connection" in steps["export"].hint
    assert steps["info"].detail == "the server does not support NBD_OPT_INFO"
    assert steps["features"].status == "warn"
    assert "read-only" in steps["features"].detail and "size 8192" in steps["features"].detail
    assert steps["read"].status == "ok"
    assert diagnosis.ok and diagnosis.size == 8192 and diagnosis.read_only is True
