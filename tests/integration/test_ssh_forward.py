"""Bulk commands over ``nbd+ssh`` through the system ``ssh -N -L`` (nbdtui.cli.open_export,
nbdtui.client.transport.ssh.forward), against a real OpenSSH sshd; the fallback to
asyncssh, host key refusals, and no ``ssh`` or socket left behind on any exit path."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli_helpers import Result, assert_one_line_error
from tests.support.oracles import oracle
from tests.support.requirements import require
from tests.support.servers import SshServer

MiB = 1024 * 1024

# Runs a command in-process and says whether asyncssh was imported (the system-ssh path
# imports none of it) on its last line of stderr.
_MAIN = (
    "import sys, os, logging; os.environ.get('T_DEBUG') and logging.basicConfig(level='DEBUG'); "
    "from nbdtui.cli import main; rc = main(sys.argv[1:]); "
    "print('asyncssh' in sys.modules, file=sys.stderr); sys.exit(rc)"
)


def _env(server, tmp: Path) -> dict[str, str]:
    """The sshd fixture's HOME, and a TMPDIR of the test's own (the forward's directory
    goes there, so that leftovers can be found)."""
    tmp.mkdir(exist_ok=True)
    return {**server.env(), "TMPDIR": str(tmp), "T_DEBUG": os.environ.get("T_DEBUG", "")}


def run_cli(server, tmp: Path, *args: str) -> tuple[Result, bool]:
    """``nbdtui ARGS``; returns the result (stderr without the probe line) and whether
    asyncssh was imported."""
    proc = subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=90,
        env=_env(server, tmp),
    )
    lines = proc.stderr.decode().splitlines()
    imported = lines.pop() == "True"
    return Result(proc.returncode, proc.stdout, "".join(line + "\n" for line in lines)), imported


def ssh_processes(tmp: Path) -> list[int]:
    """Processes whose command line names a path under ``tmp`` (our ``ssh -L``), or
    ``tmp`` itself (the client HOME: a ProxyJump's ``ssh -W`` reads its config)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(tmp).encode() in cmdline and b"ssh" in cmdline:
            found.append(int(entry.name))
    return found


def assert_nothing_left(tmp: Path) -> None:
    assert ssh_processes(tmp) == []
    assert list(tmp.iterdir()) == []  # the private directory and its socket are gone


def logins(server) -> int:
    return server.output().count("Accepted publickey for")


@pytest.fixture
def disk(tmp_path, make_image, qemu_nbd):
    """qemu-nbd on a Unix socket serving 8 MiB of random bytes."""
    content = os.urandom(8 * MiB)
    image = make_image(tmp_path, len(content), content=content, name="disk.img")
    return qemu_nbd(image, export="disk", unix=True), content


def test_read_goes_through_system_ssh_byte_exact(sshd, disk, tmp_path):
    server = sshd()
    nbd, content = disk
    out = tmp_path / "out.bin"
    tmp = tmp_path / "tmp"
    r, imported = run_cli(
        server, tmp, "read", server.nbd_ssh_uri("disk", nbd.socket), "-o", str(out)
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == content
    assert not imported, r.stderr  # OpenSSH carried it, not asyncssh
    assert logins(server) == 1
    assert_nothing_left(tmp)


def test_write_through_system_ssh_matches_nbdcopy(sshd, disk, tmp_path):
    server = sshd()
    nbd, content = disk
    tmp = tmp_path / "tmp"
    patch = os.urandom(3 * MiB + 5)
    source = tmp_path / "patch.bin"
    source.write_bytes(patch)
    uri = server.nbd_ssh_uri("disk", nbd.socket)
    r, imported = run_cli(server, tmp, "write", uri, str(source), "--offset", "4097")
    assert r.returncode == 0, r.stderr
    assert not imported
    expected = bytearray(content)
    expected[4097 : 4097 + len(patch)] = patch
    assert oracle("nbdcopy", nbd.uri, "-") == bytes(expected)
    assert_nothing_left(tmp)


def test_info_and_list_go_through_system_ssh(sshd, disk, tmp_path):
    server = sshd()
    nbd, content = disk
    tmp = tmp_path / "tmp"
    uri = server.nbd_ssh_uri("disk", nbd.socket)
    r, imported = run_cli(server, tmp, "info", "--json", uri)
    assert r.returncode == 0, r.stderr
    assert not imported, r.stderr  # no asyncssh: half a second of start-up
    (mine,) = json.loads(r.stdout)["exports"]
    (theirs,) = json.loads(oracle("nbdinfo", "--json", nbd.uri))["exports"]
    assert mine["export-size"] == theirs["export-size"] == len(content)
    for key in ("export-name", "is_read_only", "can_flush", "can_trim", "block_size_maximum"):
        assert mine[key] == theirs[key], key
    r, imported = run_cli(server, tmp, "list", uri)
    assert r.returncode == 0, r.stderr
    assert not imported
    assert r.stdout.decode().split()[:2] == ["disk", "8.0"]
    assert logins(server) == 2
    assert_nothing_left(tmp)


def test_info_of_a_missing_export_through_system_ssh_is_final(sshd, disk, tmp_path):
    server = sshd()
    nbd, _ = disk
    tmp = tmp_path / "tmp"
    r, imported = run_cli(server, tmp, "info", server.nbd_ssh_uri("nosuch", nbd.socket))
    assert r.returncode == 1 and "nosuch" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("nbdtui: ")
    assert not imported  # the server's answer, not a reason to try asyncssh
    assert logins(server) == 1
    assert_nothing_left(tmp)


def test_an_error_after_the_forward_is_up_leaves_nothing(sshd, disk, tmp_path):
    server = sshd()
    nbd, _ = disk
    tmp = tmp_path / "tmp"
    uri = server.nbd_ssh_uri("disk", nbd.socket)
    r, imported = run_cli(server, tmp, "read", uri, "--offset", "9M", "-o", "/dev/null")
    assert_one_line_error(r, 2, "past the end of the export")
    assert not imported
    assert logins(server) == 1
    assert_nothing_left(tmp)


def test_config_alias_dump_and_copy(sshd, disk, tmp_path):
    server = sshd()
    nbd, content = disk
    tmp = tmp_path / "tmp"
    uri = f"nbd+ssh://{server.alias}/disk?socket={nbd.socket}"
    r, imported = run_cli(server, tmp, "dump", uri, "--offset", "4096", "--length", "32")
    assert r.returncode == 0, r.stderr
    assert not imported
    first = r.stdout.decode().splitlines()[0]
    assert first.startswith("00001000  ") and content[4096:4097].hex() in first
    out = tmp_path / "copy.bin"
    r, imported = run_cli(server, tmp, "copy", uri, str(out))
    assert r.returncode == 0, r.stderr
    assert not imported
    assert out.read_bytes() == content
    assert_nothing_left(tmp)


def test_diff_of_two_nbd_ssh_exports(sshd, disk, tmp_path):
    server = sshd()
    nbd, content = disk
    tmp = tmp_path / "tmp"
    changed = bytearray(content)
    changed[5 * MiB + 7] ^= 0xFF
    image = tmp_path / "changed.img"
    image.write_bytes(changed)
    uri = f"nbd+ssh://{server.alias}/disk?socket={nbd.socket}"
    r, imported = run_cli(server, tmp, "diff", uri, str(image))
    assert r.returncode == 1, r.stderr  # cmp's status: different
    assert r.stdout.decode().split() == [hex(5 * MiB + 7), "1"]
    assert not imported
    r, imported = run_cli(server, tmp, "diff", uri, uri)  # one forward each side
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    assert logins(server) == 3
    assert_nothing_left(tmp)


def test_tls_inside_the_forward(sshd, nbdkit, tls_certs, tmp_path):
    server = sshd()
    nbd = nbdkit("pattern", "3M", unix=True, tls=tls_certs)
    uri = server.nbd_ssh_uri("", nbd.socket).replace("nbd+ssh:", "nbds+ssh:")
    tmp = tmp_path / "tmp"
    out = tmp_path / "out.bin"
    # the certificate names 127.0.0.1, the SSH host, as it does on the asyncssh path
    r, imported = run_cli(
        server, tmp, "read", f"{uri}&tls-certificates={tls_certs.dir}", "-o", str(out)
    )
    assert r.returncode == 0, r.stderr
    assert not imported
    assert out.read_bytes() == oracle(
        "nbdcopy", nbd.uri + f"&tls-certificates={tls_certs.dir}", "-"
    )
    wrong = f"{uri}&tls-certificates={tls_certs.dir}&tls-hostname=elsewhere.example"
    r, imported = run_cli(server, tmp, "read", wrong, "-o", str(out))
    assert_one_line_error(r, 1, "TLS certificate verify failed")
    assert not imported  # a TLS refusal is final: no second try through asyncssh
    assert_nothing_left(tmp)


def test_proxyjump_from_ssh_config(sshd, disk, tmp_path):
    server = sshd()
    nbd, content = disk
    config = server.config_path.read_text()
    server.config_path.write_text(
        f"Host via-jump\n    HostName 127.0.0.1\n    Port {server.port}\n"
        f"    ProxyJump {server.alias}\n" + config
    )
    tmp = tmp_path / "tmp"
    out = tmp_path / "out.bin"
    uri = f"nbd+ssh://via-jump/disk?socket={nbd.socket}"
    r, imported = run_cli(server, tmp, "read", uri, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == content
    assert not imported
    assert logins(server) == 2  # the jump host, then the target through it
    assert_nothing_left(tmp)
    assert ssh_processes(server.home) == []  # nor the jump's ssh -W


def test_tcp_nbd_server_behind_the_ssh_host(sshd, make_image, qemu_nbd, tmp_path):
    server = sshd()
    content = os.urandom(2 * MiB)
    tcp = qemu_nbd(make_image(tmp_path, len(content), content=content), export="disk")
    tmp = tmp_path / "tmp"
    out = tmp_path / "out.bin"
    r, imported = run_cli(server, tmp, "read", "--ssh", server.alias, tcp.uri, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert not imported
    assert out.read_bytes() == content
    assert_nothing_left(tmp)


def test_a_login_batch_mode_cannot_do_falls_back_to_asyncssh(sshd, disk, tmp_path):
    server = sshd()
    nbd, _ = disk
    key = server.use_encrypted_key(pem=True)  # ssh -o BatchMode=yes cannot ask for it
    tmp = tmp_path / "tmp"
    out = tmp_path / "out.bin"
    r, imported = run_cli(
        server, tmp, "read", server.nbd_ssh_uri("disk", nbd.socket), "-o", str(out)
    )
    # asyncssh's own error: it tried to ask for the passphrase (no terminal here)
    assert_one_line_error(
        r, 1, "ssh: authentication failed", f"key {key} is encrypted and stdin is not a terminal"
    )
    assert imported
    assert not out.exists()
    assert_nothing_left(tmp)


async def test_fallback_logs_in_with_asyncssh_prompts(ssh_home, disk, tmp_path, monkeypatch):
    from nbdtui.cli.open_export import open_export
    from nbdtui.client.options import ExportOptions
    from nbdtui.client.transport.ssh import prompts
    from nbdtui.uri import parse

    nbd, content = disk
    ssh_home.use_encrypted_key(pem=True)
    asked = []

    async def answer(prompt: str, echo: bool = False) -> str:
        asked.append(prompt)
        return "s3cret"

    prompts.set_password_prompt(answer)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    async with open_export(parse(ssh_home.nbd_ssh_uri("disk", nbd.socket)), ExportOptions()) as ex:
        assert ex.endpoint.transport == "ssh"  # not the forward's nbd+unix
        assert await ex.read(MiB, 4096) == content[MiB : MiB + 4096]
    assert asked and "passphrase" in asked[0]


def test_changed_host_key_is_an_error_not_a_fallback(sshd, disk, tmp_path):
    server = sshd()
    nbd, _ = disk
    server.expect_other_host_key()
    tmp = tmp_path / "tmp"
    out = tmp_path / "out.bin"
    uri = server.nbd_ssh_uri("disk", nbd.socket)
    for extra in ((), ("--ssh-accept-new",)):
        r, imported = run_cli(server, tmp, "read", *extra, uri, "-o", str(out))
        assert_one_line_error(
            r, 1, f"ssh: host key for 127.0.0.1:{server.port} does not match known_hosts"
        )
        assert not imported  # said by the system ssh path, asyncssh never tried
    assert logins(server) == 0
    assert not out.exists()
    assert server.known_hosts.read_text().count("\n") == 1  # nothing added
    assert_nothing_left(tmp)


def test_unknown_host_key_goes_to_asyncssh_which_asks(sshd, disk, tmp_path):
    server = sshd()
    nbd, content = disk
    server.known_hosts.write_text("")
    tmp = tmp_path / "tmp"
    out = tmp_path / "out.bin"
    uri = server.nbd_ssh_uri("disk", nbd.socket)
    r, imported = run_cli(server, tmp, "read", uri, "-o", str(out))
    assert_one_line_error(r, 1, "is not in known_hosts; pass --ssh-accept-new to trust it")
    assert imported
    r, imported = run_cli(server, tmp, "read", "--ssh-accept-new", uri, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "added 127.0.0.1" in r.stderr
    assert out.read_bytes() == content
    r, imported = run_cli(server, tmp, "read", uri, "-o", str(out))  # known now: OpenSSH
    assert r.returncode == 0 and not r.stderr, r.stderr
    assert not imported
    assert_nothing_left(tmp)


def test_missing_remote_socket_gives_the_usual_error(sshd, tmp_path):
    server = sshd()
    tmp = tmp_path / "tmp"
    missing = tmp_path / "nothing.sock"
    r, _ = run_cli(server, tmp, "read", server.nbd_ssh_uri("", str(missing)), "-o", "/dev/null")
    assert_one_line_error(r, 1, f"remote socket {missing}", "No such file or directory")
    assert_nothing_left(tmp)


def test_a_login_that_hangs_times_out_once(sshd, tmp_path):
    server = sshd()  # (for its client HOME)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never says a word
    port = silent.getsockname()[1]
    tmp = tmp_path / "tmp"
    start = time.monotonic()
    try:
        r, imported = run_cli(
            server, tmp, "read", "--connect-timeout", "1",
            f"nbd+ssh://127.0.0.1:{port}/?socket=/run/nbd.sock", "-o", "/dev/null",
        )  # fmt: skip
    finally:
        silent.close()
    assert_one_line_error(r, 1, f"ssh: timed out logging in to 127.0.0.1:{port} after 1 s")
    assert time.monotonic() - start < 10  # not once more through asyncssh
    assert not imported
    assert_nothing_left(tmp)


def _slow_read_through_forward(sshd, nbdkit, tmp: Path) -> tuple[SshServer, subprocess.Popen]:
    """`nbdtui read` of a 1 GiB export whose every read takes a second, through the
    system ssh's forward: returned once the forward's socket is there."""
    server = sshd()
    slow = nbdkit("pattern", "1G", "rdelay=1", filters=["delay"], unix=True)
    uri = server.nbd_ssh_uri("", slow.socket)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbdtui", "read", uri, "-o", "/dev/null"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(server, tmp),
    )
    deadline = time.monotonic() + 30
    while not list(tmp.glob("nbdtui-ssh-*/nbd.sock")):  # the forward is up
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.stderr)
        time.sleep(0.02)
    return server, proc


def test_ssh_ending_mid_transfer_is_said_as_such(sshd, nbdkit, tmp_path):
    tmp = tmp_path / "tmp"
    server, proc = _slow_read_through_forward(sshd, nbdkit, tmp)
    try:
        time.sleep(0.5)  # reading now
        (pid,) = ssh_processes(tmp)
        os.kill(pid, signal.SIGKILL)  # the forward dies, not nbdtui
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    r = Result(proc.returncode, b"", err.decode())
    assert_one_line_error(
        r, 1, f"ssh: the connection to 127.0.0.1:{server.port} ended (ssh killed by SIGKILL)"
    )
    assert_nothing_left(tmp)


def test_no_ssh_on_path_falls_back(sshd, disk, tmp_path):
    server = sshd()
    nbd, content = disk
    tmp = tmp_path / "tmp"
    out = tmp_path / "out.bin"
    env = {**_env(server, tmp), "PATH": str(tmp_path / "empty")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _MAIN,
            "read",
            server.nbd_ssh_uri("disk", nbd.socket),
            "-o",
            str(out),
        ],
        capture_output=True,
        timeout=90,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().splitlines()[-1] == "True"  # asyncssh did it
    assert out.read_bytes() == content


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_ctrl_c_or_kill_during_a_transfer_leaves_no_ssh(sshd, nbdkit, tmp_path, sig):
    require("setpriv")  # SIGKILL: ssh goes with nbdtui (setpriv --pdeathsig)
    tmp = tmp_path / "tmp"
    _, proc = _slow_read_through_forward(sshd, nbdkit, tmp)
    try:
        assert len(ssh_processes(tmp)) == 1
        (private,) = tmp.glob("nbdtui-ssh-*")
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        time.sleep(0.5)  # reading now (each read takes a second)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert err.decode().strip() == "nbdtui: interrupted"
        assert_nothing_left(tmp)
    else:
        deadline = time.monotonic() + 5
        while ssh_processes(tmp) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ssh_processes(tmp) == []  # (its directory stays: nobody was left to remove it)
