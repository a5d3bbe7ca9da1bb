"""The demo server: ``nbdtui demo`` opens the TUI on it when no server is at hand.

Exports:

- ``demo``: the demo GPT disk of ``nbdtui.disk.demo_image`` (writable, in memory);
- ``scratch``: 1 TiB of nothing (a sparse, writable disk for size tests);
- ``readonly``: the demo disk again, read-only.

:class:`DemoThread` serves them on a loop of its own in a daemon thread (for ``nbdtui demo``
and the UI's demo button). Run it alone with
``python -m nbdtui.server.demo_exports [--tcp]``: it prints one ``NAME<TAB>URI`` line per
export and serves until Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading

from nbdtui.errors import NbdError
from nbdtui.server.backend import MemoryBackend
from nbdtui.server.listener import RunningServer, serve

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
    from nbdtui.disk.demo_image import DEMO_SIZE, build_demo_image

    image = build_demo_image(DEMO_SIZE)
    exports = {
        "demo": MemoryBackend(image.size, image.pieces),
        "scratch": MemoryBackend(SCRATCH_SIZE),
        "readonly": MemoryBackend(image.size, image.pieces, read_only=True),
    }
    return await serve(exports, unix=unix, descriptions=DESCRIPTIONS)


class DemoThread:
    """Runs the embedded demo server on its own event loop in a daemon thread.

    The TUI (or any client) then connects to it over a real socket, exactly as it
    would to a remote server.
    """

    def __init__(self, *, unix: bool = True):
        self._unix = unix
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.uris: dict[str, str] = {}
        self._thread = threading.Thread(target=self._main, name="nbdtui-demo", daemon=True)

    def start(self) -> DemoThread:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise NbdError(f"cannot start the demo server: {self._error}")
        return self

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            server = await start_demo(unix=self._unix)
        except Exception as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.uris = {name: server.uri_for(name) for name in server.export_names}
        self.uri = server.uri
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)


async def _main(unix: bool) -> None:
    server = await start_demo(unix=unix)
    async with server:
        for name in server.export_names:
            print(f"{name}\t{server.uri_for(name)}", flush=True)
        print("serving; press Ctrl+C to stop", file=sys.stderr, flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nbdtui.server.demo_exports", description="Serve the nbdtui demo exports."
    )
    parser.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1, not a socket")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(unix=not args.tcp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
