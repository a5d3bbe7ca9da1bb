"""SSH and TLS in the app: the "via SSH" field, nbd+ssh:// URIs, the host-key and
passphrase modals, and how TLS is shown (verified / unverified / failed).

Real servers: OpenSSH's sshd (client HOME with .ssh/config and known_hosts), nbdkit on
Unix sockets behind it, nbdkit with TLS certificates.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from textual.widgets import Input, Static

from nbdtui.client.transport.ssh import prompts as ssh_prompts
from nbdtui.client.transport.ssh.prompts import UnknownHostKey
from nbdtui.tui.dialogs.login_prompts import HostKeyScreen, PasswordScreen
from nbdtui.tui.screens.connect import ConnectScreen
from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.uri import parse
from tests.support.pilot import SNAP_SIZE, text_of, wait_for
from tests.support.requirements import require, require_module

MiB = 1024 * 1024
SIZE = (140, 44)


@pytest.fixture(autouse=True)
def _reset_prompts(reset_ssh_prompts):
    """Every test here leaves the prompt hooks as it found them."""


@pytest.fixture
def memory(nbdkit):
    """nbdkit serving 3 MiB of memory on a Unix socket (reached through sshd)."""
    return nbdkit("memory", "3M", unix=True)


def parsed_text(app) -> str:
    return text_of(app.connect_screen.query_one("#parsed", Static))


def status_of(app) -> Static:
    return app.connect_screen.query_one("#status", Static)


async def fill(pilot, field_id: str, text: str) -> None:
    """Put ``text`` in a connect-screen field, its last character typed (long URIs are
    not typed key by key: each key press costs a frame)."""
    field = pilot.app.screen.query_one(field_id, Input)
    field.focus()
    await pilot.pause()  # focusing selects the text
    field.value = text[:-1]
    field.cursor_position = len(field.value)
    await pilot.press(text[-1])
    await pilot.pause()
    assert field.value == text


async def type_uri(pilot, uri: str) -> None:
    await fill(pilot, "#uri", uri)


async def type_via(pilot, target: str) -> None:
    await fill(pilot, "#ssh", target)


async def connect_and_wait_for_export(pilot) -> ExportScreen:
    app = pilot.app
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.sessions or status_of(app).has_class("error"))
    assert app.sessions, text_of(status_of(app))
    (session,) = app.sessions.values()
    base = app.get_screen_stack(session.mode)[0]
    assert isinstance(base, ExportScreen)
    return base


def details_text(screen: ExportScreen) -> str:
    return text_of(screen.query_one("#details", Static))


async def fail_on_connect_screen(pilot) -> str:
    app = pilot.app
    await pilot.press("enter")
    await wait_for(pilot, lambda: status_of(app).has_class("error"))
    assert isinstance(app.screen, ConnectScreen)
    assert not app.sessions
    return text_of(status_of(app))


def fingerprint(public_key: Path) -> str:
    """The oracle: ssh-keygen's SHA256 fingerprint of a public key file."""
    out = subprocess.run(
        [require("ssh-keygen"), "-l", "-E", "sha256", "-f", str(public_key)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


# ---- nbd+ssh:// URIs and the "via SSH" field --------------------------------------


async def test_nbd_ssh_uri_shows_the_hop_and_opens(make_app, ssh_home, memory):
    uri = ssh_home.nbd_ssh_uri("", memory.socket)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, uri)
        parsed = parsed_text(app)
        assert parsed.startswith("✓")
        for part in (
            "transport ssh",
            "ssh host 127.0.0.1",
            f"ssh port {ssh_home.port}",
            f"ssh user {ssh_home.user}",
            f"remote socket {memory.socket}",
            "TLS off",
        ):
            assert part in parsed, parsed

        screen = await connect_and_wait_for_export(pilot)
        assert screen.export.size == 3 * MiB
        assert f"({3 * MiB:,} bytes)" in details_text(screen)
        assert "no TLS" in details_text(screen)
        assert [e.uri for e in app.history.recent()] == [parse(uri).uri]
        assert "no TLS" in text_of(status_of(app))


async def test_via_ssh_field_tunnels_a_unix_endpoint(make_app, ssh_home, memory):
    direct = memory.uri_for("")  # nbd+unix:///?socket=PATH: the path is on the SSH host
    tunnelled = f"nbd+ssh://{ssh_home.alias}/?socket={quote(memory.socket, safe='/')}"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, direct)
        assert "transport unix" in parsed_text(app)
        await type_via(pilot, ssh_home.alias)
        parsed = parsed_text(app)
        for part in (
            "transport ssh",
            f"ssh host {ssh_home.alias}",
            "ssh port ssh_config or 22",
            "ssh user ssh_config or login name",
            f"remote socket {memory.socket}",
            f"opens {tunnelled}",
        ):
            assert part in parsed, parsed

        screen = await connect_and_wait_for_export(pilot)  # Enter in the via SSH field
        assert screen.session.endpoint == parse(tunnelled)
        assert screen.export.size == 3 * MiB
        assert f"({3 * MiB:,} bytes)" in details_text(screen)
        # What is remembered reaches the same place by itself: the nbd+ssh URI.
        assert [e.uri for e in app.history.recent()] == [parse(tunnelled).uri]


