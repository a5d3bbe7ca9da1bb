#!/usr/bin/env python3
"""Sequential read through SSH: nbdtui's in-process tunnel vs nbdcopy over `ssh -L`.

Starts a private OpenSSH sshd on 127.0.0.1 (the test suite's fixture: its own host key,
client key, ``~/.ssh/config`` alias and known_hosts in a temporary HOME) and nbdkit's
``pattern`` plugin on a Unix socket, then reads SIZE bytes of it to /dev/null:

- **nbdtui**: ``nbdtui read nbd+ssh://ALIAS/?socket=SOCK -o /dev/null``: one asyncssh
  connection, one direct-streamlocal channel per NBD connection;
- **nbdcopy over ssh -L**: ``ssh -N -L LOCAL:SOCK ALIAS`` forwarding a private socket
  (in a 0700 directory) to the same remote socket, then ``nbdcopy nbd+unix:///?socket=
  LOCAL null:``; once with OpenSSH's default cipher (chacha20-poly1305) and once with
  ``-c aes128-gcm@openssh.com``, the cipher nbdtui prefers.

Two views, each the median of --runs runs (the contenders take turns within a run), same
connections and requests in flight:

- *end to end*: what a user waits for; nbdtui's time includes starting Python, importing
  asyncssh and logging in; the ssh -L time includes starting ssh, logging in and the
  forward coming up;
- *transfer only*: nbdtui's library reading the export once it is open, vs nbdcopy over
  an already established forward.

Ratios are nbdtui's throughput over the other's (>1.0: nbdtui is faster). Usage:

    python bench/bench_ssh.py [--size 256M] [--connections 4] [--requests 16] [--runs 3]
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
        f"--connections={connections}",
        f"--requests={requests}",
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
