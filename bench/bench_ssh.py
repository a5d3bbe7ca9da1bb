#!/usr/bin/env python3
"""Sequential read through SSH: nbdtui vs nbdcopy over `ssh -L`.

Starts a private OpenSSH sshd on 127.0.0.1 (the test suite's fixture: its own host key,
client key, ``~/.ssh/config`` alias and known_hosts in a temporary HOME) and nbdkit's
``pattern`` plugin on a Unix socket, then reads SIZE bytes of it to /dev/null:

- **nbdtui**: ``nbdtui read nbd+ssh://ALIAS/?socket=SOCK -o /dev/null``: the system
  ``ssh -N -L`` forwarding a private socket (started while Python imports the command;
  AES-GCM first unless ssh_config sets Ciphers) and the threaded bulk engine over it
  (``nbdtui.cli.open_export``); and the same command on the asyncssh transport (one
  direct-streamlocal channel per NBD connection, on the event loop), as before;
- **nbdcopy over ssh -L**: ``ssh -N -L LOCAL:SOCK ALIAS`` forwarding a private socket
  (in a 0700 directory) to the same remote socket, then ``nbdcopy nbd+unix:///?socket=
  LOCAL null:``; once with OpenSSH's default cipher (chacha20-poly1305) and once with
  ``-c aes128-gcm@openssh.com``.

Two views (the contenders take turns within a run), same connections and requests:

- *end to end*: what a user waits for; nbdtui's time includes starting Python, the
  imports, ssh logging in and the forward coming up (or importing asyncssh and logging
  in); the ssh -L time includes starting ssh, logging in and the forward coming up;
- *transfer only*: nbdtui reading the open export as ``nbdtui read`` does (through the
  system ssh's forward, or through asyncssh), vs nbdcopy over an established forward.

Ratios are nbdtui's throughput over the other's (>1.0: nbdtui is faster): the median of
the per-run ratios, and each run. Usage:

    python bench/bench_ssh.py [--size 256M] [--connections 4] [--requests 16] [--runs 3]

Measured 2026-12-05 on a 2-CPU VM shared with other work (``uptime`` load averages
2.4-4.7 during the runs: the figures are noisy), 4 connections x 16 requests:

256 MiB, 7 runs (load 3.58 -> 4.71); MiB/s nbdtui / nbdcopy, median ratio, each run::

    end to end, vs ssh -L default cipher   260.0 / 239.8  1.06x  1.13 1.02 0.88 1.28 1.06 0.88 1.18
    end to end, vs ssh -L aes128-gcm       260.0 / 301.5  0.85x  0.81 0.77 1.07 0.85 1.44 0.77 0.86
      nbdtui on asyncssh, vs aes128-gcm    192.7 / 301.5  0.76x  0.68 0.74 0.79 0.79 0.76 0.76 0.48
    transfer, vs ssh -L default cipher     383.3 / 249.6  1.54x  1.96 1.51 1.45 1.54 1.40 1.68 1.63
    transfer, vs ssh -L aes128-gcm         383.3 / 374.5  1.15x  1.31 1.18 0.81 1.15 0.87 1.33 0.85
      nbdtui on asyncssh, vs aes128-gcm    362.8 / 374.5  1.11x  1.37 1.11 0.83 1.17 0.77 1.54 0.64

Two more 7-run series at 256 MiB (load 1.3-2.3 and 2.4-4.4), end to end vs ssh -L
aes128-gcm: 0.90x and 0.84x through the system ssh, 0.79x and 0.73x on asyncssh; vs the
default cipher 1.14x and 1.09x. 1 GiB, 3 runs (load 6.3-6.5): end to end 1.02x vs
aes128-gcm (1.12 1.02 0.78), 1.56x vs the default cipher; asyncssh 0.71x.

Where the end-to-end time goes (256 MiB, one run traced): Python up at 36-45 ms, ssh
started at 73-91 ms (``ssh -G`` 7-9 ms of it), forward listening 230 ms later, the first
NBD connection 45-50 ms later and the other three 0-45 ms after that (sshd does not set
TCP_NODELAY on non-interactive sessions: small handshake replies wait for a delayed ACK;
libnbd pays it too), then the transfer. Python's start and imports (~80 ms before ssh
can start, ~100 ms of CPU while it logs in) are what a 256 MiB read still pays over
nbdcopy; at 1 GiB they are amortized. OpenSSH 9.2's default key exchange,
sntrup761x25519 (post-quantum), costs 70 ms of that login (``ssh -L`` up in 167 ms,
94 ms with ``KexAlgorithms=curve25519-sha256``, what asyncssh negotiates with this
server); nbdtui keeps OpenSSH's choice.

Those series gave nbdcopy ``--connections=4`` alone, which it lowers to its threads (the
2 cores): 2 connections. Since then it also gets ``--threads`` (side_by_side.
nbdcopy_flags). Merged code, load 1.7-1.8, 256 MiB, 3 runs, median ratio (each run)::

                                          4 x 16, both 4           2 x 16, both 2
    end to end, vs default cipher         1.26x (1.32 1.26 1.15)   1.22x (1.09 1.22 1.22)
    end to end, vs aes128-gcm             1.15x (1.12 1.38 1.15)   0.86x (0.95 0.86 0.83)
      nbdtui on asyncssh, vs aes128-gcm   1.02x                    0.86x
    transfer, vs default cipher           1.95x                    1.56x
    transfer, vs aes128-gcm               1.52x (1.12 1.52 1.71)   1.32x (1.14 1.32 1.59)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from side_by_side import nbdcopy_flags  # noqa: E402

from nbdtui.present.sizes import parse_size  # noqa: E402
from tests.support.servers import ServerFactory, SshServer  # noqa: E402

MiB = 1024 * 1024
GCM = "aes128-gcm@openssh.com"


# `nbdtui ARGS` with nbd+ssh on asyncssh, as before the system ssh took bulk commands.
ASYNCSSH_MAIN = (
    "import sys; import nbdtui.cli.open_export as o; o.SYSTEM_SSH = False; "
    "from nbdtui.cli import main; sys.exit(main(sys.argv[1:]))"
)


def run_timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


@contextlib.contextmanager
def ssh_forward(sshd: SshServer, remote: str, cipher: str | None) -> Iterator[str]:
    """``ssh -L`` from a socket in a fresh 0700 directory to ``remote``; yields its path."""
    private = Path(tempfile.mkdtemp(prefix="nbdtui-fwd-"))
    private.chmod(0o700)
    local = private / "nbd.sock"
    options = ["-N", "-o", "ExitOnForwardFailure=yes", "-L", f"{local}:{remote}"]
    if cipher:
        options += ["-c", cipher]
    proc = subprocess.Popen(
        sshd.ssh_args(options=options), env=sshd.env(), stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not local.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: ssh -L did not come up")
            time.sleep(0.005)
        yield str(local)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(private, ignore_errors=True)


def nbdcopy_cmd(socket: str, connections: int, requests: int) -> list[str]:
    return [
        "nbdcopy",
        *nbdcopy_flags(connections, requests),
        f"nbd+unix:///?socket={socket}",
        "null:",
    ]


def forward_end_to_end(sshd: SshServer, remote: str, cipher: str | None, c: int, r: int) -> float:
    start = time.perf_counter()
    with ssh_forward(sshd, remote, cipher) as local:
        subprocess.run(nbdcopy_cmd(local, c, r), check=True, env=sshd.env())
        elapsed = time.perf_counter() - start
    return elapsed


async def library_read(uri: str, connections: int, window: int, *, system_ssh: bool) -> float:
    """Seconds for nbdtui to read the whole export to /dev/null once it is open, as
    ``nbdtui read`` does (bulk engine): through the system ssh's forward (the CLI's
    default) or through asyncssh (the library's transport)."""
    from nbdtui.cli import open_export
    from nbdtui.cli.progress import _Silent
    from nbdtui.cli.transfer import read_to_file
    from nbdtui.client.options import ExportOptions
    from nbdtui.uri import parse

    open_export.SYSTEM_SSH = system_ssh
    options = ExportOptions(connections=connections, window=window)
    async with open_export.open_export(parse(uri), options) as export:
        fd = os.open(os.devnull, os.O_WRONLY)
        try:
            start = time.perf_counter()
            await read_to_file(export, 0, export.size, fd, _Silent())
            return time.perf_counter() - start
        finally:
            os.close(fd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="256M")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    size = parse_size(opts.size)
    for tool in ("nbdkit", "nbdcopy", "ssh", "sshd"):
        if not shutil.which(tool, path=os.environ["PATH"] + ":/usr/sbin:/sbin"):
            raise SystemExit(f"bench: {tool} is not installed")
    c, r = opts.connections, opts.requests
    with tempfile.TemporaryDirectory(prefix="nbdtui-bench-ssh-") as tmpdir:
        factory = ServerFactory(Path(tmpdir))
        try:
            sshd = factory.sshd()
            nbd = factory.nbdkit("pattern", f"size={size}", unix=True, extra_options=("-r",))
            assert nbd.socket is not None
            env = sshd.env()
            uri = sshd.nbd_ssh_uri("", nbd.socket, use_alias=True)
            read = ["read", uri, "-o", "/dev/null", "--connections", str(c), "--window", str(r)]
            cli = [sys.executable, "-m", "nbdtui", *read]
            # the same command on the asyncssh transport (the CLI's only one before)
            cli_asyncssh = [sys.executable, "-c", ASYNCSSH_MAIN, *read]
            os.environ["HOME"] = str(sshd.home)  # for the in-process library runs
            os.environ.pop("SSH_AUTH_SOCK", None)
            times: dict[str, list[float]] = collections.defaultdict(list)
            # Contenders take turns within each run, so that a load change on the machine
            # hits all of them alike.
            with (
                ssh_forward(sshd, nbd.socket, None) as fwd_default,
                ssh_forward(sshd, nbd.socket, GCM) as fwd_gcm,
            ):
                for _ in range(opts.runs):
                    times["cli"].append(run_timed(cli, env))
                    for label, cipher in (("default", None), ("gcm", GCM)):
                        elapsed = forward_end_to_end(sshd, nbd.socket, cipher, c, r)
                        times[f"e2e {label}"].append(elapsed)
                    times["cli asyncssh"].append(run_timed(cli_asyncssh, env))
                    for system_ssh in (True, False):
                        elapsed = asyncio.run(library_read(uri, c, r, system_ssh=system_ssh))
                        times[f"library {system_ssh}"].append(elapsed)
                    for label, local in (("default", fwd_default), ("gcm", fwd_gcm)):
                        elapsed = run_timed(nbdcopy_cmd(local, c, r), env)
                        times[f"transfer {label}"].append(elapsed)
                    times["direct"].append(run_timed(nbdcopy_cmd(nbd.socket, c, r), env))
            rows = [
                ("end to end, ssh -L default cipher", "cli", "e2e default"),
                (f"end to end, ssh -L {GCM}", "cli", "e2e gcm"),
                (f"  nbdtui on asyncssh vs ssh -L {GCM}", "cli asyncssh", "e2e gcm"),
                ("transfer only, ssh -L default cipher", "library True", "transfer default"),
                (f"transfer only, ssh -L {GCM}", "library True", "transfer gcm"),
                (f"  nbdtui on asyncssh vs ssh -L {GCM}", "library False", "transfer gcm"),
            ]
        finally:
            factory.stop_all()

    print(
        f"sequential read of {opts.size} through SSH: nbdtui vs nbdcopy over ssh -L "
        f"({c} connections x {r} requests, {opts.runs} runs, {os.cpu_count()} CPUs)"
    )
    print(f"{'':<50} {'nbdtui':>11} {'nbdcopy':>11} {'median':>7}  each run")
    for name, ours, theirs in rows:
        a = size / statistics.median(times[ours]) / MiB
        b = size / statistics.median(times[theirs]) / MiB
        each = [t / o for o, t in zip(times[ours], times[theirs], strict=True)]
        runs = " ".join(f"{x:.2f}x" for x in each)
        print(f"{name:<50} {a:6.1f} MiB/s {b:6.1f} MiB/s {statistics.median(each):6.2f}x  {runs}")
    direct = size / statistics.median(times["direct"]) / MiB
    print(f"{'(nbdcopy on the socket itself, no SSH)':<50} {'':>11} {direct:6.1f} MiB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
