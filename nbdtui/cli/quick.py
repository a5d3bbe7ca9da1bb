"""`nbdtui info`, `dump` and small `read`s without asyncio, on the blocking driver
(:mod:`nbdtui.client.oneshot`): they start in about half the time.

:func:`run` returns ``None`` when the command is not one it serves (SSH, TLS other
than X.509, a long range, a range the export does not take as it is) or when the server
did anything but answer cleanly in the transmission phase; :mod:`nbdtui.cli` then runs
the command the usual way, on the asyncio client, which gives its own errors, retries
and reconnects. Output is written only once every byte is in, so a fallback never
repeats any of it.

A failed handshake is final, over TLS too: its errors are the asyncio client's, word for
word (a certificate that fails verification, a server that wants TLS or a client
certificate, an unknown export, a timeout), and the usual path would only say the same
after a second attempt.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from nbdtui.cli.parser import target_endpoint
from nbdtui.client import oneshot

COMMANDS = ("info", "dump", "read")

# Longer reads go to the asyncio client and its bulk engine (threads, splice): at
# 1 MiB the start-up still dominates a read.
MAX_READ = 1024 * 1024
DUMP_DEFAULT_LENGTH = 512  # as nbdtui.cli.transfer


def run(args: argparse.Namespace, warn: Callable[[str], None]) -> int | None:
    """Run ``args.command`` on the blocking driver; ``None``: run it the usual way.
    ``warn`` prints a server's oddity that nbdtui lives with (HAS_FLAGS missing)."""
    if args.command not in COMMANDS:
        return None
    if getattr(args, "ssh", None) is not None:
        return None
    endpoint = target_endpoint(args)
    if not oneshot.usable(endpoint):
        return None
    if args.command == "info":
        from nbdtui.cli.report import print_info

        negotiated = oneshot.probe(endpoint, connect_timeout=args.connect_timeout, warn=warn)
        return print_info(args, endpoint, negotiated)
    if args.command == "read" and args.length is None:
        return None  # to the end: a transfer for the bulk engine
    length = DUMP_DEFAULT_LENGTH if args.length is None else args.length
    if length > MAX_READ:
        return None
    big = length > 64 * 1024
    if args.command == "read" and args.output == "-" and big and sys.stdout.isatty():
        return None  # refused, with the usual message
    shot = oneshot.connect(endpoint, connect_timeout=args.connect_timeout, warn=warn)
    try:
        size = shot.negotiated.info.size
        if args.command == "dump" and args.length is None:
            length = min(length, max(size - args.offset, 0))
        if args.offset > size or length > size - args.offset:
            return None  # the usual path says what is wrong with the range
        data = shot.read(args.offset, length, timeout=args.timeout)
    finally:
        shot.close()
    if data is None:
        return None
    if args.command == "dump":
        return _dump(args.offset, data)
    return _read(args.output, data)


def _dump(offset: int, data: bytearray) -> int:
    from nbdtui.present.hexdump import HexDumper

    dumper = HexDumper(offset)
    lines = [*dumper.feed(bytes(data)), *dumper.finish()]
    out = sys.stdout
    out.write("".join(line + "\n" for line in lines))
    out.flush()
    return 0


def _read(output: str, data: bytearray) -> int:
    if output == "-":
        sys.stdout.flush()
        _write_all(sys.stdout.fileno(), data)
        return 0
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    return 0


def _write_all(fd: int, data: bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
