"""Running the real `nbdtui` command line from tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
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


@dataclass
class Measured(Result):
    seconds: float  # wall-clock time
    peak_rss: int  # bytes: the most the process ever held in memory


def nbdtui_measured(*args: str, timeout: float = 60) -> Measured:
    """:func:`nbdtui`, also measuring the wall-clock time and the peak RSS of the process
    (``wait4``'s rusage of that child alone). Killed after ``timeout`` seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbdtui", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # (reaped: Popen must not wait)
        out.seek(0)
        err.seek(0)
        return Measured(
            proc.returncode, out.read(), err.read().decode(), seconds, usage.ru_maxrss * 1024
        )
