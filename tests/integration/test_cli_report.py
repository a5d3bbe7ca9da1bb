"""`nbdtui info` and `nbdtui list` against real servers, with nbdinfo as the oracle."""

from __future__ import annotations

import pytest

from tests.support.cli_helpers import assert_one_line_error, nbdtui
from tests.support.oracles import SHARED_KEYS, oracle


def assert_info_agrees(uri: str, *, except_keys: tuple[str, ...] = ()) -> dict:
    ours = nbdtui("info", "--json", uri)
    assert ours.returncode == 0, ours.stderr
    theirs = __import__("json").loads(oracle("nbdinfo", "--json", uri))
    doc = ours.json()
    for key in ("protocol", "TLS", "structured"):
        assert doc[key] == theirs[key], key
    (mine,), (ref,) = doc["exports"], theirs["exports"]
    for key in SHARED_KEYS:
        if key in except_keys:
            continue
        assert mine.get(key) == ref.get(key), (key, mine.get(key), ref.get(key))
    return mine


def test_info_json_matches_nbdinfo_nbdkit_memory(nbdkit):
    server = nbdkit("memory", "3M")
    mine = assert_info_agrees(server.uri)
    assert mine["export-size"] == 3 * 1024 * 1024
    assert mine["can_trim"] is True


def test_info_json_matches_nbdinfo_nbdkit_readonly_unix(nbdkit):
    server = nbdkit("pattern", "1M", unix=True, extra_options=("-r",))
    mine = assert_info_agrees(server.uri)
    assert mine["is_read_only"] is True


def test_info_json_matches_nbdinfo_nbdkit_blocksize(nbdkit):
    server = nbdkit(
        "memory",
        "1M",
        filters=("blocksize-policy",),
        extra_options=(
            "blocksize-minimum=4096",
            "blocksize-preferred=8192",
            "blocksize-maximum=65536",
        ),
    )
    mine = assert_info_agrees(server.uri)
    assert mine["block_size_minimum"] == 4096
    assert mine["block_size_preferred"] == 8192
    assert mine["block_size_maximum"] == 65536


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_info_json_matches_nbdinfo_qemu_nbd(qemu_nbd, make_image, tmp_path, fmt):
    image = make_image(tmp_path, 4 * 1024 * 1024, fmt=fmt)
    server = qemu_nbd(image, fmt=fmt, export="disk")
    mine = assert_info_agrees(server.uri)
    assert mine["export-name"] == "disk"
    assert mine["export-size"] == 4 * 1024 * 1024
    # qemu-nbd advertises its block sizes: the maximum payload is 32 MiB.
    assert mine["block_size_maximum"] == 32 * 1024 * 1024


def test_info_json_matches_nbdinfo_nbd_server(nbd_server, tmp_path):
    disk = tmp_path / "a.img"
    disk.write_bytes(b"\1" * 65536)
    ro = tmp_path / "b.img"
    ro.write_bytes(b"\2" * 8192)
    server = nbd_server({"alpha": {"file": disk}, "beta": {"file": ro, "readonly": True}})
    # nbd-server 3.24 answers NBD_OPT_INFO with size 0 (GO gives the true size) and
    # nbdinfo believes INFO: the file itself is the oracle for the size.
    mine = assert_info_agrees(server.uri_for("alpha"), except_keys=("export-size",))
    assert mine["export-size"] == 65536
    mine = assert_info_agrees(server.uri_for("beta"), except_keys=("export-size",))
    assert mine["is_read_only"] is True
    assert mine["export-size"] == 8192


def test_info_human_readable(nbdkit):
    server = nbdkit("memory", "2M")
    result = nbdtui("info", server.uri)
    assert result.returncode == 0, result.stderr
    assert "2097152 (2.0 MiB)" in result.text
    assert "base:allocation" in result.text
    assert "read-only:    no" in result.text


