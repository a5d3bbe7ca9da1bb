"""`nbdtui demo`: an embedded NBD server with a demo disk, and the TUI opened on it."""

from __future__ import annotations

import argparse
import sys
import threading

from nbdtui.server.demo_exports import DemoThread


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
