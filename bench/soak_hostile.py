"""`bench/soak.py --hostile`: the command line against servers that flood, drip or
break the rules (issue 13), each case run --rounds times as a user would run it, with
its exit status, wall-clock time, peak RSS and message in a table.

The servers are the scenario-driven fakes of ``tests/support/fakes.py`` (real sockets on
127.0.0.1) and, for a write whose every request fails, nbdkit's error filter on a Unix
socket. A case passes when the exit status and the message are the expected ones and
the peak RSS stays under --max-rss; the exit status is 1 when one does not.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import fakes  # noqa: E402
from tests.support.cli_helpers import Measured, nbdtui_measured  # noqa: E402

MiB = 1024 * 1024


@dataclass
class Case:
    name: str
    handshake: fakes.HandshakeScenario | None
    scenario: fakes.Scenario | None
    args: Callable[[str, Path], list[str]]  # (uri, temporary directory) -> arguments
    status: int
    needle: str  # in the first line of stderr, or of stdout when it exits 0


def cases() -> list[Case]:
    size = 64 * MiB
    return [
        Case(
            "list: endless NBD_REP_SERVER",
            fakes.endless_list,
            None,
            lambda uri, _: ["list", uri, "--connect-timeout", "60"],
            1,
            "cap on the replies to one option",
        ),
        Case(
            "info: endless NBD_REP_META_CONTEXT",
            fakes.endless_contexts,
            None,
            lambda uri, _: ["info", uri, "--connect-timeout", "60"],
            1,
            "cap on the replies to one option",
        ),
        Case(
            "list: 100,000 exports",
            fakes.listing(100_000),
            None,
            lambda uri, _: ["list", uri],
            0,
            "export-000000",
        ),
        Case(
            "list: export list stalls after 1,500",
            fakes.listing(2000, stall_after=1500),
            None,
            lambda uri, _: ["list", uri, "--connect-timeout", "2"],
            1,
            "receiving the export list",
        ),
        Case(
            "info: READ_ONLY without HAS_FLAGS",
            fakes.read_only_without_has_flags,
            None,
            lambda uri, _: ["info", uri],
            0,
            "export ''",
        ),
        Case(
            "write: READ_ONLY without HAS_FLAGS",
            fakes.read_only_without_has_flags,
            None,
            lambda uri, tmp: ["write", uri, str(_input(tmp, 4096))],
            1,
            "nbdtui: warning: server",
        ),
        Case(
            "read 16M --timeout 3: a byte every 0.3 s",
            fakes.plain_go(size),
            fakes.drip,
            lambda uri, tmp: ["read", uri, "--length", "16M", "--timeout", "3", "-o", _out(tmp)],
            1,
            "timed out after 3 s",
        ),
        Case(
            "read 64M: 1-byte extents (alternating)",
            fakes.with_allocation(size),
            fakes.tiny_extents(1),
            lambda uri, tmp: ["read", uri, "-o", _out(tmp)],
            0,
            "",
        ),
        Case(
            "read 64M: 1-byte extents (runs of 4096)",
            fakes.with_allocation(size),
            fakes.tiny_extents(4096),
            lambda uri, tmp: ["read", uri, "-o", _out(tmp)],
            0,
            "",
        ),
        Case(
            "map 64M: 1-byte extents (runs of 4096)",
            fakes.with_allocation(size),
            fakes.tiny_extents(4096),
            lambda uri, _: ["map", uri],
            0,
            "0        4096    0  data",
        ),
    ]


def _more_cases() -> list[Case]:
    """Those of the editor's and copy's block status (finishing issue 13)."""
    ids: list[int] = []  # the meta contexts a client asked for (ids 1, 2...)
    bitmap = "qemu:dirty-bitmap:b0"
    return [
        Case(
            "write 16M --timeout 3: payload taken a byte every 0.3 s",
            fakes.plain_go(64 * MiB),
            fakes.sip,
            lambda uri, tmp: ["write", uri, str(_input(tmp, 16 * MiB)), "--timeout", "3"],
            1,
            "timed out after 3 s",
        ),
        Case(
            "map --context x2 1M: 1-byte extents (alternating)",
            fakes.with_contexts(MiB, ids),
            fakes.tiny_extents(1, ids),
            lambda uri, _: ["map", "--context", "base:allocation", "--context", bitmap, uri],
            0,
            "0           1    0  data         0  clean",
        ),
        Case(
            "copy 2M to a file: 1-byte extents (alternating)",
            fakes.with_allocation(2 * MiB),
            fakes.tiny_extents(1),
            lambda uri, tmp: ["copy", uri, _fresh(tmp)],
            0,
            "",
        ),
        Case(
            "copy --context 2M: 1-byte dirty extents (alternating)",
            fakes.with_contexts(2 * MiB, ids),
            fakes.tiny_extents(1, ids),
            lambda uri, tmp: ["copy", "--context", bitmap, uri, _fresh(tmp)],
            0,
            "",
        ),
        Case(
            "scan 4M: 1-byte extents (alternating)",
            fakes.with_allocation(4 * MiB),
            fakes.tiny_extents(1),
            lambda uri, _: ["scan", uri],
            0,
            "",
        ),
    ]


def _input(tmp: Path, size: int) -> Path:
    path = tmp / f"in-{size}.bin"
    if not path.exists():
        path.write_bytes(os.urandom(size))
    return path


def _out(tmp: Path) -> str:
    return str(tmp / "out.bin")


def _fresh(tmp: Path) -> str:
    """A destination that does not exist yet (copy creates it with SRC's size)."""
    path = tmp / "copy.bin"
    path.unlink(missing_ok=True)
    return str(path)


def _first_line(run: Measured) -> str:
    text = run.stderr.strip() or run.text.strip()
    return text.splitlines()[0] if text else ""


def _row(name: str, run: Measured, ok: bool) -> str:
    message = _first_line(run).replace("|", "\\|")
    if len(message) > 110:
        message = message[:107] + "..."
    mib = run.peak_rss / MiB
    mark = "" if ok else " **FAILED**"
    return f"| {name}{mark} | {run.returncode} | {run.seconds:.1f} s | {mib:.0f} MiB | {message} |"


async def _fake_cases(tmp: Path, rounds: int, max_rss: int, rows: list[str]) -> bool:
    ok = True
    for case in cases() + _more_cases():
        servers = fakes.FakeNbdServers()
        try:
            uri = await servers.start(case.scenario, handshake=case.handshake)
            for _ in range(rounds):
                run = await asyncio.to_thread(nbdtui_measured, *case.args(uri, tmp), timeout=600)
                text = run.stderr if case.status else run.text
                good = (
                    run.returncode == case.status
                    and case.needle in text
                    and "Traceback" not in run.stderr
                    and run.peak_rss < max_rss
                )
                ok &= good
                rows.append(_row(case.name, run, good))
                print(rows[-1], flush=True)
        finally:
            await servers.close()
    return ok


def _eio_write(tmp: Path, rounds: int, max_rss: int, rows: list[str]) -> bool:
    """`write` of 16 MiB to an export whose every write fails (nbdkit, Unix socket)."""
    if not shutil.which("nbdkit"):
        print("soak: nbdkit is not installed: the EIO write case is left out")
        return True
    sock = tmp / "eio.sock"
    server = subprocess.Popen(
        ["nbdkit", "-f", "--exit-with-parent", "-U", str(sock), "--filter=error", "memory",
         "64M", "error-pwrite=EIO", "error-pwrite-rate=100%"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ok = True
        source = _input(tmp, 16 * MiB)
        for _ in range(rounds):
            run = nbdtui_measured("write", f"nbd+unix:///?socket={sock}", str(source))
            lines = run.stderr.strip().splitlines()
            good = (
                run.returncode == 1
                and len(lines) == 1
                and "EIO" in lines[0]
                and run.seconds < 3
                and run.peak_rss < max_rss
            )
            ok &= good
            rows.append(_row("write 16M: every write fails with EIO", run, good))
            print(rows[-1], flush=True)
        return ok
    finally:
        server.terminate()
        server.wait()


def run_hostile(rounds: int, max_rss_mib: int) -> int:
    max_rss = max_rss_mib * MiB
    rows = [
        "| case | exit | time | peak RSS | message |",
        "| --- | --- | --- | --- | --- |",
    ]
    print("\n".join(rows), flush=True)
    with tempfile.TemporaryDirectory(prefix="nbdtui-hostile-") as name:
        tmp = Path(name)
        ok = asyncio.run(_fake_cases(tmp, rounds, max_rss, rows))
        ok &= _eio_write(tmp, rounds, max_rss, rows)
    print("soak --hostile:", "every case held" if ok else "some cases FAILED")
    return 0 if ok else 1
