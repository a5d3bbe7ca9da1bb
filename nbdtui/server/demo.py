"""The demo server: ``nbdtui demo`` opens the TUI on it when no server is at hand.

Exports:

- ``demo``: the demo GPT disk of ``nbdtui.disk.demo`` (writable, in memory);
- ``scratch``: 1 TiB of nothing (a sparse, writable disk for size tests);
- ``readonly``: the demo disk again, read-only.

Run it alone with ``python -m nbdtui.server.demo [--tcp]``: it prints one
``NAME<TAB>URI`` line per export and serves until Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from nbdtui.server.backend import MemoryBackend
from nbdtui.server.server import RunningServer, serve

TIB = 1024**4
SCRATCH_SIZE = TIB

DESCRIPTIONS = {
    "demo": "nbdtui demo disk (GPT: EFI/FAT32, ext4, NTFS, swap), writable, in memory",
    "scratch": "1 TiB of empty, writable, sparse space",
    "readonly": "nbdtui demo disk, read-only",
}


async def start_demo(*, unix: bool = True) -> RunningServer:
    """Serve ``demo``, ``scratch`` and ``readonly``; ``uri`` names ``demo``.

    ``unix=True`` listens on a Unix socket in a private temporary directory,
    otherwise on an ephemeral port of 127.0.0.1.
    """
    from nbdtui.disk.demo import DEMO_SIZE, build_demo_image

    image = build_demo_image(DEMO_SIZE)
    exports = {
        "demo": MemoryBackend(image.size, image.pieces),
        "scratch": MemoryBackend(SCRATCH_SIZE),
        "readonly": MemoryBackend(image.size, image.pieces, read_only=True),
    }
    return await serve(exports, unix=unix, descriptions=DESCRIPTIONS)


async def _main(unix: bool) -> None:
    server = await start_demo(unix=unix)
    async with server:
        for name in server.export_names:
            print(f"{name}\t{server.uri_for(name)}", flush=True)
        print("serving; press Ctrl+C to stop", file=sys.stderr, flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nbdtui.server.demo", description="Serve the nbdtui demo exports."
    )
    parser.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1, not a socket")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(unix=not args.tcp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
