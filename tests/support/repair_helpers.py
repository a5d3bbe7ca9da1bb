"""`nbdtui repair` round trips for the tests: damage seen by the checker, a dry run that
writes nothing, the repair, the checker clean, the journal's revert bringing the
damage back byte for byte."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from tests.support.cli_helpers import Result
from tests.support.cli_helpers import nbdtui as run_cli


def digest(path: Path, limit: int | None = None) -> str:
    with path.open("rb") as f:
        return hashlib.sha256(f.read(limit)).hexdigest()


def repair(uri: str, offset: int, action: str, journal: Path, *extra: str) -> Result:
    return run_cli(
        "repair", uri, "--offset", str(offset), f"--{action}", "--journal", str(journal), *extra
    )


def entry(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    line = result.text.strip().splitlines()[-1]
    assert line.startswith("written and flushed: journal entry #"), line
    return line.split("#", 1)[1].split(" ", 1)[0]


def round_trip(
    server_uri: str,
    image: Path,
    offset: int,
    action: str,
    checker: Callable[[], int],
    tmp_path: Path,
    limit: int | None = None,
    repaired: Callable[[], None] | None = None,
) -> None:
    """Repair, check clean, revert, check the damaged bytes are back (the first
    ``limit`` bytes of the image are compared, or all of it); ``repaired`` may look at the
    image between the repair and the revert."""
    damaged = digest(image, limit)
    assert checker() != 0, "the damage must be visible to the checker first"
    journal = tmp_path / "journal.sqlite3"
    dry = repair(server_uri, offset, action, journal, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "old " in dry.text and "new " in dry.text and "nothing was written" in dry.text
    assert digest(image, limit) == damaged
    number = entry(repair(server_uri, offset, action, journal, "--yes"))
    assert checker() == 0, "the checker must be clean after the repair"
    if repaired is not None:
        repaired()
    reverted = run_cli("journal", "revert", number, "--journal", str(journal))
    assert reverted.returncode == 0, reverted.stderr
    assert digest(image, limit) == damaged, "the revert must bring the damage back byte for byte"