async def test_started_with_ssh_opens_the_uri_through_the_host(make_app, ssh_home, memory):
    """`nbdtui --ssh HOST URI`: the app opens URI through HOST as soon as it starts."""
    tunnelled = f"nbd+ssh://{ssh_home.alias}/?socket={quote(memory.socket, safe='/')}"
    app = make_app(memory.uri_for(""), ssh=ssh_home.alias)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.sessions or status_of(app).has_class("error"))
        assert app.sessions, text_of(status_of(app))
        (session,) = app.sessions.values()
        assert session.endpoint == parse(tunnelled)
        assert session.export.size == 3 * MiB
        assert [e.uri for e in app.history.recent()] == [parse(tunnelled).uri]


async def test_ssh_accept_new_trusts_an_unknown_key_without_asking(make_app, ssh_home, memory):
    """`nbdtui --ssh-accept-new`: no host-key modal; the key is saved to known_hosts."""
    ssh_home.known_hosts.write_text("")
    host_pub = Path(f"{ssh_home.host_key}.pub")
    app = make_app(ssh_home.nbd_ssh_uri("", memory.socket), ssh_accept_new=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: (
                app.sessions
                or status_of(app).has_class("error")
                or isinstance(app.screen, HostKeyScreen)
            ),
        )
        assert not isinstance(app.screen, HostKeyScreen)
        assert app.sessions, text_of(status_of(app))
        saved = ssh_home.known_hosts.read_text()
        assert f"[127.0.0.1]:{ssh_home.port} ssh-ed25519 {host_pub.read_text().split()[1]}" in saved


@pytest.mark.parametrize(
    ("uri", "via", "needle"),
    [
        ("nbd+unix:///?socket=/run/x.sock", "-oProxyCommand=x", "via SSH: host '-oProxyCommand"),
        ("nbd+unix:///?socket=/run/x.sock", "host:0", "via SSH: port 0 out of range"),
        ("nbd+ssh://h/?socket=/x", "jump", "'via SSH' cannot tunnel an nbd+ssh:// endpoint"),
        ("nbd://alice@h/", "jump", "give the SSH user as 'via SSH' USER@HOST"),
        ("nbd+ssh://h/?x-nbd-port=99999", "", "x-nbd-port '99999' is not a port number"),
    ],
)
async def test_a_bad_ssh_hop_is_refused_as_you_type(make_app, uri, via, needle):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, uri)
        if via:
            await type_via(pilot, via)
        parsed = app.connect_screen.query_one("#parsed", Static)
        assert text_of(parsed).startswith("✗"), text_of(parsed)
        assert needle in text_of(parsed)
        assert parsed.has_class("error")
        await pilot.press("enter")  # refused before any network call
        await pilot.pause()
        assert "Not a valid endpoint" in text_of(status_of(app))
        assert not app.sessions


