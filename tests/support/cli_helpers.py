"""Running the real `nbdtui` command line from tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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


# Runs the command and reports its peak RSS as the last line of stderr. A small process
# of its own starts it: a child's ru_maxrss counts the memory of the process it was
# forked from (Linux keeps the high-water mark across exec), and a test's process is big.
_MEASURE = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
sys.stderr.write(f"\\nMAXRSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n")
sys.exit(code)
"""


def nbdtui_measured(*args: str, timeout: float = 60) -> Measured:
    """:func:`nbdtui`, also measuring the wall-clock time and the peak RSS of the
    process. Killed (with its measuring parent) after ``timeout`` seconds."""
    return _measured([sys.executable, "-m", "nbdtui", *args], timeout, "nbdtui " + " ".join(args))


def python_measured(code: str, *args: str, timeout: float = 60) -> Measured:
    """``python -c CODE ARGS`` (a library user's program), measured as
    :func:`nbdtui_measured` measures the command line."""
    return _measured([sys.executable, "-c", code, *args], timeout, "the program")


def _measured(argv: list[str], timeout: float, what: str) -> Measured:
    command = [sys.executable, "-c", _MEASURE, *argv]
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{what} still ran after {timeout} s") from None
    seconds = time.monotonic() - started
    stderr, _, peak = err.decode().rpartition("\nMAXRSS ")
    return Measured(proc.returncode, out, stderr, seconds, int(peak) * 1024)
