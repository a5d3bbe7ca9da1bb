"""The server fixtures themselves, checked with libnbd's nbdinfo/nbdcopy and real ssh."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.requirements import require
from tests.support.servers import (
    Server,
    ServerFactory,
    ServerStartError,
    SshServer,
    TlsCerts,
    is_alive,
    is_listening,
    only_exports,
)

MiB = 1024 * 1024


def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = (require(args[0]), *args[1:])
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=60)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stderr.decode()}"
    return proc


def info(uri: str) -> dict:
    return json.loads(run("nbdinfo", "--json", uri).stdout)


def listing(uri: str) -> dict:
    return json.loads(run("nbdinfo", "--list", "--json", uri).stdout)


def size(uri: str) -> int:
    return int(run("nbdinfo", "--size", uri).stdout)


def content(uri: str) -> bytes:
    return run("nbdcopy", uri, "-").stdout


def pattern(length: int, start: int = 0) -> bytes:
    """What nbdkit's pattern plugin serves: each 8-byte word is its own offset, big-endian."""
    return b"".join(struct.pack(">Q", off) for off in range(start, start + length, 8))


# --------------------------------------------------------------------------- nbdkit


def test_nbdkit_memory_size_over_tcp(nbdkit):
    server = nbdkit("memory", "3M")
    assert server.kind == "nbdkit"
    assert server.host == "127.0.0.1" and server.socket is None
    assert server.uri == f"nbd://127.0.0.1:{server.port}/"
    doc = info(server.uri)
    (export,) = doc["exports"]
    assert export["export-size"] == 3 * MiB
    assert export["is_read_only"] is False
    assert doc["TLS"] is False


def test_nbdkit_pattern_bytes_over_unix_socket(nbdkit, tmp_path):
    server = nbdkit("pattern", "256K", unix=True)
    assert server.port is None and server.host is None
    assert Path(server.socket).parent.is_relative_to(tmp_path)
    assert server.uri == f"nbd+unix:///?socket={server.socket}"
    data = content(server.uri)
    assert len(data) == 256 * 1024
    assert data == pattern(256 * 1024)


def test_nbdkit_readonly_and_export_name_in_uri(nbdkit):
    server = nbdkit("memory", "1M", readonly=True, export="disk")
    assert server.uri.endswith("/disk")
    (export,) = info(server.uri)["exports"]
    assert export["export-name"] == "disk"
    assert export["is_read_only"] is True


def test_nbdkit_log_filter_shows_which_requests_were_sent(nbdkit):
    server = nbdkit(
        "memory", "64K", filters=("blocksize",), extra_options=("maxdata=4096",), log=True
    )
    assert server.log_path != server.stderr_path
    assert size(server.uri) == 65536
    log = server.log_path.read_text()
    assert " Connect export=" in log
    assert " Read id=" not in log and " Write id=" not in log
    run("nbdcopy", "-", server.uri, input=b"\x5a" * 65536)
    log = server.log_path.read_text()
    assert " Read id=" not in log
    writes = log.count(" Write id=")
    # The log filter is outermost: it sees the client's requests, not the 4K pieces that
    # the blocksize filter below it makes of them.
    assert 1 <= writes < 16, log
    assert content(server.uri) == b"\x5a" * 65536
    assert " Read id=" in server.log_path.read_text()


def test_nbdkit_exportname_filter_names_exports(nbdkit):
    server = nbdkit(
        "memory",
        "1M",
        filters=("exportname",),
        export="a",
        extra_options=only_exports("a", "b"),
    )
    names = [e["export-name"] for e in listing(server.uri)["exports"]]
    assert names == ["a", "b"]
    assert size(server.uri_for("b")) == MiB
    refused = run("nbdinfo", "--size", server.uri_for("c"), check=False)
    assert refused.returncode != 0
    assert "no export named 'c'" in refused.stderr.decode()


def test_nbdkit_eval_gives_each_export_its_own_size(nbdkit):
    # The example of the nbdkit fixture's docstring, verbatim.
    server = nbdkit(
        "eval",
        "list_exports=printf 'small\\nbig\\n'",
        "open=echo $3",
        "get_size=case $2 in small) echo 4096;; big) echo 1048576;; *) exit 1;; esac",
        "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
    )
    sizes = {e["export-name"]: e["export-size"] for e in listing(server.uri)["exports"]}
    assert sizes == {"small": 4096, "big": MiB}
    assert content(server.uri_for("small")) == bytes(4096)


