#!/usr/bin/env python3
"""Sequential read over TLS: nbdtui's library vs ``nbdcopy URI null:``, both over TLS.

Generates a CA and a server certificate for 127.0.0.1 with openssl in a private
directory, starts ``nbdkit --tls=require --tls-certificates=DIR pattern SIZE`` on
127.0.0.1, then reads the whole export with nbdtui (``Export.read_into`` pieces into
reused buffers, like bench_read.py) and with nbdcopy, both over ``nbds://``. Prints each
median of --runs runs and the ratio nbdtui / nbdcopy; then the same read through the
bulk engine (``Export.bulk()``: threads on TLS connections of its own) into --pieces
buffers of --piece bytes, and what ``nbdtui read -o /dev/null`` does once the export is
open (``read_to_file``: block status, the engine's start, calls sized by
nbdtui.cli.engine_calls), each one run at a time alternating with nbdcopy, with the
median of those ratios. nbdcopy's runs include its own start-up and end, printed first
(the same command over a 1 MiB export). With --plain, the same over an ``nbd://`` server
for reference. Usage:

    python bench/bench_tls.py [--size 512M] [--connections 4] [--window 16] [--runs 3] [--plain]
                              [--request-size N]

Figures (2 cores shared with ~8 busy sessions, load 6-11: wall times swing 2x from run to
run; each ratio is against the nbdcopy run just before it, median of the runs), 512 MiB,
4 connections x 16 requests, TLS 1.3 AES-256-GCM:

| what | before (event loop) | after (threads, own TLS) | nbdcopy |
|---|---|---|---|
| ``nbdtui read``, whole command, 4 rounds | 0.64, 0.65, 0.93, 0.63x | 0.82, 0.75, 0.78, 0.61x | 1 |
| its peak RSS | 63 MiB | 42-43 MiB | 17 MiB |
| engine in process, client CPU (user+sys) per 512 MiB | 0.49 s | 0.44 s | 0.47-0.49 s |
| engine in process, wall, 6-7 runs | 0.80x-1.01x | 0.86x-0.95x | 1 |

The first version (an ``ssl.SSLSocket`` per thread: two recv calls per 16 KiB record)
took 0.52 s of CPU per 512 MiB; decrypting from memory BIOs fed 1 MiB at a time
(``bulk_tls.TlsStream``) takes 0.44 s.

Second round (issue 18; the bulk rows now print each run's client and server CPU,
from ``bulk()`` on for nbdtui, the whole process for nbdcopy). Machine: 2 cores shared
with 3 other sessions, ``uptime`` load 1.8-4.8 throughout, so wall ratios swing
0.6-1.6x between neighbouring runs. Seven invocations of ``--size 512M --runs 5``
each, before (main) and after (this change) alternating; the ratio of each run (nbdtui /
the nbdcopy run just before it), one group per invocation:

- before: 1.02 1.15 1.04 0.67 0.86 / 0.89 0.98 0.96 0.83 1.21 / 0.82 1.18 0.71 0.99
  1.02 / 0.90 0.89 0.93 0.92 0.93 / 0.79 0.95 0.98 0.91 0.94 / 0.91 1.00 0.95 0.94
  0.94 / 0.85 0.91 0.91 0.90 0.87
- after: 0.95 0.94 0.99 0.93 0.95 / 0.84 0.94 0.94 1.03 1.07 / 0.88 0.97 1.50 0.89
  0.90 / 0.96 1.00 0.80 1.03 0.98 / 0.96 0.92 0.93 0.90 0.96 / 0.55 1.12 0.96 0.96
  1.00 / 0.94 0.95 0.81 0.88 1.63

| what | before | after | nbdcopy |
|---|---|---|---|
| bulk ratio, median of the 35 runs | 0.93x | 0.95x (within the noise) | 1 |
| client CPU per run (last 2 invocations) | 0.41-0.46 s | 0.41-0.50 s | 0.41-0.50 s |
| client CPU per 512 MiB, steady (one engine) | | 0.39-0.41 s | |
| server (nbdkit) CPU per run (last 2) | 0.46-0.53 s | 0.45-0.56 s | 0.37-0.47 s |
| ``nbdtui read`` 512 MiB, peak RSS | 42.7 MiB | 41.8-42.9 MiB | 17 MiB |

At the lowest load seen (1.3-1.9), one more pair: after 0.94x (0.99 0.90 0.89 0.94
0.96), client CPU 0.39-0.41 s vs nbdcopy's 0.40-0.44 s, server 0.46-0.47 s vs
0.41-0.42 s; before 0.91x (0.89 0.91 0.86 0.97 1.03), client CPU 0.42-0.48 s.

What the gap is (perf, strace -c, perf stat on both processes):

- CPU, not waiting: client + server take ~0.9 s of CPU per 512 MiB for either client,
  and an idle 2-core run's wall is about half of that; the goal is met or missed by a
  few per cent of combined CPU. nbdtui's client CPU per run is now at nbdcopy's (its
  steady state, 0.40 s per 512 MiB, below); the difference is the server's share and
  the engine's start.
- Fixed costs: ``bulk()`` opens 4 TLS connections of its own on threads: 16-18 ms of
  CPU, 18-45 ms wall (the executor's threads start 1-3 ms apart; each TLS handshake
  3-8 ms under contention); nbdkit issues no session tickets, so none can be resumed.
  Before this change ``bulk()`` first opened the group's 3 other connections on the
  event loop (~10 ms, 3 more handshakes on each side) only to count them: now only the
  engine's own open (the server sees 5 connections, not 8).
- The server: per run it spends ~0.04 s (10 %) more on nbdtui than on nbdcopy, the
  one steady difference: nbdkit's malloc of 1 MiB request buffers faults
  12-17k pages per run (70 with nbdcopy's 256 KiB requests; 3-4k with nbdtui at
  256 KiB). 256 KiB requests cost the client more (+0.05 s) than they save the server.
- The client's CPU: AES-256-GCM 29 %, copies 35 % (the kernel's into the 1 MiB buffer,
  that buffer into the MemoryBIO, the BIO into OpenSSL's record buffer, the plaintext
  into the caller's buffer; plus the BIO's zeroing as it grows), Python 13 %
  (``TlsStream.receive_exactly`` now loops over the records itself), kernel rest.
  About 600 recv calls per 512 MiB (SSLSocket: 65k). Smaller fills lower the
  server's CPU (32 KiB: by ~0.03 s) but raise the client's more (+0.1 s).
- Pipelining (traced: requests in flight on the thread when it waits for a reply
  header): with the bench's 2 pieces of 64 MiB, 16 only 38-54 % of the time (each
  thread's window drains at a piece boundary until the loop deals the next piece);
  with 4 pieces, 88 % (the rest is the tail), at the same throughput (966-1018 vs
  988-1001 MiB/s): not the limit. Requests are 1 MiB, nbdcopy's 256 KiB (nbdkit's
  log filter).
- Threads: every SSL_read (one 16 KiB record) releases and takes the GIL, yet a GIL
  switch interval of 0.5 or 50 ms (default 5) changed neither CPU nor throughput, and
  a standalone driver of the same 4 TLS connections x 16 from 4, 2 or 1 threads (each
  thread going round its connections a reply at a time) took the same client CPU
  (0.40-0.44 s per 512 MiB; 4 threads the fastest). The engine adds nothing over
  that: its steady 0.39-0.41 s is the floor of ``ssl.SSLObject`` over memory BIOs
  (decryption and three user-space copies). No kernel TLS here (no ``tls`` module).
- So the goal (>= 1.0x) is not shown met: what is left is the server's ~10 % (its
  malloc faults with 1 MiB requests; smaller requests or fills cost the client more)
  and the engine's start (~20 ms of a ~0.5 s run).

Third round, on the merged code and an idle machine (load 0.5 before each run). nbdcopy
lowers ``--connections`` to its ``--threads``, which default to the cores: until now
"4 connections" was 2 for nbdcopy here (``nbdcopy -v`` says so). The benches now give
it ``--threads`` too (``side_by_side.nbdcopy_flags``). Bulk-engine ratios, each run:

| connections x requests, request size | TLS | plaintext |
|---|---|---|
| 4 x 16 as before (nbdcopy really 2), 1 MiB | 0.92x (0.97 0.92 0.91 0.93 0.90 0.89 0.93) | |
| 4 x 16, both 4, 1 MiB | 0.95x (0.95 0.94 1.01 1.02 0.94) | 1.08x |
| the same, again | 0.97x (0.98 0.97 0.95 1.03 0.96) | 1.06x |
| 4 x 16, both 4, 512 KiB | 0.98x (0.96 1.02 0.97 0.99 0.98) | 1.05x |
| 2 x 16, both 2, 1 MiB | 0.99x (0.99 0.93 1.07 0.99 1.02) | |
| the same, again | 0.95x (1.00 0.95 1.05 0.93 0.90) | 0.79x |
| 2 x 16, both 2, 512 KiB | 0.97x (0.96 0.97 0.97 1.01 0.96) | 1.06x |
| 2 x 16, both 2, 256 KiB | 0.91x | 0.93x |

At 1 GiB (the size #18 names), both at 4 connections, load 0.1: 0.97x (0.97 0.96 0.94 0.98
0.97); per run nbdtui 0.78-0.84 s of client CPU and nbdkit 0.84-0.86 s serving it, nbdcopy
0.89-0.93 s and nbdkit 0.80-0.82 s: nbdtui's pair uses less CPU in all (1.67 s against
1.71 s) and still takes longer, so what is left is idle time, not work; ``bulk()``'s
start (4 TLS handshakes on threads) is 10-12 ms of it here.

Client CPU per run 0.37-0.44 s (nbdcopy 0.41-0.50 s); nbdkit's 0.43-0.47 s serving
nbdtui, 0.36-0.44 s serving nbdcopy. ``strace -c -f`` of nbdkit during ``nbdtui read``
vs nbdcopy (TLS, 512 MiB): the same number of sendmsg calls (33-35k, one per record),
but its recvfrom calls wait 3.4 ms each on average (906 calls) against 38 us (4164):
its threads sleep and wake per request more often with nbdtui. The goal (>= 1.0x) is
within the spread of single runs but not met by the medians (0.95-0.98x). 512 KiB
requests did not help bench_transfer.py's plain reads (1 MiB: in process 1.00x and
1.04x nbdcopy at 2 connections, 512 KiB 0.91x and 1.02x), so the default stays 1 MiB.

Fourth round (idle machine; 1 GiB, both 4 connections x 16). ``perf sched timehist`` of a
run showed where the time went: nbdcopy kept both cores busy (idle 26 ms of 1.8 s),
nbdtui left them idle 10-12 % of the time, in hundreds of gaps of ~0.1 ms spread over the
whole transfer, while its 4 threads and the event loop handed the GIL to each other (each
SSL_read of a 16 KiB record releases and takes it back; the loop's ``recv`` of its self-pipe
took 134 us, waiting for the GIL). A standalone driver of the same connections with no
event loop reached 1.01-1.05x, so the engine's own costs were the gap:

- ``nbdtui read`` asked the engine for 4 MiB at a time (256 calls per GiB, 16 in flight);
  each completed call wakes the loop, which then takes the GIL from the transfer threads.
  Calls now grow with the speed (nbdtui.cli.engine_calls: what 1/16 s moves, 4-64 MiB):
  with a checkout of the previous main, in process, alternating, 6 runs each, twice:
  0.91x and 0.92x before, 1.03x and 1.02x after. More calls of 4 MiB in flight (64
  instead of 16) did not help (0.95x): the number of calls is what costs, not the depth.
- Into a file (or /dev/null) each thread decrypted into a fresh 1 MiB bytearray per
  request (new pages, zeroed): now one 256 KiB buffer per thread, reused
  (``IntoFile(splice=False)``): 0.91x -> 0.95x before the calls grew.
- A standalone driver writing into one 1 MiB buffer per thread reached 1.05x, into 32 MiB
  per thread 0.99x: decrypting into memory out of the cache costs ~5 %, which is why the
  bulk row below (into 2 x 64 MiB of buffers) stays at 0.96x.

``--size 1G --runs 9`` (nbdcopy's start-up and end: 25 ms, in its figures):

- bulk engine into 2 x 64 MiB buffers: 0.96x (0.96 0.99 1.00 0.98 0.92 0.97 0.93 0.94
  0.96); client CPU 0.79-0.89 s (nbdcopy 0.88-0.99 s), nbdkit's serving it 0.86-0.91 s
  (serving nbdcopy 0.74-0.87 s);
- what ``nbdtui read -o /dev/null`` does: 1.02x (1.02 1.03 0.81 1.15 1.06 1.02 0.97 1.05
  0.94); client CPU 0.70-0.82 s (nbdcopy 0.91-1.00 s), nbdkit's 0.86-0.93 s (0.75-0.85 s).

nbdkit still spends ~0.07 s more serving nbdtui than nbdcopy; its profile shows it in the
kernel's copy of what it sends (``_copy_from_iter``: 17.7 % of its samples against
12.1 %), not in page faults (256 KiB requests cut its faults from 12k to 170 per run and
left its CPU as it was). Neither smaller fills of the TLS buffer (256 KiB: 0.98x, 64 KiB:
0.87x) nor a fixed SO_RCVBUF (2 or 4 MiB: 1.01x, 1.03x against 1.00x) changed it. Writes
over TLS (``nbdtui write`` of a 1 GiB file, in process) are 1.08x nbdcopy with their
fixed 8 MiB calls; growing those calls gave 1.03x, so writes keep them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench_read import (  # the same measurement, over TLS here
    add_read_options,
    nbdcopy_read,
    nbdtui_read,
)

import nbdtui
from nbdtui.client import Pool, probe
from nbdtui.present.sizes import parse_size

MiB = 1024 * 1024

SERVER_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
"""


