"""The reference implementation the tests compare nbdtui with: libnbd's tools (nbdinfo,
nbdcopy) and its Python bindings (nbdsh), run as subprocesses, never nbdtui's own code."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.support.requirements import require, require_system_module

# Keys both `nbdtui info --json` and `nbdinfo --json` print for an export; nbdinfo adds
# "content" and "export-size-str".
SHARED_KEYS = (
    "export-name",
    "description",
    "uri",
    "contexts",
    "is_rotational",
    "is_read_only",
    "can_cache",
    "can_df",
    "can_fast_zero",
    "can_flush",
    "can_fua",
    "can_multi_conn",
    "can_trim",
    "can_zero",
    "export-size",
    "block_size_minimum",
    "block_size_preferred",
    "block_size_maximum",
)


def oracle(program: str, *args: str, input: bytes | None = None) -> bytes:
    """Run a reference tool (nbdinfo, nbdcopy...) and return its stdout; it must succeed."""
    argv = (require(program), *args)
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=60)
    assert proc.returncode == 0, f"{(program, *args)}: {proc.stderr.decode()}"
    return proc.stdout


def nbdinfo_json(uri: str, *args: str) -> Any:
    """``nbdinfo --json ARGS URI``, parsed: libnbd's own view of a server."""
    return json.loads(oracle("nbdinfo", "--json", *args, uri))


def nbdcopy_out(uri: str) -> bytes:
    """The whole export, as nbdcopy reads it."""
    return oracle("nbdcopy", uri, "-")


def nbdcopy_in(uri: str, data: bytes) -> None:
    """Write ``data`` at offset 0 of the export with nbdcopy."""
    oracle("nbdcopy", "-", uri, input=data)


def nbdsh_write(uri: str, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` with libnbd's Python bindings (nbdsh)."""
    python = require_system_module("nbd")
    script = f"h.pwrite({data!r}, {offset})"
    subprocess.run([python, "-m", "nbd", "-u", uri, "-c", script], check=True, capture_output=True)
