"""Running the real `nbdtui` command line from tests."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode()

    def json(self):
        return json.loads(self.stdout)


def nbdtui(*args: str, input: bytes | None = None, timeout: float = 60) -> Result:
    """Run `python -m nbdtui ARGS` as a user would, capturing everything."""
    proc = subprocess.run(
        [sys.executable, "-m", "nbdtui", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr.decode())


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nbdtui: "), lines[0]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