# ---- the host-key and passphrase modals -------------------------------------------


async def test_unknown_host_key_modal_no_then_yes(make_app, ssh_home, memory):
    ssh_home.known_hosts.write_text("")
    host_pub = Path(f"{ssh_home.host_key}.pub")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, ssh_home.nbd_ssh_uri("", memory.socket))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyScreen))
        await pilot.pause()  # the modal focuses "no" when mounted: let on_mount run first
        shown = text_of(app.screen.query_one("#host-key-details", Static))
        for part in (
            "Host         127.0.0.1",
            f"Port         {ssh_home.port}",
            "Key type     ED25519",
            f"Fingerprint  {fingerprint(host_pub)}",
            f"known_hosts  {ssh_home.known_hosts}",
        ):
            assert part in shown, shown
        assert app.screen.focused.id == "no"  # Enter refuses
        await pilot.press("enter")
        await wait_for(pilot, lambda: status_of(app).has_class("error"))
        message = text_of(status_of(app))
        assert f"ssh: host key for 127.0.0.1:{ssh_home.port}" in message
        assert "is not in known_hosts and was not trusted" in message
        assert "--ssh-accept-new" not in message
        assert isinstance(app.screen, ConnectScreen) and not app.sessions
        assert ssh_home.known_hosts.read_text() == ""

        # Still usable: connect again, and this time trust the key.
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.sessions or status_of(app).has_class("error"))
        (session,) = app.sessions.values()
        assert session.export.size == 3 * MiB
        saved = ssh_home.known_hosts.read_text()
        assert f"[127.0.0.1]:{ssh_home.port} ssh-ed25519 {host_pub.read_text().split()[1]}" in saved
        assert any("added 127.0.0.1" in str(n.message) for n in app._notifications)


async def test_changed_host_key_is_refused_without_asking(make_app, ssh_home, memory, tmp_path):
    ssh_home.expect_other_host_key()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, ssh_home.nbd_ssh_uri("", memory.socket))
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: status_of(app).has_class("error") or isinstance(app.screen, HostKeyScreen),
        )
        assert isinstance(app.screen, ConnectScreen)  # a different key is never offered
        message = text_of(status_of(app))
        assert f"ssh: host key for 127.0.0.1:{ssh_home.port} does not match known_hosts" in message
        assert any("does not match" in str(n.message) for n in app._notifications)
    assert ssh_home.known_hosts.read_text().count("\n") == 1  # nothing was added


async def test_passphrase_modal_cancel_then_answer(make_app, ssh_home, memory):
    require_module("bcrypt")
    key = ssh_home.use_encrypted_key()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, ssh_home.nbd_ssh_uri("", memory.socket))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PasswordScreen))
        prompt = text_of(app.screen.query_one("#prompt-text", Static))
        assert prompt == f"Enter passphrase for key '{key}':"
        assert app.screen.query_one("#secret", Input).password  # not echoed
        await pilot.press("escape")
        await wait_for(pilot, lambda: status_of(app).has_class("error"))
        message = text_of(status_of(app))
        assert f"ssh: authentication failed for {ssh_home.user}@127.0.0.1" in message
        assert f"key {key} is encrypted and the passphrase prompt was cancelled" in message
        assert isinstance(app.screen, ConnectScreen) and not app.sessions

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PasswordScreen))
        await pilot.press(*"wrong", "enter")  # asked again, as ssh does
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, PasswordScreen)
                and "Bad passphrase" in text_of(app.screen.query_one("#prompt-text", Static))
            ),
        )
        await pilot.press(*"s3cret", "enter")
        # Once: listing the exports and opening one share the login.
        await wait_for(pilot, lambda: app.sessions or status_of(app).has_class("error"))
        assert not isinstance(app.screen, PasswordScreen)
        (session,) = app.sessions.values()
        assert session.export.size == 3 * MiB
        assert [e.uri for e in app.history.recent()] == [session.endpoint.uri]  # no secret


