"""The layer contracts of pyproject.toml ([tool.importlinter]) hold.

`.ci/run` runs `lint-imports` too; this test makes the README's test command check them
as well, so that a layer broken on a developer's machine shows up before CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_linter_contract_is_kept():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.exit(lint_imports_command())",
            "--no-cache",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
    kept = [line for line in proc.stdout.splitlines() if line.endswith("KEPT")]
    assert len(kept) >= 5, proc.stdout
