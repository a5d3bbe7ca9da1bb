"""`list`, `info` and `journal` never print a server's string raw: export names,
descriptions and context names have their control characters made visible (as nbdinfo
prints names); `--json` keeps the exact strings, JSON-escaped. The server is nbdkit
with the exportname filter, whose names and description we choose."""

from __future__ import annotations

import json
import subprocess

from tests.support.cli_helpers import nbdtui
from tests.support.oracles import oracle
from tests.support.requirements import require
from tests.support.servers import only_exports

CLEAR = "a\x1b[2Jb"
FORGE = "fake\nnbdtui: all good"
DESCRIPTION = "\x1b]0;title\x07 desc\nforged line \u202e"
SHOWN_DESCRIPTION = "\\u001b]0;title\\u0007 desc\\u000aforged line \\u202e"


def hostile_server(nbdkit):
    return nbdkit(
        "memory",
        "1M",
        unix=True,
        filters=("exportname",),
        extra_options=(*only_exports(CLEAR, FORGE), f"exportdesc=fixed:{DESCRIPTION}"),
    )


def assert_no_control_bytes(out: bytes) -> None:
    text = out.decode()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, text


def test_list_escapes_names_and_descriptions(nbdkit):
    server = hostile_server(nbdkit)
    result = nbdtui("list", server.uri_for(""))
    assert result.returncode == 0, result.stderr
    assert_no_control_bytes(result.stdout)
    lines = result.text.splitlines()
    assert len(lines) == 2, lines  # one line per export: nothing forged
    assert lines[0].startswith("a\\u001b[2Jb ") and lines[0].endswith(SHOWN_DESCRIPTION)
    assert lines[1].startswith("fake\\u000anbdtui: all good ")
    # nbdinfo, the oracle, escapes the names the same way.
    theirs = oracle("nbdinfo", "--list", server.uri_for("")).decode()
    assert 'export="a\\u001b[2Jb":' in theirs


def test_info_escapes_the_name_and_description(nbdkit):
    server = hostile_server(nbdkit)
    result = nbdtui("info", server.uri_for(CLEAR))
    assert result.returncode == 0, result.stderr
    assert_no_control_bytes(result.stdout)
    lines = result.text.splitlines()
    assert lines[0] == f"export 'a\\u001b[2Jb' on {server.socket}"
    assert f"  description:  {SHOWN_DESCRIPTION}" in lines
    assert "  uri:          nbd+unix:///a%1B%5B2Jb?socket=" in result.text


def test_json_keeps_the_exact_strings(nbdkit):
    server = hostile_server(nbdkit)
    listed = nbdtui("list", "--json", server.uri_for(""))
    assert listed.returncode == 0, listed.stderr
    assert_no_control_bytes(listed.stdout)  # JSON escapes them itself
    exports = listed.json()["exports"]
    assert [e["export-name"] for e in exports] == [CLEAR, FORGE]
    assert {e["description"] for e in exports} == {DESCRIPTION}
    info = nbdtui("info", "--json", server.uri_for(FORGE))
    assert info.returncode == 0, info.stderr
    (export,) = info.json()["exports"]
    assert export["export-name"] == FORGE and export["description"] == DESCRIPTION
    theirs = json.loads(oracle("nbdinfo", "--json", server.uri_for(FORGE)))
    assert theirs["exports"][0]["export-name"] == FORGE


def test_an_error_line_quoting_the_server_stays_one_escaped_line(nbdkit):
    server = hostile_server(nbdkit)
    # exportname-strict: the server refuses a name it does not list; ours holds ESC.
    result = nbdtui("info", server.uri_for("nope\x1b[2J"))
    assert result.returncode == 1
    assert "\x1b" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbdtui: "), result.stderr


def test_info_escapes_meta_context_names(qemu_nbd, tmp_path):
    # qemu-nbd exports a qcow2 dirty bitmap as the context qemu:dirty-bitmap:NAME, and
    # the bitmap's name is whatever the image holds.
    image = tmp_path / "bitmap.qcow2"
    bitmap = "b\x1b[2J\x07"
    qemu_img = require("qemu-img")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(image), "1M"], check=True)
    subprocess.run([qemu_img, "bitmap", "--add", str(image), bitmap], check=True)
    server = qemu_nbd(image, fmt="qcow2", unix=True, extra=("-B", bitmap))
    result = nbdtui("info", server.uri)
    assert result.returncode == 0, result.stderr
    assert_no_control_bytes(result.stdout)
    assert "  contexts:     base:allocation, qemu:dirty-bitmap:b\\u001b[2J\\u0007" in result.text
    as_json = nbdtui("info", "--json", server.uri)
    assert f"qemu:dirty-bitmap:{bitmap}" in as_json.json()["exports"][0]["contexts"]