async def test_prompt_hooks_live_only_while_the_app_runs(make_app):
    def mine(prompt, echo):
        return None

    ssh_prompts.set_password_prompt(mine)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert ssh_prompts._password_prompt == app._prompts.ask_password
        assert ssh_prompts._host_key_prompt == app._prompts.ask_host_key
        assert ssh_prompts._notice == app._prompts.notice
        ssh_prompts.notify("hello from ssh")
        await pilot.pause()
        assert any(str(n.message) == "hello from ssh" for n in app._notifications)
    assert ssh_prompts._password_prompt is mine
    assert ssh_prompts._host_key_prompt is None
    assert ssh_prompts._notice is ssh_prompts._stderr_notice


def test_host_key_modal_snapshot(snap_compare, make_app):
    key = UnknownHostKey(
        "nas.example", 2222, "ED25519", "SHA256:" + "Q" * 43, "/home/alice/.ssh/known_hosts"
    )

    async def run_before(pilot):
        pilot.app.push_screen(HostKeyScreen(key))
        await pilot.pause()

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SNAP_SIZE)


def test_passphrase_modal_snapshot(snap_compare, make_app):
    async def run_before(pilot):
        pilot.app.push_screen(
            PasswordScreen("Enter passphrase for key '/home/alice/.ssh/id_ed25519': ")
        )
        await pilot.pause()
        await pilot.press(*"secret")  # shown as dots

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SNAP_SIZE)


# ---- TLS -----------------------------------------------------------------------------


def with_params(uri: str, **params: str | Path) -> str:
    for key, value in params.items():
        sep = "&" if "?" in uri else "?"
        uri += f"{sep}{key.replace('_', '-')}={quote(str(value), safe='/')}"
    return uri


async def test_tls_verified(make_app, nbdkit, tls_certs):
    server = nbdkit("memory", "2M", unix=True, tls=tls_certs)
    uri = server.tls_uri_for("")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, uri)
        assert f"TLS required (tls-certificates={tls_certs.dir})" in parsed_text(app)
        screen = await connect_and_wait_for_export(pilot)
        assert screen.export.size == 2 * MiB
        assert "newstyle-fixed, TLS (verified), structured replies" in details_text(screen)
        assert "[b $success]TLS (verified)[/]" in screen._details_markup()
        assert text_of(status_of(app)).endswith(": TLS (verified)")


async def test_tls_without_verification_is_marked_unverified(make_app, nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs.wrong_ca_dir)
    uri = with_params(server.uri, tls_certificates=tls_certs.dir, tls_verify_peer="false")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, uri)
        assert "TLS required, server NOT verified" in parsed_text(app)
        screen = await connect_and_wait_for_export(pilot)
        assert screen.export.size == MiB
        assert "TLS (unverified)" in details_text(screen)
        assert "[b reverse $warning]TLS (unverified)[/]" in screen._details_markup()
        assert text_of(status_of(app)).endswith(": TLS (unverified)")


async def test_tls_wrong_ca_is_an_error_line(make_app, nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs.wrong_ca_dir)
    good = nbdkit("memory", "1M", tls=tls_certs)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_uri(pilot, with_params(server.uri, tls_certificates=tls_certs.dir))
        message = await fail_on_connect_screen(pilot)
        assert "TLS certificate verify failed" in message and "unknown CA" in message
        assert any("unknown CA" in str(n.message) for n in app._notifications)
        assert app.history.recent() == []

        await type_uri(pilot, good.tls_uri_for(""))  # still usable
        screen = await connect_and_wait_for_export(pilot)
        assert "TLS (verified)" in details_text(screen)
