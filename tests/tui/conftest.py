"""Fixtures for the app-shell tests: an isolated config dir, an app factory, and
deterministic stand-ins for an open export (for snapshots only; pilot tests use real
servers)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from textual.widgets import Input, Static

from nbdtui.client.export import Extent
from nbdtui.proto.client_events import ExportsListed, Negotiated
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.types import ExportDetails, ExportInfo
from nbdtui.tui.app import NbdtuiApp, create_app
from nbdtui.tui.history import History

SNAP_SIZE = (100, 32)


@pytest.fixture(autouse=True)
def _isolated_dirs(monkeypatch, tmp_path):
    """No test reads or writes the real user's config, data or cache."""
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "xdg" / var.lower()))


@pytest.fixture
def make_app(tmp_path):
    """``make_app(uri=None, demo_uris=None, **options) -> NbdtuiApp`` with a private history."""

    def make(uri: str | None = None, demo_uris=None, **options) -> NbdtuiApp:
        options.setdefault("history", History(tmp_path / "history.sqlite3"))
        options.setdefault("connect_timeout", 5.0)
        return create_app(uri, demo_uris, **options)

    return make


# ---- pilot helpers (imported by the tests) ----------------------------------------


def text_of(widget: Static) -> str:
    """The plain text a Static shows (markup removed)."""
    return str(widget.render()).strip()


async def type_uri(pilot, uri: str) -> None:
    """Replace the connect screen's URI field with ``uri``, as typed."""
    field = pilot.app.screen.query_one("#uri", Input)
    field.focus()
    field.value = ""
    await pilot.press(*uri)
    await pilot.pause()


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Let the app run until ``predicate()`` is true (workers do the network calls)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await pilot.pause(0.05)


def nbdinfo_json(uri: str, *args: str) -> dict:
    """The oracle: libnbd's own view of a server."""
    out = subprocess.run(
        ["nbdinfo", "--json", *args, uri], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


# ---- deterministic stand-ins for snapshots ------------------------------------------


@dataclass
class FakeStats:
    endpoint: str
    export: str
    state: str = "ready"
    in_flight: int = 0
    window: int = 16
    bytes_read: int = 0
    bytes_written: int = 0
    errors: int = 0
    requests: int = 0
    error: str | None = None


FLAGS = TF.HAS_FLAGS | TF.SEND_FLUSH | TF.SEND_FUA | TF.SEND_TRIM | TF.SEND_WRITE_ZEROES


@dataclass
class FakeExport:
    name: str = "disk"
    size: int = 64 * 1024 * 1024
    flags: int = int(FLAGS)
    extents_list: list[Extent] = field(default_factory=list)
    stats: list[FakeStats] = field(default_factory=list)
    closed: bool = False

    @property
    def info(self) -> ExportInfo:
        return ExportInfo(self.name, self.size, self.flags, "demo disk", 1, 4096, 33554432)

    @property
    def negotiated(self) -> Negotiated:
        return Negotiated(
            self.info,
            "newstyle-fixed",
            True,
            meta_contexts=(("base:allocation", 1),),
            available_contexts=("base:allocation",),
        )

    async def extents(self, offset: int, length: int) -> list[Extent]:
        end = offset + length
        return [e for e in self.extents_list if e.offset < end and e.offset + e.length > offset]

    def connection_stats(self) -> list[FakeStats]:
        return self.stats

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_disk() -> FakeExport:
    """A 64 MiB export: data, hole, allocated zeros, data, hole; two connections."""
    mib = 1024 * 1024
    return FakeExport(
        extents_list=[
            Extent(0, 4 * mib, 0),
            Extent(4 * mib, 12 * mib, 3),
            Extent(16 * mib, 8 * mib, 2),
            Extent(24 * mib, 8 * mib, 0),
            Extent(32 * mib, 32 * mib, 3),
        ],
        stats=[
            FakeStats(
                "/run/nbd/demo.sock", "disk", bytes_read=1536 * 1024, in_flight=3, requests=7
            ),
            FakeStats(
                "/run/nbd/demo.sock",
                "disk",
                state="reconnecting",
                errors=1,
                requests=2,
                error="connection to /run/nbd/demo.sock lost: Broken pipe",
            ),
        ],
    )


@pytest.fixture
def fake_listing() -> ExportsListed:
    """Three exports: read-write, read-only, and a 1 TiB one without a description."""

    def item(name, size, ro, desc):
        flags = TF.HAS_FLAGS | (TF.READ_ONLY if ro else 0)
        return ExportDetails(name, desc, ExportInfo(name, size, int(flags), desc))

    return ExportsListed(
        "newstyle-fixed",
        (
            item("disk", 64 * 1024 * 1024, False, "demo disk with a GPT"),
            item("iso", 700 * 1024 * 1024, True, "install image"),
            item("scratch", 1 << 40, False, ""),
        ),
        structured=True,
    )
