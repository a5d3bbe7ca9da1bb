"""`nbdtui [--ssh HOST] [--ssh-accept-new] [URI]`: what the command line hands the UI,
and the command-line errors it refuses before any screen opens."""

from __future__ import annotations

import pytest

from nbdtui.cli import main
from nbdtui.tui import app as tui_app
from tests.support.cli_helpers import assert_one_line_error, nbdtui


@pytest.fixture
def started(monkeypatch):
    """The keyword arguments run_app was called with (the UI itself is not started)."""
    calls: list[dict] = []

    def fake_run_app(**kwargs):
        calls.append(kwargs)
        return 0

    monkeypatch.setattr(tui_app, "run_app", fake_run_app)
    return calls


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"uri": None, "ssh": None, "ssh_accept_new": False}),
        (["nbd://h/disk"], {"uri": "nbd://h/disk", "ssh": None, "ssh_accept_new": False}),
        (
            ["--ssh", "admin@h:2222", "nbd+unix:///disk?socket=/run/nbd.sock"],
            {
                "uri": "nbd+unix:///disk?socket=/run/nbd.sock",
                "ssh": "admin@h:2222",
                "ssh_accept_new": False,
            },
        ),
        (
            ["nbd://localhost:10809/disk", "--ssh=jump", "--ssh-accept-new"],
            {"uri": "nbd://localhost:10809/disk", "ssh": "jump", "ssh_accept_new": True},
        ),
        (["--ssh", "jump"], {"uri": None, "ssh": "jump", "ssh_accept_new": False}),
    ],
)
def test_the_ui_gets_the_uri_and_the_ssh_host(started, argv, expected):
    assert main(argv) == 0
    assert started == [expected]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--ssh", "bad host", "nbd://h/disk"], "invalid character ' ' in host"),
        (["--ssh", "h", "nbd+ssh://h2/disk?socket=/s"], "cannot tunnel an nbd+ssh://"),
        (["--ssh", "h", "nbd://h/disk", "--bogus"], "unrecognized arguments: --bogus"),
        (["nbd://h/disk", "extra"], "unknown command 'nbd://h/disk'"),
        (["--ssh", "h", "nbd+unix:///disk"], "socket"),
        (["--ssh"], "expected one argument"),
    ],
)
def test_bad_ui_command_lines_are_refused(argv, needle):
    assert_one_line_error(nbdtui(*argv), 2, needle)


def test_subcommands_still_take_their_own_ssh_option(started, capsys):
    # `info --ssh` is the info command's option, not the UI's: the UI is not started.
    with pytest.raises(SystemExit) as exc:
        main(["info", "--ssh", "bad host", "nbd://h/disk"])
    assert exc.value.code == 2
    assert "argument --ssh: invalid character" in capsys.readouterr().err
    assert started == []


def test_a_socket_path_that_is_not_utf8_reaches_the_ui_percent_escaped(started):
    assert main(["nbd+unix:///disk?socket=/run/nbd\udcff.sock"]) == 0
    assert started == [
        {"uri": "nbd+unix:///disk?socket=/run/nbd%FF.sock", "ssh": None, "ssh_accept_new": False}
    ]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["nbd://h/%41\udcff"], "export name is not valid UTF-8"),
        (["nbd+unix:///?socket=/r\udcff", "--ssh", "h"], "remote socket path is not valid UTF-8"),
    ],
)
def test_bytes_that_are_not_utf8_where_utf8_is_needed(started, capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nbdtui: ") and needle in err and err.count("\n") == 1
    assert started == []


def test_the_ui_gets_the_inventory(started, tmp_path):
    inventory = tmp_path / "fleet.txt"
    inventory.write_text("nbd://h/disk\n")
    assert main(["--inventory", str(inventory)]) == 0
    assert started == [
        {"uri": None, "ssh": None, "ssh_accept_new": False, "inventory": str(inventory)}
    ]
