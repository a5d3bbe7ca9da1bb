"""The test suite's layout, and the fixtures every part shares.

- ``tests/unit/``: bytes in, events out -- the protocol core, decoders, the editor model,
  text formatting; no server, no network, no Textual app.
- ``tests/integration/``: the client library, the embedded server and the CLI against real
  servers (nbdkit, qemu-nbd, nbd-server, OpenSSH's sshd), with libnbd's tools as oracles.
- ``tests/tui/``: the Textual app and the hex editor, driven by Textual's pilot (its
  fixtures in ``tests/tui/conftest.py``).
- ``tests/support/``: shared code, never tests -- ``fakes.py`` (fake NBD peers that are real
  socket servers, in-memory exports, snapshot stand-ins), ``oracles.py`` (nbdinfo, nbdcopy,
  nbdsh), ``servers.py`` (the server machinery behind the fixtures below), ``pilot.py``
  (driving the app and the editor harness), ``requirements.py`` (every program a test runs
  -> its Debian package), ``cli_helpers.py``, ``images.py``, ``tls_material.py``.

A test module never imports another test module (nor a conftest): what two modules share
goes to ``tests/support/``, and a fixture to a conftest. A missing program fails the test
with the package to install (``require("sfdisk")``); skips are for platform limits only.

The server fixtures are factories: call them as often as needed inside a test; everything
they started is stopped at teardown. Servers listen on an ephemeral port of 127.0.0.1 or on a
Unix socket in the test's ``tmp_path``. See ``tests/support/servers.py`` for the machinery and
the :class:`Server` object.

    def test_example(nbdkit, qemu_nbd, make_image, tmp_path):
        mem = nbdkit("memory", "1M", log=True)           # Server; mem.uri, mem.log_path
        img = make_image(tmp_path, 65536, content=b"hi")  # Path of a raw image
        disk = qemu_nbd(img, export="disk", unix=True)    # nbd+unix:///disk?socket=...
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

# Tests import helpers as `tests.<module>`; make that work for `pytest` as well as for
# `python -m pytest` (which alone puts the current directory on sys.path).
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.fakes import FakeNbdServers  # noqa: E402
from tests.support.servers import (  # noqa: E402
    Server,
    ServerFactory,
    SshServer,
    TlsCerts,
    make_tls_certs,
)
from tests.support.servers import make_image as _make_image  # noqa: E402

__all__ = ["Server", "SshServer", "TlsCerts"]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    """The per-test factory behind the fixtures below; stops all its servers at teardown."""
    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def nbdkit(servers: ServerFactory) -> Callable[..., Server]:
    """``nbdkit(plugin, *args, filters=(), unix=False, export="", extra_options=(),
    log=False, tls=None, tls_verify_peer=False, readonly=False) -> Server``."""
    return servers.nbdkit


@pytest.fixture
def qemu_nbd(servers: ServerFactory) -> Callable[..., Server]:
    """``qemu_nbd(image, fmt="raw", export="disk", unix=False, readonly=False, extra=(),
    tls=None, tls_verify_peer=False) -> Server``."""
    return servers.qemu_nbd


@pytest.fixture
def nbd_server(servers: ServerFactory) -> Callable[..., Server]:
    """``nbd_server({"name": {"file": path, "readonly": True, ...}, ...}, unix=False,
    generic=None, tls=None) -> Server`` (uri = first export)."""
    return servers.nbd_server


@pytest.fixture
def sshd(servers: ServerFactory) -> Callable[..., SshServer]:
    """``sshd(alias="nbdtui-sshd", extra_config=()) -> SshServer``."""
    return servers.sshd


@pytest.fixture
def make_image() -> Callable[..., Path]:
    """``make_image(tmp_path, size, fmt="raw", content=None, name=None) -> Path``."""
    return _make_image


@pytest.fixture(scope="session")
def _tls_master(tmp_path_factory: pytest.TempPathFactory) -> TlsCerts:
    # Generating RSA keys takes a moment: once per session, copied into each test.
    return make_tls_certs(tmp_path_factory.mktemp("tls-master"))


@pytest.fixture
def tls_certs(_tls_master: TlsCerts, tmp_path: Path) -> TlsCerts:
    """CA, server (localhost/127.0.0.1) and client certificates, plus expired-server and
    wrong-CA variants and a PSK file, in ``tmp_path/tls`` (see :class:`TlsCerts`)."""
    return _tls_master.copy_to(tmp_path / "tls")


@pytest.fixture
def ssh_home(sshd, monkeypatch) -> SshServer:
    """An sshd whose client HOME is this process's HOME (asyncssh reads ~/.ssh)."""
    server = sshd()
    monkeypatch.setenv("HOME", str(server.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return server


@pytest.fixture
async def fake_server() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await fake_server(scenario, structured=True, handshake=None) -> uri``: a fake NBD
    server (see :class:`tests.support.fakes.FakeNbdServers`); the scenario runs after the
    handshake with a :class:`~tests.support.fakes.Peer` (``handshake``: a scenario that
    plays the handshake, with a :class:`~tests.support.fakes.HandshakePeer`); their
    exceptions fail the test."""
    fakes = FakeNbdServers()
    yield fakes.start
    errors = await fakes.close()
    assert not errors, errors


@pytest.fixture
def reset_ssh_prompts() -> Iterator[None]:
    """Put nbdtui.client.transport.ssh.prompts' hooks back to their defaults after the test."""
    yield
    from nbdtui.client.transport.ssh import prompts as ssh_prompts

    ssh_prompts.set_password_prompt(ssh_prompts.terminal_password_prompt)
    ssh_prompts.set_host_key_prompt(None)
    ssh_prompts.set_notice(None)


# --------------------------------------------------------------------------- nothing ran?

_executed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _executed
    if report.when == "call" and not report.skipped:
        _executed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # scripts/test.sh sets NBDTUI_REQUIRE_TESTS: a run where every test was skipped (or
    # none was selected) must not look like success.
    if os.environ.get("NBDTUI_REQUIRE_TESTS") and exitstatus == 0 and _executed == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("no test ran (all skipped?): failing the run", red=True)
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
