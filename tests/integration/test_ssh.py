"""NBD over SSH against a real OpenSSH sshd, with qemu-nbd and nbdkit on Unix sockets
behind it; ``nbdcopy``/``nbdinfo`` run directly on the socket are the oracles."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import select
import ssl
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from nbdtui.client.transport.ssh.endpoint import ssh_route, tunnel_endpoint
from nbdtui.errors import ConnectionLostError, NbdError, UriError
from nbdtui.uri import Endpoint, parse
from tests.support.cli_helpers import Result, assert_one_line_error
from tests.support.oracles import oracle
from tests.support.requirements import require
from tests.support.servers import make_ssh_key

MiB = 1024 * 1024


# ---------------------------------------------------------------- helpers


def cli(sshd, *args: str, stdin=subprocess.DEVNULL, input: bytes | None = None) -> Result:
    """`python -m nbdtui ARGS` with HOME at the sshd fixture's client home."""
    proc = subprocess.run(
        [sys.executable, "-m", "nbdtui", *args],
        input=input,
        stdin=None if input is not None else stdin,
        capture_output=True,
        timeout=90,
        env=sshd.env(),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr.decode())


def logins(sshd) -> int:
    return sshd.output().count("Accepted publickey for")


def unix_uri(server, export: str | None = None) -> str:
    return server.uri_for(server.export if export is None else export)


@pytest.fixture(autouse=True)
def _reset_prompts(reset_ssh_prompts):
    """Every test here leaves the prompt hooks as it found them."""


@pytest.fixture
def disk(tmp_path, make_image, qemu_nbd):
    """qemu-nbd (multi-conn, --shared=8) on a Unix socket serving 4 MiB of random bytes."""
    content = os.urandom(4 * MiB)
    image = make_image(tmp_path, len(content), content=content, name="disk.img")
    return qemu_nbd(image, export="disk", unix=True)


# ---------------------------------------------------------------- lazy import


