"""The command line against servers that fail, drip, flood or break the rules (issue 13).

Real peers where one can produce the case (nbdkit's error and delay filters); the
scenario-driven fake server of ``tests/support/fakes.py`` where none can.
"""

from __future__ import annotations

import os
import time

from tests.support.cli_helpers import assert_one_line_error, nbdtui

MiB = 1024 * 1024


def test_large_write_failing_everywhere_is_one_line_and_prompt(nbdkit, tmp_path):
    """Every write fails with EIO: the bulk engine falls back to the event loop, whose
    sendfile must not touch the input file once the command gave up (asyncio printed
    'Exception in callback ... Bad file descriptor'), nor wait for a half-sent payload
    (a 5 s stall)."""
    server = nbdkit(
        "memory",
        "64M",
        filters=("error",),
        unix=True,
        extra_options=("error-pwrite=EIO", "error-pwrite-rate=100%"),
    )
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(16 * MiB))
    for _ in range(5):
        started = time.monotonic()
        result = nbdtui("write", server.uri, str(source))
        elapsed = time.monotonic() - started
        assert_one_line_error(result, 1, "write: EIO (Input/output error)")
        assert elapsed < 3, elapsed
