"""The connect screen: live parsing, parser errors, refused connections, recent endpoints."""

from __future__ import annotations

import socket

import pytest
from textual.widgets import Input, OptionList, Static

from nbdtui.errors import UriError
from nbdtui.tui.screens.connect import ConnectScreen
from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.uri import parse
from tests.support.pilot import text_of, type_uri, wait_for


async def test_typing_a_uri_shows_what_it_parsed(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await type_uri(pilot, "nbds://alice@nas.example:10810/vm%2Fdisk?tls-certificates=/etc/pki")
        parsed = text_of(app.screen.query_one("#parsed", Static))
        for part in (
            "transport tcp",
            "user alice",
            "host nas.example",
            "port 10810",
            "export 'vm/disk'",
            "TLS required (tls-certificates=/etc/pki)",
        ):
            assert part in parsed
        assert parsed.startswith("✓")

        await type_uri(pilot, "nbd+unix:///?socket=/run/nbd.sock")
        parsed = text_of(app.screen.query_one("#parsed", Static))
        assert "transport unix" in parsed
        assert "socket /run/nbd.sock" in parsed
        assert "export (none: list exports)" in parsed
        assert "host" not in parsed
        assert "TLS off" in parsed


@pytest.mark.parametrize(
    "bad",
    [
        "nbd://nas.example:99999/disk",
        "nb://host/",
        "nbd+unix:///disk",
        "nbd://user:pw@host/",
        "nbd://host/?sockt=/x",
        "nbd:host",
    ],
)
async def test_an_invalid_uri_shows_the_parser_message(make_app, bad):
    with pytest.raises(UriError) as info:
        parse(bad)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await type_uri(pilot, bad)
        parsed = app.screen.query_one("#parsed", Static)
        assert text_of(parsed) == f"✗ {info.value}"
        assert parsed.has_class("error")
        await pilot.press("enter")  # refused before any network call
        await pilot.pause()
        assert "Not a valid endpoint" in text_of(app.screen.query_one("#status", Static))
        assert isinstance(app.screen, ConnectScreen)


async def test_the_error_goes_once_the_uri_is_valid(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await type_uri(pilot, "nbd//bad")
        await pilot.press("enter")
        await pilot.pause()
        status = app.screen.query_one("#status", Static)
        assert status.has_class("error") and "Not a valid endpoint" in text_of(status)
        await type_uri(pilot, "nbd://bad")  # not yet valid while typed: the error stays...
        assert not status.has_class("error") and text_of(status) == ""  # ...until it is
        await type_uri(pilot, "nbd:/")
        await pilot.press("enter")
        await pilot.pause()
        assert status.has_class("error")
        field = app.screen.query_one("#uri", Input)
        field.value = "nbd://host"
        await pilot.pause()
        assert text_of(status) == ""


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_refused_connection_is_reported_and_the_app_stays_usable(make_app, nbdkit):
    server = nbdkit("memory", "1M", export="")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await type_uri(pilot, f"nbd://127.0.0.1:{_refused_port()}/disk")
        await pilot.press("enter")
        status = app.screen.query_one("#status", Static)
        await wait_for(pilot, lambda: status.has_class("error"))
        message = text_of(status)
        assert "refused" in message.lower()
        assert any("refused" in str(n.message).lower() for n in app._notifications)
        assert isinstance(app.screen, ConnectScreen)
        assert app.history.recent() == []  # a failed endpoint is not remembered

        # Still usable: the next endpoint opens (one export: straight to its editor).
        await type_uri(pilot, server.uri_for(""))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.sessions)
        session = next(iter(app.sessions.values()))
        assert session.export.size == 1024 * 1024
        assert isinstance(app.get_screen_stack(session.mode)[0], ExportScreen)
        assert [e.uri for e in app.history.recent()] == [parse(server.uri_for("")).uri]


async def test_recent_endpoints_are_listed_and_open(make_app, nbdkit, tmp_path):
    server = nbdkit("memory", "2M", unix=True)
    app = make_app()
    app.history.remember(server.uri_for(""))
    app.history.remember("nbd://other.example/")
    async with app.run_test(size=(120, 40)) as pilot:
        recent = app.screen.query_one("#recent", OptionList)
        ids = [recent.get_option_at_index(i).id for i in range(recent.option_count)]
        assert ids == ["nbd://other.example/", parse(server.uri_for("")).uri]
        await pilot.press("ctrl+r", "down", "enter")
        await wait_for(pilot, lambda: app.sessions)
        assert app.connect_screen.query_one("#uri", Input).value == ids[1]
        (session,) = app.sessions.values()
        assert session.export.size == 2 * 1024 * 1024
        assert app.history.recent()[0].uri == ids[1]


async def test_forget_a_recent_endpoint(make_app):
    app = make_app()
    app.history.remember("nbd://a.example/")
    app.history.remember("nbd://b.example/")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+r", "delete")
        await pilot.pause()
        recent = app.screen.query_one("#recent", OptionList)
        assert [recent.get_option_at_index(i).id for i in range(recent.option_count)] == [
            "nbd://a.example/"
        ]
        assert [e.uri for e in app.history.recent()] == ["nbd://a.example/"]


async def test_a_silent_server_times_out_or_can_be_cancelled(make_app):
    with socket.socket() as silent:  # accepts TCP (kernel backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        uri = f"nbd://127.0.0.1:{silent.getsockname()[1]}/disk"
        app = make_app(connect_timeout=1.0)
        async with app.run_test(size=(120, 40)) as pilot:
            status = app.screen.query_one("#status", Static)
            await type_uri(pilot, uri)
            await pilot.press("enter")
            await wait_for(pilot, lambda: status.has_class("error"))
            assert "timed out" in text_of(status).lower()

            app.connect_timeout = 30.0
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Connecting" in text_of(status))
            await pilot.press("escape")
            await wait_for(pilot, lambda: text_of(status) == "Cancelled.")
            assert not any(w.is_running for w in app.workers if w.group == "connect")
            assert not app.sessions
