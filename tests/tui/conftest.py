"""Fixtures for the UI tests: an isolated config dir, an app factory, the demo disk served
by qemu-nbd, and deterministic stand-ins for an open export (for snapshots only; pilot tests
use real servers). The pilot helpers are in ``tests/support/pilot.py``, the stand-ins in
``tests/support/fakes.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbdtui.client.export import Extent
from nbdtui.proto.client_events import ExportsListed
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.types import ExportDetails, ExportInfo
from nbdtui.tui.app import NbdtuiApp, create_app
from nbdtui.tui.history import History
from tests.support.fakes import FakeExport, FakeStats
from tests.support.pilot import save_demo_image


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


@pytest.fixture
def demo_image(tmp_path) -> Path:
    """The demo disk (GPT, four partitions, fixed bytes) as a raw image file."""
    return save_demo_image(tmp_path)


@pytest.fixture
def demo_uri(qemu_nbd, demo_image) -> str:
    """The demo disk served by qemu-nbd on a Unix socket (export "disk")."""
    return qemu_nbd(demo_image, export="disk", unix=True).uri


# ---- deterministic stand-ins for snapshots ------------------------------------------


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
