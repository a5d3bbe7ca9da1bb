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


async def library_read(uri: str, connections: int, window: int) -> float:
    """Seconds for nbdtui's library to stream the whole export once it is open."""
    import nbdtui
    from nbdtui.cli.transfer import stream_read

    async with nbdtui.open(uri, connections=connections, window=window) as export:
        start = time.perf_counter()
        async for _piece in stream_read(export, 0, export.size):
            pass
        return time.perf_counter() - start


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
            cli = [sys.executable, "-m", "nbdtui", "read", uri, "-o", "/dev/null"]
            cli += ["--connections", str(c), "--window", str(r)]
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
                    times["library"].append(asyncio.run(library_read(uri, c, r)))
                    for label, local in (("default", fwd_default), ("gcm", fwd_gcm)):
                        elapsed = run_timed(nbdcopy_cmd(local, c, r), env)
                        times[f"transfer {label}"].append(elapsed)
                    times["direct"].append(run_timed(nbdcopy_cmd(nbd.socket, c, r), env))
            med = {key: statistics.median(values) for key, values in times.items()}
            rows = [
                ("end to end, ssh -L default cipher", med["cli"], med["e2e default"]),
                (f"end to end, ssh -L {GCM}", med["cli"], med["e2e gcm"]),
                ("transfer only, ssh -L default cipher", med["library"], med["transfer default"]),
                (f"transfer only, ssh -L {GCM}", med["library"], med["transfer gcm"]),
            ]
            direct = med["direct"]
        finally:
            factory.stop_all()

    print(
        f"sequential read of {opts.size} through SSH: nbdtui vs nbdcopy over ssh -L "
        f"({c} connections x {r} requests, median of {opts.runs}, {os.cpu_count()} CPUs)"
    )
    print(f"{'':<44} {'nbdtui':>10} {'nbdcopy':>10} {'ratio':>7}")
    for name, ours_s, theirs_s in rows:
        a, b = size / ours_s / MiB, size / theirs_s / MiB
        print(f"{name:<44} {a:7.1f} MiB/s {b:7.1f} MiB/s {a / b:6.2f}x")
    print(
        f"{'(nbdcopy on the socket itself, no SSH)':<44} {'':>10} {size / direct / MiB:7.1f} MiB/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
