#!/usr/bin/env python3
"""`nbdtui check` at fleet scale: 1,000 endpoints on loopback, and 20 behind one SSH host.

Fleet: one helper process serves ``--live`` exports from nbdtui's embedded server (one
listening socket each, 1 MiB in memory) and ``--silent`` sockets that accept and never
speak; ``--refused`` more ports have nothing listening. The helper counts the
connections open at once across all its sockets (a connection the client has closed is
dropped before a new one is counted). ``nbdtui check --json --jobs N --connect-timeout T
--inventory FILE`` then runs as a child process: its wall time, peak RSS (``wait4``) and
the helper's count are reported, and every endpoint's row is checked (live ones up,
silent ones failing at the greeting, refused ones at connect).

A silent endpoint holds its slot for the connect timeout, so the run cannot end before
``ceil(silent / jobs) * T``; the default T (2 s) is what a cron job on a LAN would use.

SSH (``--ssh 20``): the test suite's sshd fixture and nbdkit on a Unix socket; that many
endpoints ``via=`` its ``~/.ssh/config`` alias; the sshd log counts the logins.

Compare (``--compare 3``): the live endpoints alone, checked by ``nbdtui check`` and by
today's shell loop of ``nbdinfo --json`` one at a time, taking turns that many runs;
the ratio is the loop's time over nbdtui's (>1: nbdtui is faster).

    python bench/bench_check.py [--live 300] [--silent 350] [--refused 350] [--jobs 64]
                                [--connect-timeout 2] [--ssh 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ---- the helper process: embedded servers and silent sockets ------------------------------


async def _serve(live: int, silent: int) -> None:
    from nbdtui.server import MemoryBackend, listener, serve

    open_now = 0
    most = 0
    accepted = 0

    def opened() -> None:
        nonlocal open_now, most, accepted
        open_now += 1
        accepted += 1
        most = max(most, open_now)

    def closed() -> None:
        nonlocal open_now
        open_now -= 1

    made, lost = listener._Client.connection_made, listener._Client.connection_lost

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        opened()
        made(self, transport)

    def connection_lost(self, exc):  # type: ignore[no-untyped-def]
        closed()
        lost(self, exc)

    listener._Client.connection_made = connection_made  # type: ignore[method-assign]
    listener._Client.connection_lost = connection_lost  # type: ignore[method-assign]

    backend = MemoryBackend(1 << 20)
    servers = [await serve({"disk": backend}) for _ in range(live)]

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened()
        try:
            while await reader.read(4096):
                pass
        finally:
            closed()
            writer.close()

    quiet = [await asyncio.start_server(hold, "127.0.0.1", 0) for _ in range(silent)]
    ports = [s.sockets[0].getsockname()[1] for s in quiet]
    print(json.dumps({"live": [s.uri for s in servers], "silent": ports}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    print(json.dumps({"most": most, "accepted": accepted}), flush=True)


# ---- the bench ---------------------------------------------------------------------------


def _refused_ports(n: int) -> list[socket.socket]:
    """Sockets bound to distinct ports that do not listen: connections are refused."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    return held


