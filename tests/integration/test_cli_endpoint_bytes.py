"""Endpoints holding bytes that are not UTF-8 (the shell passes any bytes in argv).

An export name is UTF-8 on the wire (NBD spec, "export name"): such an endpoint is a
command-line error (exit 2), in every command and in the UI's entry point. A Unix socket
path is bytes on Linux: a path with such a byte is a real path and works.
"""

from __future__ import annotations

import os

import pytest

from tests.support.cli_helpers import assert_one_line_error, nbdtui

BAD_EXPORTS = [
    b"nbd://localhost/%41\xff",
    b"nbd://localhost/\xff",
    b"nbd:localhost:10809:exportname=\xfe",
    b"nbd+unix:///\xc3?socket=/run/nbd.sock",
]


@pytest.mark.parametrize("command", ["info", "list", "map", "read"])
@pytest.mark.parametrize("uri", BAD_EXPORTS)
def test_an_export_name_that_is_not_utf8_is_a_command_line_error(command, uri):
    result = nbdtui(command, os.fsdecode(uri))
    assert_one_line_error(result, 2, "export name is not valid UTF-8")


@pytest.mark.parametrize("uri", BAD_EXPORTS)
def test_the_ui_entry_point_refuses_it_before_any_screen(uri):
    result = nbdtui(os.fsdecode(uri), timeout=30)
    assert_one_line_error(result, 2, "export name is not valid UTF-8")


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        (b"nbd://h\xff/", "invalid character '\\udcff' in host"),
        (b"nbd://u\xff@h/", "user name is not valid UTF-8"),
        (b"nbd://h/?x-a=\xff", "query parameter 'x-a' is not valid UTF-8"),
        (b"nbd://h/?tls-psk-file=/k\xff", "query parameter 'tls-psk-file' is not valid UTF-8"),
        (b"nbd+ssh://h/?socket=/r\xff", "query parameter 'socket' is not valid UTF-8"),
    ],
)
def test_other_parts_that_are_not_utf8_are_command_line_errors(uri, needle):
    result = nbdtui("info", os.fsdecode(uri))
    assert_one_line_error(result, 2, needle)


def test_a_socket_path_with_a_byte_that_is_not_utf8_works(nbdkit, tmp_path):
    server = nbdkit("pattern", "1M", unix=True)
    # A real path with the byte 0xff in it, leading to the server's socket.
    link = os.path.join(os.fsencode(tmp_path), b"nbd\xff.sock")
    os.symlink(os.fsencode(server.socket), link)
    for uri in (
        b"nbd+unix:///?socket=" + link,
        b"nbd+unix:///?socket=" + link.replace(b"\xff", b"%FF"),
        b"nbd:unix:" + link,
    ):
        result = nbdtui("info", "--json", os.fsdecode(uri))
        assert result.returncode == 0, result.stderr
        doc = result.json()
        assert doc["exports"][0]["export-size"] == 1024 * 1024
        # The printed URI percent-encodes the byte, and names the same socket.
        assert doc["exports"][0]["uri"] == "nbd+unix:///?socket=" + os.fsdecode(link).replace(
            "\udcff", "%FF"
        )
    dump = nbdtui("dump", "--length", "16", os.fsdecode(b"nbd+unix:///?socket=" + link))
    assert dump.returncode == 0, dump.stderr
    # nbdkit's pattern plugin: each 8-byte word holds its own offset, big-endian.
    assert dump.text.startswith("00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 08")
    shown = nbdtui("info", os.fsdecode(b"nbd+unix:///?socket=" + link))
    assert shown.returncode == 0, shown.stderr
    first = shown.text.splitlines()[0]
    assert "nbd\\xff.sock" in first  # the byte shown, not written raw to the terminal
    assert b"\xff" not in shown.stdout


def test_a_missing_socket_path_with_such_a_byte_is_a_one_line_error(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"gone\xff.sock")
    result = nbdtui("info", os.fsdecode(b"nbd+unix:///?socket=" + path))
    assert_one_line_error(result, 1, "no such socket", "gone\\xff.sock")