def test_uri_for_percent_encodes_export_names(nbdkit):
    # The info plugin serves the export name it was asked for as the export's content.
    server = nbdkit("info", "mode=exportname")
    name = "a b/c?d#e%f&g=ü"
    uri = server.uri_for(name)
    assert uri.startswith(f"nbd://127.0.0.1:{server.port}/a%20b%2Fc%3Fd%23e%25f%26g%3D%C3%BC")
    assert content(uri).rstrip(b"\0") == name.encode()
    unix = nbdkit("info", "mode=exportname", unix=True)
    assert content(unix.uri_for(name)).rstrip(b"\0") == name.encode()


# --------------------------------------------------------------------------- qemu-nbd


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_qemu_nbd_raw_content(qemu_nbd, make_image, tmp_path, unix):
    data = os.urandom(100_000)
    image = make_image(tmp_path, MiB, content=data)
    assert image.stat().st_size == MiB
    server = qemu_nbd(image, export="disk", unix=unix)
    assert server.kind == "qemu-nbd" and server.export == "disk"
    if unix:
        assert server.uri == f"nbd+unix:///disk?socket={server.socket}"
    else:
        assert server.uri == f"nbd://127.0.0.1:{server.port}/disk"
    (export,) = info(server.uri)["exports"]
    assert export["export-name"] == "disk"
    assert export["export-size"] == MiB
    assert content(server.uri) == data + bytes(MiB - len(data))


def test_qemu_nbd_qcow2_content_and_readonly(qemu_nbd, make_image, tmp_path):
    data = b"qcow2 bytes " * 1000
    image = make_image(tmp_path, 2 * MiB, fmt="qcow2", content=data)
    fmt = json.loads(run("qemu-img", "info", "--output=json", str(image)).stdout)["format"]
    assert fmt == "qcow2"
    server = qemu_nbd(image, fmt="qcow2", readonly=True)
    (export,) = info(server.uri)["exports"]
    assert export["is_read_only"] is True
    assert export["export-size"] == 2 * MiB
    assert content(server.uri)[: len(data) + 16] == data + bytes(16)


