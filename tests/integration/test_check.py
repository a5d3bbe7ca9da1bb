"""`nbdtui check`: many endpoints at once against real servers (nbdkit, qemu-nbd, sshd),
silent sockets and refused ports; inventories, exit statuses, JSON lines, the Prometheus
textfile, the connection bound of ``--jobs`` and one SSH connection per host."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.cli_helpers import Result, assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_nbdtui
from tests.support.oracles import oracle

MiB = 1024 * 1024


def check(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "nbdtui", "check", *args],
        capture_output=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr.decode())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def records(result: Result) -> dict[str, dict]:
    rows = [json.loads(line) for line in result.text.splitlines()]
    return {row["uri"]: row for row in rows}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingSilentServer:
    """A TCP server that accepts and never speaks, counting the connections open at once.

    Before counting a new connection it drops those whose client has closed (their FIN
    arrived before the new SYN: the client closes one before it opens the next)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.accepted = 0
        self.most = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _closed(self, conn: socket.socket) -> bool:
        try:
            return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _run(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            still = []
            for c in self.open:
                if self._closed(c):
                    c.close()
                else:
                    still.append(c)
            self.open = [*still, conn]
            self.accepted += 1
            self.most = max(self.most, len(self.open))

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.listener.close()
        for c in self.open:
            c.close()


@pytest.fixture
def silent():
    server = CountingSilentServer()
    yield server
    server.close()


# ---- endpoints on the command line, table and exit status -----------------------------------


def test_all_up_table_and_exit_0(nbdkit, qemu_nbd, make_image, tmp_path):
    a = nbdkit("memory", "1M")
    b = qemu_nbd(make_image(tmp_path, 2 * MiB), export="disk", readonly=True)
    result = check(a.uri, b.uri)
    assert result.returncode == 0, result.stderr
    lines = result.text.splitlines()
    assert lines[0].split() == ["STATUS", "ENDPOINT", "SIZE", "MODE", "LATENCY", "PROBLEM"]
    assert lines[1].split()[:4] == ["up", a.uri, "1.0", "MiB"]
    assert lines[1].split()[4] == "rw"
    assert lines[2].split()[:5] == ["up", b.uri, "2.0", "MiB", "ro"]
    assert re.search(r"\d+\.\d\d ms$", lines[2])


def test_json_lines_agree_with_nbdinfo(nbdkit, qemu_nbd, make_image, tmp_path):
    a = nbdkit("memory", "3M")
    b = qemu_nbd(make_image(tmp_path, MiB), export="disk", readonly=True)
    port = free_port()
    refused = f"nbd://127.0.0.1:{port}/x"
    result = check("--json", a.uri, b.uri, refused)
    assert result.returncode == 1
    rows = records(result)
    assert set(rows) == {a.uri, b.uri, refused}
    for server in (a, b):
        theirs = json.loads(oracle("nbdinfo", "--json", server.uri))["exports"][0]
        row = rows[server.uri]
        assert row["ok"] is True and row["step"] is None and row["error"] is None
        assert row["size"] == theirs["export-size"]
        assert row["read_only"] is theirs["is_read_only"]
        assert 0 < row["latency_ms"] < 5000
    assert rows[refused] == {
        "uri": refused,
        "ok": False,
        "step": "connect",
        "error": f"connection refused: nothing listens on {port}",
        "size": None,
        "read_only": None,
        "latency_ms": None,
    }


def test_bad_command_lines_exit_2():
    assert_one_line_error(run_nbdtui("check"), 2, "no endpoints to check")
    assert_one_line_error(run_nbdtui("check", "nbd://h:0x/"), 2)
    assert_one_line_error(run_nbdtui("check", "--jobs", "0", "nbd://h/"), 2, "--jobs")


def test_unreadable_inventory_is_one_line_exit_1(tmp_path):
    missing = tmp_path / "nope.txt"
    assert_one_line_error(run_nbdtui("check", "--inventory", str(missing)), 1, str(missing))


# ---- inventories -------------------------------------------------------------------------


def test_inventory_bad_lines_name_file_and_line_and_the_rest_still_run(nbdkit, tmp_path):
    good = nbdkit("memory", "1M")
    port = free_port()
    inventory = tmp_path / "fleet.txt"
    inventory.write_text(
        "# the fleet\n"
        f"{good.uri}   # primary\n"
        "nbd://bad host/disk\n"
        "\n"
        f"nbd://127.0.0.1:{port}/down\n"
        f"{good.uri_for('other')} colour=blue\n"
        f"{good.uri_for('x')} via=\n"
    )
    result = check("--json", "--inventory", str(inventory))
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3, errors
    assert errors[0].startswith(f"nbdtui: {inventory}:3: ")
    assert errors[1] == (f"nbdtui: {inventory}:6: unknown field 'colour=blue' (fields: via=)")
    assert errors[2] == f"nbdtui: {inventory}:7: via= needs a value"
    rows = records(result)
    assert set(rows) == {good.uri, f"nbd://127.0.0.1:{port}/down"}
    assert rows[good.uri]["ok"] is True
    assert rows[f"nbd://127.0.0.1:{port}/down"]["step"] == "connect"


def test_inventory_read_errors_alone_still_exit_1(nbdkit, tmp_path):
    good = nbdkit("memory", "1M")
    inventory = tmp_path / "fleet.txt"
    inventory.write_text(f"{good.uri}\nnot-a-uri\n")
    result = check("--inventory", str(inventory))
    assert result.returncode == 1  # every endpoint is up, but a line was not read
    assert f"{inventory}:2:" in result.stderr
    assert result.text.splitlines()[1].split()[0] == "up"


# ---- time and connection bounds --------------------------------------------------------


def test_silent_hosts_end_on_time_within_the_jobs_bound(silent):
    uris = [f"nbd://127.0.0.1:{silent.port}/e{i}" for i in range(12)]
    start = time.monotonic()
    result = check("--json", "--jobs", "3", "--connect-timeout", "0.4", *uris)
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    rows = records(result)
    assert len(rows) == 12
    for row in rows.values():
        assert row["ok"] is False and row["step"] == "greeting"
        assert "sent no NBD greeting within 0.4 s" in row["error"]
    assert silent.accepted == 12
    assert silent.most == 3
    # 12 endpoints, 3 at a time, 0.4 s each: 1.6 s of waiting (plus start-up)
    assert 1.6 <= elapsed < 10


# ---- Prometheus --------------------------------------------------------------------------

_SAMPLE = re.compile(r'^(nbdtui_[a-z_]+)(\{endpoint="((?:[^"\\]|\\.)*)"\})? (\S+)$')


def test_prometheus_textfile_is_replaced_atomically(nbdkit, tmp_path):
    up = nbdkit("memory", "1M")
    port = free_port()
    down = f"nbd://127.0.0.1:{port}/x"
    target = tmp_path / "nbd.prom"
    target.write_text("old\n")
    keep = tmp_path / "old-link.prom"
    os.link(target, keep)  # a rename leaves the old inode (and this link) untouched
    inventory = tmp_path / "inv"
    inventory.write_text(f'{up.uri}\n{down}\nnbd://"quoted"/ here\n')
    result = check("--inventory", str(inventory), "--prometheus", str(target))
    assert result.returncode == 1
    assert keep.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    text = target.read_text()
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert text.endswith("\n")
    samples: dict[tuple[str, str | None], str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            assert line.split()[3] == "gauge"
            continue
        m = _SAMPLE.match(line)
        assert m, line
        name, _, label, value = m.groups()
        assert name in helped
        float(value)
        samples[(name, label)] = value
    assert samples[("nbdtui_export_up", up.uri)] == "1"
    assert samples[("nbdtui_export_up", down)] == "0"
    assert samples[("nbdtui_export_size_bytes", up.uri)] == str(MiB)
    assert ("nbdtui_export_size_bytes", down) not in samples
    assert 0 < float(samples[("nbdtui_export_read_latency_seconds", up.uri)]) < 5
    assert samples[("nbdtui_check_inventory_errors", None)] == "1"


# ---- SSH ---------------------------------------------------------------------------------


def test_endpoints_via_one_ssh_host_share_one_ssh_connection(sshd, nbdkit, tmp_path):
    server = sshd()
    disks = [nbdkit("memory", f"{i + 1}M", unix=True) for i in range(3)]
    inventory = tmp_path / "inv"
    lines = []
    for i in range(20):
        disk = disks[i % 3]
        lines.append(f"nbd+unix:///e{i}?socket={disk.socket} via={server.alias}")
    lines.append(f"nbd+unix:///x?socket={disks[0].socket} via=no-such-alias.invalid")
    inventory.write_text("\n".join(lines) + "\n")
    result = check("--json", "--jobs", "8", "--inventory", str(inventory), env=server.env())
    assert result.returncode == 1, result.stderr
    rows = records(result)
    assert len(rows) == 21
    for i in range(20):
        row = rows[f"nbd+unix:///e{i}?socket={disks[i % 3].socket} via {server.alias}"]
        assert row["ok"] is True, row
        assert row["size"] == (i % 3 + 1) * MiB
    bad = rows[f"nbd+unix:///x?socket={disks[0].socket} via no-such-alias.invalid"]
    assert bad["ok"] is False and bad["step"] == "ssh"
    assert "no-such-alias.invalid" in bad["error"]
    assert server.output().count("Accepted publickey for") == 1


def test_ssh_host_key_changed_is_one_row_per_endpoint(sshd, nbdkit, tmp_path):
    server = sshd()
    disk = nbdkit("memory", "1M", unix=True)
    server.known_hosts.write_text("")  # unknown: refused without --ssh-accept-new
    uris = [server.nbd_ssh_uri(f"e{i}", disk.socket) for i in range(3)]
    result = check("--json", *uris, env=server.env())
    assert result.returncode == 1
    rows = records(result)
    for uri in uris:
        assert rows[uri]["step"] == "ssh"
        assert "is not in known_hosts" in rows[uri]["error"]
    assert Path(server.known_hosts).read_text() == ""