def _run_check(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in KiB and stdout of ``nbdtui check ARGS``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbdtui", "check", *args],
            stdout=out,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        _, _status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = 0
        out.seek(0)
        return elapsed, usage.ru_maxrss, out.read().decode()


def _nbdinfo_loop(uris: list[str]) -> float:
    start = time.perf_counter()
    for uri in uris:
        subprocess.run(["nbdinfo", "--json", uri], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def fleet(
    live: int, silent: int, refused: int, jobs: int, timeout: float, compare: int = 0
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    helper = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(live), str(silent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert helper.stdout is not None and helper.stdin is not None
        ready = json.loads(helper.stdout.readline())
        silent_uris = [f"nbd://127.0.0.1:{p}/s" for p in ready["silent"]]
        held = _refused_ports(refused)
        refused_uris = [f"nbd://127.0.0.1:{s.getsockname()[1]}/r" for s in held]
        expected = {uri: None for uri in ready["live"]}
        expected.update({uri: "greeting" for uri in silent_uris})
        expected.update({uri: "connect" for uri in refused_uris})
        uris = list(expected)
        with tempfile.NamedTemporaryFile("w", suffix=".inv", delete=False) as inv:
            inv.write("\n".join(uris) + "\n")
        args = ["--json", "--jobs", str(jobs), "--connect-timeout", str(timeout)]
        elapsed, rss, out = _run_check([*args, "--inventory", inv.name], env)
        os.unlink(inv.name)
        ours, theirs = [], []
        for _ in range(compare):
            with tempfile.NamedTemporaryFile("w", suffix=".inv", delete=False) as inv:
                inv.write("\n".join(ready["live"]) + "\n")
            ours.append(_run_check(["--jobs", str(jobs), "--inventory", inv.name], env)[0])
            os.unlink(inv.name)
            theirs.append(_nbdinfo_loop(ready["live"]))
        helper.stdin.write("stats\n")
        helper.stdin.flush()
        stats = json.loads(helper.stdout.readline())
        for s in held:
            s.close()
    finally:
        helper.kill()
        helper.wait()
    rows = {row["uri"]: row for row in map(json.loads, out.splitlines())}
    wrong = [u for u, step in expected.items() if rows.get(u, {}).get("step", "missing") != step]
    outcome = Counter("up" if r["ok"] else r["step"] for r in rows.values())
    floor = -(-silent // jobs) * timeout
    print(
        f"fleet: {len(uris)} endpoints ({live} live, {silent} silent, {refused} refused), "
        f"--jobs {jobs}, --connect-timeout {timeout:g}"
    )
    print(f"  wall time          {elapsed:6.2f} s  (floor set by the silent ones: {floor:.1f} s)")
    print(
        f"  most connections   {stats['most']:6d}    (--jobs {jobs}; accepted {stats['accepted']})"
    )
    print(f"  peak RSS           {rss / 1024:6.1f} MiB")
    print(f"  outcomes           {dict(outcome)}; rows not as expected: {len(wrong)}")
    if compare:
        a, b = statistics.median(ours), statistics.median(theirs)
        print(
            f"compare ({live} live endpoints, median of {compare}): nbdtui check {a:.2f} s, "
            f"nbdinfo loop {b:.2f} s, ratio {b / a:.1f}x"
        )


def ssh(count: int, jobs: int) -> None:
    from tests.support.servers import ServerFactory

    with tempfile.TemporaryDirectory() as tmp:
        factory = ServerFactory(Path(tmp))
        try:
            server = factory.sshd()
            disk = factory.nbdkit("memory", "1M", unix=True)
            inv = Path(tmp) / "ssh.inv"
            inv.write_text(
                "".join(
                    f"nbd+unix:///e{i}?socket={disk.socket} via={server.alias}\n"
                    for i in range(count)
                )
            )
            env = {**server.env(), "PYTHONPATH": str(ROOT)}
            elapsed, rss, out = _run_check(
                ["--json", "--jobs", str(jobs), "--inventory", str(inv)], env
            )
            rows = [json.loads(line) for line in out.splitlines()]
            logins = server.output().count("Accepted publickey for")
        finally:
            factory.stop_all()
    up = sum(r["ok"] for r in rows)
    print(f"ssh: {count} endpoints via one SSH host, --jobs {jobs}")
    print(
        f"  wall time {elapsed:.2f} s, peak RSS {rss / 1024:.1f} MiB, up {up}/{count}, "
        f"SSH logins {logins}"
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        asyncio.run(_serve(int(sys.argv[2]), int(sys.argv[3])))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--live", type=int, default=300)
    p.add_argument("--silent", type=int, default=350)
    p.add_argument("--refused", type=int, default=350)
    p.add_argument("--jobs", type=int, default=64)
    p.add_argument("--connect-timeout", type=float, default=2.0)
    p.add_argument("--ssh", type=int, default=20, help="endpoints via one SSH host (0: skip)")
    p.add_argument("--compare", type=int, default=0, help="runs against an nbdinfo loop")
    a = p.parse_args()
    fleet(a.live, a.silent, a.refused, a.jobs, a.connect_timeout, a.compare)
    if a.ssh:
        ssh(a.ssh, min(a.jobs, 16))


if __name__ == "__main__":
    main()