def test_list_names_every_export_nbdkit(nbdkit):
    server = nbdkit(
        "memory",
        "1M",
        filters=("exportname",),
        extra_options=("exportname=first", "exportname=second", "exportname-list=explicit"),
    )
    ours = nbdtui("list", "--json", server.uri)
    assert ours.returncode == 0, ours.stderr
    names = [e["export-name"] for e in ours.json()["exports"]]
    theirs = __import__("json").loads(oracle("nbdinfo", "--list", "--json", server.uri))
    assert names == [e["export-name"] for e in theirs["exports"]] == ["first", "second"]
    human = nbdtui("list", server.uri)
    assert "first" in human.text and "second" in human.text


def test_list_nbd_server_with_readonly_flag(nbd_server, tmp_path):
    files = {}
    for name, size in (("one", 4096), ("two", 8192), ("three", 12288)):
        files[name] = tmp_path / f"{name}.img"
        files[name].write_bytes(bytes(size))
    server = nbd_server(
        {
            "one": {"file": files["one"]},
            "two": {"file": files["two"], "readonly": True},
            "three": {"file": files["three"]},
        }
    )
    doc = nbdtui("list", "--json", server.uri).json()
    by_name = {e["export-name"]: e for e in doc["exports"]}
    assert set(by_name) == {"one", "two", "three"}
    assert by_name["two"]["is_read_only"] is True
    assert by_name["one"]["is_read_only"] is False
    # nbd-server misreports 0 in NBD_OPT_INFO: nbdtui must show the true sizes.
    assert [by_name[n]["export-size"] for n in ("one", "two", "three")] == [4096, 8192, 12288]


def test_legacy_string_reaches_same_export(qemu_nbd, make_image, tmp_path):
    image = make_image(tmp_path, 1024 * 1024, content=b"legacy!" * 100)
    tcp = qemu_nbd(image, export="disk")
    uri_doc = nbdtui("info", "--json", tcp.uri).json()
    legacy = nbdtui("info", "--json", f"nbd:127.0.0.1:{tcp.port}:exportname=disk").json()
    assert legacy["exports"][0]["export-size"] == uri_doc["exports"][0]["export-size"]
    assert legacy["exports"][0]["uri"] == uri_doc["exports"][0]["uri"]
    unix = qemu_nbd(image, export="disk", unix=True)
    via_unix = nbdtui("info", "--json", f"nbd:unix:{unix.socket}:exportname=disk")
    assert via_unix.returncode == 0, via_unix.stderr
    assert via_unix.json()["exports"][0]["export-size"] == 1024 * 1024


def test_missing_export_is_exit_1_with_clear_message(qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(make_image(tmp_path, 65536), export="disk")
    result = nbdtui("info", server.uri_for("nope"))
    assert_one_line_error(result, 1, "export 'nope' not found", f"127.0.0.1:{server.port}")


def test_refused_connection_is_exit_1(unused_tcp_port):
    result = nbdtui("info", f"nbd://127.0.0.1:{unused_tcp_port}/x")
    assert_one_line_error(result, 1, "refused", f"127.0.0.1:{unused_tcp_port}")


def test_bad_endpoint_is_exit_2():
    assert_one_line_error(nbdtui("info", "nbdx://host/x"), 2, "unknown scheme 'nbdx'")
    missing_colon = nbdtui("info", "nbd//bad")
    assert_one_line_error(missing_colon, 2, "did you mean nbd://bad?")
    assert "nbd://nbd//" not in missing_colon.stderr
    assert_one_line_error(nbdtui("info", "nbd+unix:///x"), 2, "socket")


def test_bad_option_is_exit_2():
    result = nbdtui("info", "--connect-timeout", "-3", "nbd://localhost")
    assert_one_line_error(result, 2, "connect-timeout")


def test_version_and_help_list_every_command():
    assert nbdtui("--version").text.startswith("nbdtui ")
    text = nbdtui("--help").text
    for command in ("info", "list", "map", "dump", "read", "write", "flush", "trim", "zero"):
        assert f"    {command} " in text, command