def test_qemu_nbd_serves_only_its_export_name(qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(make_image(tmp_path, 65536), export="disk")
    assert [e["export-name"] for e in listing(server.uri)["exports"]] == ["disk"]
    assert run("nbdinfo", "--size", server.uri_for(""), check=False).returncode != 0


# --------------------------------------------------------------------------- nbd-server


def test_nbd_server_lists_all_exports_and_flags_readonly(nbd_server, tmp_path):
    one = tmp_path / "one.img"
    one.write_bytes(b"\1" * 8192)
    server = nbd_server(
        {
            "one": {"file": one},
            "two": {"size": 16384, "readonly": True},
            "three": {"size": 4096, "content": b"three"},
        }
    )
    assert server.kind == "nbd-server"
    assert server.uri == f"nbd://127.0.0.1:{server.port}/one"
    doc = listing(server.uri)
    by_name = {e["export-name"]: e for e in doc["exports"]}
    assert list(by_name) == ["one", "two", "three"]
    assert by_name["two"]["is_read_only"] is True
    assert by_name["one"]["is_read_only"] is False
    assert by_name["three"]["is_read_only"] is False
    # nbd-server opens a file only when a client selects it: every connection is served.
    assert size(server.uri) == 8192
    assert size(server.uri_for("two")) == 16384
    assert content(server.uri_for("three")) == b"three" + bytes(4096 - 5)
    assert content(server.uri) == b"\1" * 8192
    assert server.files["one"] == one.resolve()


def test_nbd_server_over_unix_socket_is_writable(nbd_server):
    server = nbd_server({"disk": {"size": 65536}}, unix=True)
    assert server.uri == f"nbd+unix:///disk?socket={server.socket}"
    run("nbdcopy", "-", server.uri, input=b"\x42" * 65536)
    assert server.files["disk"].read_bytes() == b"\x42" * 65536


# --------------------------------------------------------------------------- sshd


def test_sshd_works_with_the_real_ssh_client(sshd):
    server = sshd()
    assert isinstance(server, SshServer) and server.kind == "sshd"
    assert server.host == "127.0.0.1" and server.port
    assert server.known_hosts.read_text().startswith(f"[127.0.0.1]:{server.port}")
    assert f"Host {server.alias}" in server.config_path.read_text()
    assert server.config_path == server.home / ".ssh" / "config"
    server.run("true")
    who = server.run("id", "-un").stdout.strip()
    assert who == server.user


def test_sshd_forwards_a_local_unix_socket_to_a_remote_nbd_socket(sshd, nbdkit, tmp_path):
    ssh = sshd()
    remote = nbdkit("memory", "2M", unix=True)
    local = tmp_path / "fwd.sock"
    tunnel = subprocess.Popen(
        ssh.ssh_args(
            options=("-N", "-o", "ExitOnForwardFailure=yes", "-L", f"{local}:{remote.socket}")
        ),
        env=ssh.env(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not local.exists():
            assert tunnel.poll() is None, tunnel.stderr.read().decode()
            assert time.monotonic() < deadline, ssh.output()
            time.sleep(0.02)
        assert size(f"nbd+unix:///?socket={local}") == 2 * MiB
    finally:
        tunnel.terminate()
        tunnel.wait(10)


async def test_sshd_home_works_for_asyncssh(sshd, monkeypatch):
    import asyncssh

    server = sshd()
    monkeypatch.setenv("HOME", str(server.home))
    # No options: asyncssh reads ~/.ssh/config, the key and known_hosts from the fake HOME.
    async with asyncssh.connect(server.alias) as conn:
        result = await conn.run("echo $((6 * 7))", check=True)
    assert result.stdout == "42\n"


# --------------------------------------------------------------------------- TLS


def test_tls_certs_layout(tls_certs: TlsCerts, tmp_path):
    for d in (tls_certs.dir, tls_certs.expired_dir, tls_certs.wrong_ca_dir):
        assert d.is_relative_to(tmp_path)
        for name in (
            "ca-cert.pem",
            "server-cert.pem",
            "server-key.pem",
            "client-cert.pem",
            "client-key.pem",
        ):
            assert (d / name).is_file(), d / name
    text = run(
        "openssl", "x509", "-noout", "-text", "-in", str(tls_certs.server_cert)
    ).stdout.decode()
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    verify = run(
        "openssl",
        "verify",
        "-CAfile",
        str(tls_certs.ca_cert),
        str(tls_certs.server_cert),
        str(tls_certs.client_cert),
    )
    assert verify.stdout.decode().count(": OK") == 2
    expired = tls_certs.expired_dir / "server-cert.pem"
    bad = run("openssl", "verify", "-CAfile", str(tls_certs.ca_cert), str(expired), check=False)
    assert bad.returncode != 0 and "expired" in bad.stdout.decode() + bad.stderr.decode()
    wrong = tls_certs.wrong_ca_dir / "server-cert.pem"
    assert (
        run(
            "openssl", "verify", "-CAfile", str(tls_certs.ca_cert), str(wrong), check=False
        ).returncode
        != 0
    )


def test_tls_nbdkit_with_nbdinfo(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs)
    assert server.uri == f"nbds://127.0.0.1:{server.port}/"
    for host in ("localhost", "127.0.0.1"):
        uri = f"nbds://{host}:{server.port}/?tls-certificates={tls_certs.dir}"
        doc = info(uri)
        assert doc["TLS"] is True
        assert doc["exports"][0]["export-size"] == MiB
    plain = run("nbdinfo", "--size", f"nbd://127.0.0.1:{server.port}/", check=False)
    assert plain.returncode != 0


@pytest.mark.parametrize("variant", ["expired_dir", "wrong_ca_dir"])
def test_tls_client_rejects_bad_server_certificate(nbdkit, tls_certs, variant):
    server = nbdkit("memory", "1M", tls=getattr(tls_certs, variant))
    bad = run(
        "nbdinfo",
        "--size",
        f"nbds://localhost:{server.port}/?tls-certificates={tls_certs.dir}",
        check=False,
    )
    assert bad.returncode != 0
    assert "certificate verification" in bad.stderr.decode()


def test_tls_client_certificate_checked_by_nbdkit(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs, tls_verify_peer=True)
    assert size(server.tls_uri_for()) == MiB
    # A client whose certificate comes from another CA is turned away.
    other = f"nbds://localhost:{server.port}/?tls-certificates={tls_certs.wrong_ca_dir}"
    assert run("nbdinfo", "--size", other, check=False).returncode != 0


def test_tls_psk_with_nbdkit(nbdkit, tls_certs):
    server = nbdkit(
        "memory", "1M", extra_options=("--tls=require", f"--tls-psk={tls_certs.psk_file}")
    )
    uri = f"nbds://{tls_certs.psk_user}@127.0.0.1:{server.port}/?tls-psk-file={tls_certs.psk_file}"
    assert size(uri) == MiB


def test_tls_qemu_nbd_uses_the_same_directory(qemu_nbd, make_image, tmp_path, tls_certs):
    data = b"secret" * 100
    server = qemu_nbd(
        make_image(tmp_path, 65536, content=data), tls=tls_certs, tls_verify_peer=True
    )
    assert server.uri == f"nbds://127.0.0.1:{server.port}/disk"
    assert content(server.tls_uri_for())[: len(data)] == data
    # qemu checks its own certificate when it starts.
    with pytest.raises(ServerStartError, match="has expired"):
        qemu_nbd(make_image(tmp_path, 65536), tls=tls_certs.expired_dir)


def test_tls_nbd_server(nbd_server, tls_certs):
    server = nbd_server({"secure": {"size": 8192}}, tls=tls_certs)
    assert server.uri == f"nbds://127.0.0.1:{server.port}/secure"
    assert size(server.tls_uri_for()) == 8192
    plain = run("nbdinfo", "--size", f"nbd://127.0.0.1:{server.port}/secure", check=False)
    assert "requires TLS" in plain.stderr.decode()


# --------------------------------------------------------------------------- lifecycle


def _hold_session(server: Server) -> object:
    """Something that keeps a server-side session alive (past the NBD handshake)."""
    if isinstance(server, SshServer):
        proc = subprocess.Popen(
            server.ssh_args("sleep", "60"), env=server.env(), stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while len(server.pids()) < 2:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.02)
        return proc
    sock = socket.create_connection(("127.0.0.1", server.port))
    greeting = sock.recv(18, socket.MSG_WAITALL)
    assert greeting[:16] == b"NBDMAGICIHAVEOPT"
    sock.sendall(struct.pack(">I", 1))  # NBD_FLAG_C_FIXED_NEWSTYLE
    name = server.export.encode()
    sock.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(name)) + name)  # NBD_OPT_EXPORT_NAME
    size, _flags = struct.unpack(">QH", sock.recv(10, socket.MSG_WAITALL))
    assert size > 0
    return sock


@pytest.mark.parametrize("kind", ["nbdkit", "qemu-nbd", "nbd-server", "sshd"])
def test_stop_ends_every_process_and_frees_the_port(
    servers: ServerFactory, make_image, tmp_path, kind
):
    if kind == "nbdkit":
        server = servers.nbdkit("memory", "1M")
    elif kind == "qemu-nbd":
        server = servers.qemu_nbd(make_image(tmp_path, 65536))
    elif kind == "nbd-server":
        server = servers.nbd_server({"disk": {}})
    else:
        server = servers.sshd()
    session = _hold_session(server)
    try:
        pids = server.pids()
        assert server.running and pids
        if kind in ("nbd-server", "sshd"):
            # nbd-server: supervisor, daemon and the per-connection child; sshd: a session.
            assert len(pids) >= 2, pids
        server.stop()
        server.stop()  # idempotent
        assert not server.running
        assert not [pid for pid in pids if is_alive(pid)]
        assert not is_listening(server.pid, port=server.port)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    finally:
        if isinstance(session, subprocess.Popen):
            session.kill()
            session.wait()
        else:
            session.close()


def test_kill_is_abrupt(nbdkit):
    server = nbdkit("memory", "1M")
    server.kill()
    assert server.process.returncode == -signal.SIGKILL
    assert run("nbdinfo", "--size", server.uri, check=False).returncode != 0
    server.stop()  # still fine afterwards


def test_start_failure_reports_the_server_output(nbdkit):
    with pytest.raises(ServerStartError, match="no-such-plugin"):
        nbdkit("no-such-plugin")
