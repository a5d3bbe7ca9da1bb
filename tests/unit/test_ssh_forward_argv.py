"""The ``ssh -N -L`` command line of nbdtui.client.transport.ssh.forward (no network):
what is forwarded where, as whom, and which settings cannot be left to ssh_config."""

from __future__ import annotations

import pytest

from nbdtui.client.transport.ssh import forward
from nbdtui.client.transport.ssh.forward import (
    GCM_FIRST_CIPHERS,
    OPENSSH_DEFAULT_CIPHERS,
    forward_argv,
    preferred_ciphers,
)
from nbdtui.uri import parse


def options(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")


@pytest.fixture(autouse=True)
def _same_home(monkeypatch):
    monkeypatch.setattr(forward, "_home_options", lambda: [])


def test_remote_socket_user_and_port():
    endpoint = parse("nbd+ssh://alice@host.example:2222/disk?socket=/run/nbd.sock")
    argv = forward_argv("/usr/bin/ssh", endpoint, "/tmp/d/nbd.sock")
    assert argv[:5] == ["/usr/bin/ssh", "-p", "2222", "-l", "alice"]
    assert argv[-4:] == ["-L", "/tmp/d/nbd.sock:/run/nbd.sock", "--", "host.example"]
    assert "-N" in argv
    opts = options(argv)
    assert opts["BatchMode"] == "yes"  # never a prompt: asyncssh asks instead
    assert opts["StrictHostKeyChecking"] == "yes"  # unknown keys go to asyncssh
    assert opts["ExitOnForwardFailure"] == "yes"
    assert opts["ControlPath"] == "none"
    assert opts["UpdateHostKeys"] == "no"  # nbdtui never edits known_hosts unasked
    assert "Ciphers" not in opts


def test_tcp_server_as_the_ssh_host_sees_it_and_an_alias():
    endpoint = parse("nbd+ssh://myalias/disk?x-nbd-host=::1&x-nbd-port=10900")
    argv = forward_argv("ssh", endpoint, "/tmp/d/nbd.sock", ciphers=GCM_FIRST_CIPHERS)
    assert argv[-4:] == ["-L", "/tmp/d/nbd.sock:[::1]:10900", "--", "myalias"]
    assert "-p" not in argv and "-l" not in argv  # ssh_config's Port and User apply
    assert options(argv)["Ciphers"].startswith("aes128-gcm@openssh.com,")


def test_ciphers_chosen_in_ssh_config_are_kept():
    assert preferred_ciphers({"ciphers": [OPENSSH_DEFAULT_CIPHERS]}) == GCM_FIRST_CIPHERS
    assert preferred_ciphers({"ciphers": ["aes256-ctr"]}) is None
    assert preferred_ciphers({}) is None  # ssh -G failed: no opinion


def test_files_under_home_when_home_is_not_the_password_database_one(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(forward, "_home_options", lambda: ["-F", "/dev/null"])
    monkeypatch.setattr(forward, "_pw_home", lambda: "/home/real")
    config = {
        "identityfile": ["~/.ssh/id_ed25519", "/keys/other"],
        "userknownhostsfile": ["/home/real/.ssh/known_hosts /home/real/.ssh/known_hosts2"],
    }
    assert forward._home_files(config) == [
        "-o",
        f"IdentityFile={tmp_path}/.ssh/id_ed25519",
        "-o",
        "IdentityFile=/keys/other",
        "-o",
        f"UserKnownHostsFile={tmp_path}/.ssh/known_hosts {tmp_path}/.ssh/known_hosts2",
    ]
