"""`nbdtui demo`: an embedded NBD server with a demo disk, and the TUI opened on it."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading

from nbdtui.errors import NbdError


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
        from nbdtui.server.demo import start_demo

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


def run(args: argparse.Namespace) -> int:
    demo = DemoThread(unix=not args.tcp).start()
    try:
        if args.serve:
            for name, uri in demo.uris.items():
                print(f"{name}\t{uri}", flush=True)
            print("serving; press Ctrl+C to stop", file=sys.stderr, flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                return 0
        from nbdtui.tui.app import run_app

        return run_app(uri=demo.uri, demo_uris=demo.uris) or 0
    finally:
        demo.stop()