def test_asyncssh_is_not_imported_by_the_cli_or_the_api():
    code = (
        "import nbdtui, nbdtui.cli, nbdtui.client.api, nbdtui.client.transport.ssh.endpoint, "
        "nbdtui.client.transport.ssh.prompts; import sys; "
        "assert 'asyncssh' not in sys.modules, 'imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_info_on_a_plain_endpoint_does_not_import_asyncssh(nbdkit):
    server = nbdkit("memory", "1M")
    code = (
        "import sys; from nbdtui.cli import main; rc = main(['info', sys.argv[1]]); "
        "assert 'asyncssh' not in sys.modules, 'imported'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, server.uri], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "1048576" in proc.stdout


# ---------------------------------------------------------------- endpoints (no network)


def test_tunnel_endpoint_turns_unix_and_tcp_endpoints_into_ssh_ones():
    unix = tunnel_endpoint(parse("nbd+unix:///disk?socket=/run/x.sock"), "alice@jump:2222")
    assert unix.uri == "nbd+ssh://alice@jump:2222/disk?socket=/run/x.sock"
    tcp = tunnel_endpoint(parse("nbd://10.0.0.5:10810/d"), "jump")
    assert tcp.uri == "nbd+ssh://jump/d?x-nbd-host=10.0.0.5&x-nbd-port=10810"
    route = ssh_route(tcp)
    assert (route.nbd_host, route.nbd_port, route.socket) == ("10.0.0.5", 10810, None)
    assert ssh_route(tunnel_endpoint(parse("nbd://h/"), "j")).nbd_port == 10809
    # TLS runs inside the tunnel and still checks the NBD server's own name.
    tls = tunnel_endpoint(parse("nbds://nbd.example/d"), "jump")
    assert tls.tls and tls.tls_param("tls-hostname") == "nbd.example"
    assert parse(tls.uri) == tls


@pytest.mark.parametrize(
    ("uri", "via", "needle"),
    [
        ("nbd+ssh://h/?socket=/x", "j", "cannot tunnel an nbd+ssh"),
        ("nbd+unix:///?socket=%00abstract", "j", "abstract"),
        ("nbd://alice@h/", "j", "SSH user"),
        ("nbd://h/", "-oProxyCommand=x", "may not begin with '-'"),
        ("nbd://h/", "a$(touch x)@j", "shell"),
    ],
)
def test_tunnel_endpoint_refusals(uri, via, needle):
    with pytest.raises(UriError) as info:
        tunnel_endpoint(parse(uri), via)
    assert needle in str(info.value)


def test_ssh_route_checks_its_x_parameters():
    with pytest.raises(UriError, match="x-nbd-port"):
        ssh_route(parse("nbd+ssh://h/?x-nbd-port=0"))
    with pytest.raises(UriError, match="x-nbd-host"):
        ssh_route(parse("nbd+ssh://h/?x-nbd-host=-oFoo"))
    with pytest.raises(UriError, match="x-accept-new-host-key"):
        ssh_route(parse("nbd+ssh://h/?x-accept-new-host-key=maybe"))
    assert ssh_route(parse("nbd+ssh://h/?x-accept-new-host-key=yes")).accept_new_host_key


# ---------------------------------------------------------------- data through the tunnel


def test_cli_info_read_write_through_the_tunnel_match_nbdcopy(sshd, disk, tmp_path):
    server = sshd()
    uri = server.nbd_ssh_uri("disk", disk.socket)  # user@127.0.0.1:PORT
    direct = unix_uri(disk)

    info = cli(server, "info", "--json", uri)
    assert info.returncode == 0, info.stderr
    ours = info.json()["exports"][0]
    theirs = json.loads(oracle("nbdinfo", "--json", direct))["exports"][0]
    for key in ("export-size", "is_read_only", "can_multi_conn", "can_trim", "can_zero"):
        assert ours[key] == theirs[key], key
    assert ours["uri"] == uri

    got = tmp_path / "through-ssh.bin"
    want = tmp_path / "direct.bin"
    read = cli(server, "read", uri, "-o", str(got))
    assert read.returncode == 0, read.stderr
    oracle("nbdcopy", direct, str(want))
    assert got.read_bytes() == want.read_bytes() == disk.files["disk"].read_bytes()

    patch = os.urandom(MiB + 123)
    source = tmp_path / "patch.bin"
    source.write_bytes(patch)
    write = cli(server, "write", uri, str(source), "--offset", "65536")
    assert write.returncode == 0, write.stderr
    oracle("nbdcopy", direct, str(want))
    expected = bytearray(got.read_bytes())
    expected[65536 : 65536 + len(patch)] = patch
    assert want.read_bytes() == bytes(expected)


def test_alias_from_ssh_config_and_ssh_option(sshd, disk, tmp_path):
    server = sshd()
    want = tmp_path / "direct.bin"
    oracle("nbdcopy", unix_uri(disk), str(want))

    by_alias = tmp_path / "alias.bin"
    r = cli(
        server, "read", server.nbd_ssh_uri("disk", disk.socket, use_alias=True), "-o", str(by_alias)
    )
    assert r.returncode == 0, r.stderr
    assert by_alias.read_bytes() == want.read_bytes()

    # --ssh ALIAS nbd+unix:///disk?socket=PATH: the socket path is on the SSH host.
    via_option = tmp_path / "option.bin"
    r = cli(server, "read", "--ssh", server.alias, unix_uri(disk), "-o", str(via_option))
    assert r.returncode == 0, r.stderr
    assert via_option.read_bytes() == want.read_bytes()

    r = cli(server, "info", "--ssh", server.alias, unix_uri(disk))
    assert r.returncode == 0, r.stderr
    assert f"nbd+ssh://{server.alias}/disk?socket={disk.socket}" in r.text


def test_ssh_option_tunnels_a_tcp_endpoint(sshd, make_image, qemu_nbd, tmp_path):
    server = sshd()
    image = make_image(tmp_path, MiB, content=os.urandom(MiB))
    tcp = qemu_nbd(image, export="disk")
    out = tmp_path / "out.bin"
    r = cli(server, "read", "--ssh", server.alias, tcp.uri, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == image.read_bytes()
    # The same endpoint written out as a URI.
    uri = f"nbd+ssh://{server.alias}/disk?x-nbd-host=127.0.0.1&x-nbd-port={tcp.port}"
    r = cli(server, "info", "--json", uri)
    assert r.returncode == 0, r.stderr
    assert r.json()["exports"][0]["export-size"] == MiB


async def test_library_nbdkit_unix_read_write(ssh_home, nbdkit):
    import nbdtui.client as client

    mem = nbdkit("memory", "8M", unix=True)
    data = os.urandom(3 * MiB)
    uri = ssh_home.nbd_ssh_uri("", mem.socket, use_alias=True)
    async with client.open(uri) as export:
        assert export.size == 8 * MiB
        await export.write(MiB, data, fua=True)
        assert await export.read(MiB, len(data)) == data
    assert (await client.probe(uri)).info.size == 8 * MiB
    listed = await client.list_exports(unix_uri(mem), ssh=ssh_home.alias)
    assert listed.exports
    direct = oracle("nbdcopy", unix_uri(mem), "-")
    assert direct[MiB : MiB + len(data)] == data


async def test_pool_connections_share_one_ssh_connection(ssh_home, disk):
    import nbdtui.client as client
    from nbdtui.client.transport.ssh.tunnel import ssh_connections

    image = disk.files["disk"].read_bytes()
    async with client.open(
        ssh_home.nbd_ssh_uri("disk", disk.socket), connections=4, window=2
    ) as export:
        assert export.info.can_multi_conn
        for _ in range(3):  # keep every window full so that the pool grows
            pieces = await asyncio.gather(
                *(export.read(off, 64 * 1024) for off in range(0, 4 * MiB, 64 * 1024))
            )
            assert b"".join(pieces) == image
        ready = [s for s in export.connection_stats() if s.state == "ready"]
        assert len(ready) >= 2, export.connection_stats()
        assert ssh_connections().count() == 1
        assert logins(ssh_home) == 1, ssh_home.output()
    assert ssh_connections().count() == 0
    deadline = time.monotonic() + 5
    while "Disconnected from user" not in ssh_home.output() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "Disconnected from user" in ssh_home.output()


async def test_two_sockets_on_one_ssh_host_each_reach_their_own_server(ssh_home, nbdkit):
    """One SSH connection, two channels: each goes to its own endpoint's socket (not to
    the socket of the endpoint that opened the SSH connection)."""
    import nbdtui.client as client
    from nbdtui.client.transport.ssh.tunnel import ssh_connections

    small = nbdkit("pattern", "1M", unix=True)
    big = nbdkit("memory", "3M", unix=True)
    async with (
        client.open(ssh_home.nbd_ssh_uri("", small.socket)) as a,
        client.open(ssh_home.nbd_ssh_uri("", big.socket)) as b,
    ):
        assert ssh_connections().count() == 1
        assert (a.size, b.size) == (MiB, 3 * MiB)
        assert await a.read(8, 8) == (8).to_bytes(8, "big")  # the pattern plugin's bytes
        assert await b.read(8, 8) == bytes(8)


def _listening_inodes() -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                inodes.add(int(fields[9]))
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[3], 16) & 0x10000:
            inodes.add(int(fields[6]))
    return inodes


def _my_socket_inodes() -> set[int]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


async def test_no_local_listening_socket_while_tunnelling(ssh_home, disk):
    import nbdtui.client as client

    before = _my_socket_inodes() & _listening_inodes()
    async with client.open(ssh_home.nbd_ssh_uri("disk", disk.socket)) as export:
        await export.read(0, 4096)
        assert (_my_socket_inodes() & _listening_inodes()) == before


async def test_ssh_connection_lost_fails_requests(ssh_home, disk):
    import nbdtui.client as client

    async with client.open(ssh_home.nbd_ssh_uri("disk", disk.socket)) as export:
        await export.read(0, 4096)
        ssh_home.stop()  # sshd and its session processes die
        with pytest.raises(NbdError) as info:
            async with asyncio.timeout(10):
                for _ in range(50):
                    await export.read(0, 4096)
                    await asyncio.sleep(0.05)
        assert isinstance(info.value, ConnectionLostError), info.value


async def test_tls_inside_the_tunnel(ssh_home, nbdkit, tls_certs):
    """nbds+ssh: STARTTLS over the channel with asyncio's loop.start_tls."""
    import nbdtui.client as client

    server = nbdkit("pattern", "size=4M", unix=True, tls=tls_certs)
    context = ssl.create_default_context(cafile=str(tls_certs.ca_cert))

    async def upgrade(endpoint, transport, protocol):
        loop = asyncio.get_running_loop()
        return await loop.start_tls(transport, protocol, context, server_hostname="localhost")

    uri = ssh_home.nbd_ssh_uri("", server.socket).replace("nbd+ssh:", "nbds+ssh:")
    direct = oracle("nbdcopy", server.tls_uri_for(""), "-")
    async with client.open(uri, start_tls=upgrade, connections=2) as export:
        assert export.negotiated.tls
        assert await export.read(0, 4 * MiB) == direct


def test_cli_tls_inside_the_tunnel(sshd, nbdkit, tls_certs):
    server = sshd()
    nbd = nbdkit("memory", "2M", unix=True, tls=tls_certs)
    uri = server.nbd_ssh_uri("", nbd.socket).replace("nbd+ssh:", "nbds+ssh:")
    r = cli(server, "info", "--json", f"{uri}&tls-certificates={tls_certs.dir}")
    assert r.returncode == 0, r.stderr
    assert r.json()["TLS"] is True


def test_cli_tls_failure_inside_the_tunnel_is_one_line(sshd, nbdkit, tls_certs):
    server = sshd()
    nbd = nbdkit("memory", "2M", unix=True, tls=tls_certs.wrong_ca_dir)
    uri = server.nbd_ssh_uri("", nbd.socket).replace("nbd+ssh:", "nbds+ssh:")
    r = cli(server, "info", f"{uri}&tls-certificates={tls_certs.dir}&tls-hostname=localhost")
    assert_one_line_error(r, 1, "TLS certificate verify failed", "unknown CA")


# ---------------------------------------------------------------- ssh_config features


def test_proxyjump_from_ssh_config(sshd, disk):
    server = sshd()
    config = server.config_path.read_text()
    server.config_path.write_text(
        f"Host via-jump\n    HostName 127.0.0.1\n    Port {server.port}\n"
        f"    ProxyJump {server.alias}\n" + config
    )
    r = cli(server, "info", "--json", f"nbd+ssh://via-jump/disk?socket={disk.socket}")
    assert r.returncode == 0, r.stderr
    assert r.json()["exports"][0]["export-size"] == 4 * MiB
    assert logins(server) == 2  # the jump host, then the target through it


def test_default_key_and_agent(sshd, disk, tmp_path):
    """No IdentityFile: the default ~/.ssh/id_ed25519, then the key only in ssh-agent."""
    server = sshd()
    config = "\n".join(
        line for line in server.config_path.read_text().splitlines() if "Identit" not in line
    )
    server.config_path.write_text(config + "\n")
    uri = server.nbd_ssh_uri("disk", disk.socket, use_alias=True)
    r = cli(server, "info", uri)
    assert r.returncode == 0, r.stderr

    agent_sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        [require("ssh-agent"), "-D", "-a", str(agent_sock)], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not agent_sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        env = {**server.env(), "SSH_AUTH_SOCK": str(agent_sock)}
        subprocess.run(
            [require("ssh-add"), str(server.client_key)], env=env, check=True, capture_output=True
        )
        hidden = server.client_key.with_name("moved-away")
        server.client_key.rename(hidden)
        proc = subprocess.run(
            [sys.executable, "-m", "nbdtui", "info", uri],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stderr
    finally:
        agent.terminate()
        agent.wait(5)


# ---------------------------------------------------------------- errors


def test_wrong_host_key_is_refused_even_with_accept_new(sshd, disk, tmp_path):
    server = sshd()
    server.expect_other_host_key()
    uri = server.nbd_ssh_uri("disk", disk.socket)
    for extra in ((), ("--ssh-accept-new",)):
        r = cli(server, "info", *extra, uri)
        assert_one_line_error(
            r, 1, f"ssh: host key for 127.0.0.1:{server.port} does not match known_hosts"
        )
    assert server.known_hosts.read_text().count("\n") == 1  # nothing was added


def test_unknown_host_key_is_refused_then_accepted_explicitly(sshd, disk):
    server = sshd()
    server.known_hosts.write_text("")
    uri = server.nbd_ssh_uri("disk", disk.socket)
    r = cli(server, "info", uri)
    assert_one_line_error(
        r,
        1,
        f"ssh: host key for 127.0.0.1:{server.port}",
        "is not in known_hosts; pass --ssh-accept-new to trust it",
    )
    assert server.known_hosts.read_text() == ""

    r = cli(server, "info", "--ssh-accept-new", uri)
    assert r.returncode == 0, r.stderr
    assert "added 127.0.0.1" in r.stderr  # never silently
    host_pub = Path(f"{server.host_key}.pub").read_text().split()[1]
    assert f"[127.0.0.1]:{server.port} ssh-ed25519 {host_pub}" in server.known_hosts.read_text()

    r = cli(server, "info", uri)  # now known: no flag needed, nothing printed
    assert r.returncode == 0 and not r.stderr, r.stderr


async def test_uri_parameter_accepts_a_new_host_key(ssh_home, disk):
    import nbdtui.client as client
    from nbdtui.client.transport.ssh import prompts as ssh_prompts

    notices: list[str] = []
    ssh_prompts.set_notice(notices.append)
    ssh_home.known_hosts.unlink()
    uri = ssh_home.nbd_ssh_uri("disk", disk.socket) + "&x-accept-new-host-key=yes"
    assert (await client.probe(uri)).info.size == 4 * MiB
    assert ssh_home.known_hosts.exists() and len(notices) == 1


async def test_host_key_prompt_hook_decides(ssh_home, disk):
    import nbdtui.client as client
    from nbdtui.client.transport.ssh import prompts as ssh_prompts
    from nbdtui.errors import ConnectError

    ssh_home.known_hosts.write_text("")
    asked = []

    async def refuse(key):
        asked.append(key)
        return False

    ssh_prompts.set_host_key_prompt(refuse)
    with pytest.raises(ConnectError, match="is not in known_hosts"):
        await client.probe(ssh_home.nbd_ssh_uri("disk", disk.socket))
    assert asked[0].port == ssh_home.port and asked[0].fingerprint.startswith("SHA256:")
    assert asked[0].known_hosts == str(ssh_home.known_hosts)


async def test_time_spent_on_the_host_key_question_does_not_count(ssh_home, disk):
    import nbdtui.client as client
    from nbdtui.client.transport.ssh import prompts as ssh_prompts

    ssh_home.known_hosts.write_text("")

    async def slow_reader(key) -> bool:
        await asyncio.sleep(2.0)  # reading the fingerprint, longer than the timeout
        return True

    ssh_prompts.set_host_key_prompt(slow_reader)
    negotiated = await client.probe(ssh_home.nbd_ssh_uri("disk", disk.socket), connect_timeout=1.0)
    assert negotiated.info.size == 4 * MiB
    assert "ssh-" in ssh_home.known_hosts.read_text() or "ecdsa" in ssh_home.known_hosts.read_text()


def test_missing_remote_socket(sshd, tmp_path):
    server = sshd()
    missing = tmp_path / "nothing-here.sock"
    r = cli(server, "info", server.nbd_ssh_uri("disk", str(missing)))
    assert_one_line_error(
        r, 1, f"ssh: remote socket {missing}", "open failed (No such file or directory)"
    )
    r = cli(server, "info", server.nbd_ssh_uri("disk", str(tmp_path)))
    assert_one_line_error(r, 1, "open failed (not a socket)")


def test_remote_tcp_port_refused(sshd):
    server = sshd()
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        r = cli(server, "info", "--ssh", server.alias, f"nbd://127.0.0.1:{port}/disk")
    assert_one_line_error(r, 1, f"ssh: 127.0.0.1:{port} as seen from 127.0.0.1: open failed")


def test_rejected_client_key(sshd, disk, tmp_path):
    server = sshd()
    other = make_ssh_key(tmp_path / "other_ed25519")
    server.config_path.write_text(
        server.config_path.read_text().replace(str(server.client_key), str(other))
    )
    r = cli(server, "info", server.nbd_ssh_uri("disk", disk.socket))
    assert_one_line_error(r, 1, f"ssh: authentication failed for {server.user}@127.0.0.1")


def test_ssh_connection_refused(sshd):
    server = sshd()
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = cli(server, "info", f"nbd+ssh://{server.user}@127.0.0.1:{port}/?socket=/x.sock")
    assert_one_line_error(r, 1, f"ssh: connection refused by 127.0.0.1:{port}")


@pytest.mark.parametrize(
    "args",
    [
        ("info", "--ssh=-oProxyCommand=touch /tmp/nbdtui-pwned", "nbd://h/"),
        ("info", "nbd+ssh://-oProxyCommand=x/?socket=/x"),
        ("info", "nbd+ssh://a$(touch%20x)@h/?socket=/x"),
        ("info", "nbd+ssh://h/?socket=/x&x-nbd-port=99999"),
    ],
)
def test_hostile_or_bad_ssh_endpoints_are_usage_errors(sshd, args):
    server = sshd()
    r = cli(server, *args)
    assert_one_line_error(r, 2)
    assert not Path("/tmp/nbdtui-pwned").exists()
    assert "Accepted" not in server.output() and "Connection from" not in server.output()


# ---------------------------------------------------------------- passwords and passphrases


def test_passphrase_without_a_terminal_fails_clearly(sshd, disk):
    server = sshd()
    key = server.use_encrypted_key(pem=True)
    r = cli(server, "info", server.nbd_ssh_uri("disk", disk.socket))
    assert_one_line_error(
        r, 1, "ssh: authentication failed", f"key {key} is encrypted and stdin is not a terminal"
    )


def _run_on_a_terminal(server, args, react) -> tuple[int, bytes, list[int]]:
    """Run the CLI with a pseudo-terminal as its controlling terminal and stdio;
    ``react(output_so_far)`` returns bytes to type (or None). Returns (status, output,
    the terminal's final attributes)."""
    master, slave = os.openpty()

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "nbdtui", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=server.env(),
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    output = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                typed = react(output)
                if typed:
                    os.write(master, typed)
            elif proc.poll() is not None:
                break
        status = proc.wait(30)
        attributes = termios.tcgetattr(slave)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)
    return status, output, attributes


def test_passphrase_asked_on_the_terminal(sshd, disk):
    server = sshd()
    key = server.use_encrypted_key(pem=True)
    answered = []

    def react(output: bytes) -> bytes | None:
        if not answered and f"passphrase for key '{key}'".encode() in output:
            answered.append(True)
            return b"s3cret\n"
        return None

    status, output, attributes = _run_on_a_terminal(
        server, ["info", server.nbd_ssh_uri("disk", disk.socket)], react
    )
    assert status == 0, output.decode(errors="replace")
    assert answered
    assert b"s3cret" not in output  # not echoed
    assert b"size:" in output and b"4194304" in output
    assert attributes[3] & termios.ECHO  # echo is back on


def test_ctrl_c_at_the_passphrase_prompt(sshd, disk):
    server = sshd()
    server.use_encrypted_key(pem=True)
    pressed = []

    def react(output: bytes) -> bytes | None:
        if not pressed and b"Enter passphrase" in output:
            pressed.append(True)
            return b"\x03"
        return None

    status, output, attributes = _run_on_a_terminal(
        server, ["info", server.nbd_ssh_uri("disk", disk.socket)], react
    )
    assert pressed
    assert status == 130, output.decode(errors="replace")
    assert b"nbdtui: interrupted" in output and b"Traceback" not in output
    assert attributes[3] & termios.ECHO  # the terminal was restored


async def test_a_wrong_passphrase_that_decodes_as_garbage_is_asked_again(ssh_home, disk):
    """Legacy PEM keys have no passphrase check: now and then a wrong passphrase passes
    the padding and fails to decode instead. That is still a wrong passphrase."""
    import asyncssh

    import nbdtui.client as client
    from nbdtui.client.transport.ssh import prompts as ssh_prompts

    key = ssh_home.use_encrypted_key(pem=True)
    for n in range(20000):  # about 1 in 256 wrong passphrases does this
        try:
            asyncssh.read_private_key(str(key), f"wrong{n}")
        except asyncssh.KeyImportError as exc:
            if "Unable to decrypt" not in str(exc) and "ncorrect passphrase" not in str(exc):
                garbage = f"wrong{n}"  # decrypted to bytes that do not decode as a key
                break
    else:
        pytest.fail("no wrong passphrase decoded as garbage")
    answers = iter([garbage, "s3cret"])
    prompts: list[str] = []

    async def modal(prompt: str, echo: bool) -> str | None:
        prompts.append(prompt)
        return next(answers)

    ssh_prompts.set_password_prompt(modal)
    assert (await client.probe(ssh_home.nbd_ssh_uri("disk", disk.socket))).info.size == 4 * MiB
    assert prompts == [
        f"Enter passphrase for key '{key}': ",
        f"Bad passphrase, try again for key '{key}': ",
    ]


async def test_password_prompt_hook_is_asked_for_the_passphrase(ssh_home, disk):
    import nbdtui.client as client
    from nbdtui.client.transport.ssh import prompts as ssh_prompts
    from nbdtui.errors import ConnectError

    key = ssh_home.use_encrypted_key(pem=True)
    prompts: list[tuple[str, bool]] = []
    answers = iter(["wrong", "s3cret"])

    async def modal(prompt: str, echo: bool) -> str | None:
        prompts.append((prompt, echo))
        return next(answers)

    ssh_prompts.set_password_prompt(modal)
    assert (await client.probe(ssh_home.nbd_ssh_uri("disk", disk.socket))).info.size == 4 * MiB
    assert prompts == [
        (f"Enter passphrase for key '{key}': ", False),
        (f"Bad passphrase, try again for key '{key}': ", False),
    ]

    ssh_prompts.set_password_prompt(lambda prompt, echo: None)  # the user cancels
    with pytest.raises(ConnectError, match="authentication failed"):
        await client.probe(ssh_home.nbd_ssh_uri("disk", disk.socket))


async def test_time_spent_in_a_prompt_does_not_count_against_the_timeout(ssh_home, disk):
    import nbdtui.client as client
    from nbdtui.client.transport.ssh import prompts as ssh_prompts

    ssh_home.use_encrypted_key(pem=True)

    async def slow_typist(prompt: str, echo: bool) -> str:
        await asyncio.sleep(2.0)
        return "s3cret"

    ssh_prompts.set_password_prompt(slow_typist)
    uri = ssh_home.nbd_ssh_uri("disk", disk.socket)
    async with client.open(uri, connect_timeout=1.0) as export:
        assert export.size == 4 * MiB


# ---------------------------------------------------------------- endpoint object API


def test_endpoint_display_and_round_trip():
    e = tunnel_endpoint(Endpoint(transport="unix", socket="/s.sock", export="d"), "u@h:2")
    assert parse(e.uri) == e
    assert "(ssh, port 2)" in e.display