def make_certs(directory: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    (directory / "server.ext").write_text(SERVER_EXT)
    openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2"),
        *("-keyout", "ca-key.pem", "-out", "ca-cert.pem", "-subj", "/CN=nbdtui bench CA"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    openssl(
        *("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"),
        *("-keyout", "server-key.pem", "-out", "server.csr"),
    )
    openssl(
        *("x509", "-req", "-in", "server.csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem"),
        *("-CAcreateserial", "-days", "2", "-sha256", "-extfile", "server.ext"),
        *("-out", "server-cert.pem"),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_nbdkit(size: int, tls_dir: Path | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    tls = ["--tls=require", f"--tls-certificates={tls_dir}"] if tls_dir else ["--tls=off"]
    where = ["-i", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        ["nbdkit", "-f", "--exit-with-parent", *where, *tls, "pattern", str(size)]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server, port
        time.sleep(0.02)
    server.kill()
    raise SystemExit("bench: nbdkit did not start")


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of this process (RUSAGE_SELF, every thread) or of its
    waited-for children (RUSAGE_CHILDREN)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of the server process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def nbdtui_bulk_read(
    uri: str, opts: argparse.Namespace, server: int
) -> tuple[float, float, float]:
    """MiB/s of one whole read through the bulk engine (``Export.bulk()``, what ``nbdtui
    read`` and ``copy`` use), pieces into reused buffers as in nbdtui_read; with the CPU
    seconds that the client and the server (pid ``server``) took meanwhile (from
    ``bulk()`` on, as the time: not the export's opening or the buffers' zeroing)."""
    async with nbdtui.open(
        uri, pool=Pool(), connections=opts.connections, window=opts.window
    ) as export:
        if opts.request_size:
            export.request_size = opts.request_size
        buffers = [bytearray(opts.piece) for _ in range(opts.pieces)]
        start = time.perf_counter()
        mine, theirs = cpu_seconds(resource.RUSAGE_SELF), server_cpu(server)
        async with export.bulk() as engine:
            pending: list[asyncio.Task] = []
            for i, pos in enumerate(range(0, export.size, opts.piece)):
                if len(pending) == opts.pieces:
                    await pending.pop(0)
                view = memoryview(buffers[i % opts.pieces])[: min(opts.piece, export.size - pos)]
                pending.append(asyncio.ensure_future(engine.read_into(pos, view)))
            await asyncio.gather(*pending)
        rate = export.size / (time.perf_counter() - start) / MiB
        return rate, cpu_seconds(resource.RUSAGE_SELF) - mine, server_cpu(server) - theirs


async def nbdtui_file_read(
    uri: str, opts: argparse.Namespace, server: int
) -> tuple[float, float, float]:
    """MiB/s of what ``nbdtui read -o /dev/null`` does once the export is open
    (``read_to_file``: block status, the bulk engine's start, calls into a FileRange of
    /dev/null sized by nbdtui.cli.call_size), with the CPU seconds the client and the
    server took meanwhile."""
    from nbdtui.cli.transfer import read_to_file

    class Bar:
        def advance(self, n: int) -> None:
            pass

    async with nbdtui.open(
        uri, pool=Pool(), connections=opts.connections, window=opts.window
    ) as export:
        if opts.request_size:
            export.request_size = opts.request_size
        fd = os.open(os.devnull, os.O_WRONLY)
        try:
            start = time.perf_counter()
            mine, theirs = cpu_seconds(resource.RUSAGE_SELF), server_cpu(server)
            await read_to_file(export, 0, export.size, fd, Bar())
            rate = export.size / (time.perf_counter() - start) / MiB
        finally:
            os.close(fd)
        return rate, cpu_seconds(resource.RUSAGE_SELF) - mine, server_cpu(server) - theirs


def nbdcopy_startup(opts: argparse.Namespace, certs: Path | None) -> float:
    """Median seconds of nbdcopy over a 1 MiB export (same flags, TLS or not): what of
    its run is not the transfer."""
    server, port = start_nbdkit(MiB, certs)
    uri = (
        f"nbds://127.0.0.1:{port}/?tls-certificates={certs}"
        if certs
        else f"nbd://127.0.0.1:{port}/"
    )
    try:
        return MiB / nbdcopy_read(uri, argparse.Namespace(**{**vars(opts), "runs": 7}), MiB) / MiB
    finally:
        server.terminate()
        server.wait()


def measure(uri: str, opts: argparse.Namespace, size: int, label: str, server: int) -> float:
    assert asyncio.run(probe(uri)).tls == uri.startswith("nbds")
    theirs = nbdcopy_read(uri, opts, size)
    ours = asyncio.run(nbdtui_read(uri, opts))
    print(f"{'nbdcopy ' + label:<22} {theirs:8.0f} MiB/s")
    print(f"{'nbdtui ' + label:<22} {ours:8.0f} MiB/s   ratio nbdtui/nbdcopy {ours / theirs:.2f}")
    # The bulk engine, then what `nbdtui read -o /dev/null` does once the export is open:
    # one run each, alternating with nbdcopy (median of the ratios), with the CPU each
    # run took of the client (nbdcopy's whole process; nbdtui's from bulk() or
    # read_to_file on) and of the server (with 2 cores, the sum bounds the wall time).
    ratio = alternate(uri, opts, size, server, nbdtui_bulk_read, f"bulk {label}")
    alternate(uri, opts, size, server, nbdtui_file_read, f"read {label}")
    return ratio


def alternate(
    uri: str,
    opts: argparse.Namespace,
    size: int,
    server: int,
    read: Callable[[str, argparse.Namespace, int], Awaitable[tuple[float, float, float]]],
    label: str,
) -> float:
    """--runs runs of ``read`` each after a run of nbdcopy; prints each pair and the
    median of the ratios, and returns it."""
    one = argparse.Namespace(**{**vars(opts), "runs": 1})
    ratios = []
    for _ in range(opts.runs):
        client, served = cpu_seconds(resource.RUSAGE_CHILDREN), server_cpu(server)
        theirs = nbdcopy_read(uri, one, size)
        client = cpu_seconds(resource.RUSAGE_CHILDREN) - client
        served = server_cpu(server) - served
        ours, mine, ours_served = asyncio.run(read(uri, one, server))
        ratios.append(ours / theirs)
        print(
            f"  {label}: nbdcopy {theirs:6.0f} MiB/s (cpu {client:.2f} s, server "
            f"{served:.2f} s), nbdtui {ours:6.0f} MiB/s (cpu {mine:.2f} s, server "
            f"{ours_served:.2f} s)"
        )
    ratio = statistics.median(ratios)
    each = " ".join(f"{r:.2f}" for r in ratios)
    print(f"{'nbdtui ' + label:<22} median ratio nbdtui/nbdcopy {ratio:.2f} ({each})")
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_read_options(ap, size="512M")
    ap.add_argument("--plain", action="store_true", help="also measure without TLS")
    ap.add_argument(
        "--request-size", type=parse_size, default=0, help="the bulk engine's (default: its own)"
    )
    opts = ap.parse_args()
    size = parse_size(opts.size)
    for tool in ("nbdkit", "nbdcopy", "openssl"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is not installed")
    print(
        f"sequential read of {opts.size} from nbdkit pattern on 127.0.0.1, "
        f"{opts.connections} connections x {opts.window} requests, median of {opts.runs}"
    )
    with tempfile.TemporaryDirectory(prefix="nbdtui-bench-tls-") as tmp:
        certs = Path(tmp)
        make_certs(certs)
        startup = nbdcopy_startup(opts, certs)
        print(f"nbdcopy's start-up and end (the same over a 1 MiB export): {startup * 1000:.1f} ms")
        server, port = start_nbdkit(size, certs)
        try:
            measure(
                f"nbds://127.0.0.1:{port}/?tls-certificates={certs}", opts, size, "TLS", server.pid
            )
        finally:
            server.terminate()
            server.wait()
        if opts.plain:
            server, port = start_nbdkit(size, None)
            try:
                measure(f"nbd://127.0.0.1:{port}/", opts, size, "plaintext", server.pid)
            finally:
                server.terminate()
                server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
