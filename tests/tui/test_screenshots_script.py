"""scripts/screenshots.py writes one SVG per main screen, each showing that screen."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "screenshots.py"

# screen -> text it must show
EXPECTED = {
    "connect": ["NBD endpoint", "nbd+unix:///?socket=demo.sock", "Recent endpoints"],
    "exports": ["Server demo.sock", "3 exports", "scratch", "1 TiB of empty"],
    "export": ["demo on demo.sock", "67,108,864 bytes", "Allocation", "base:allocation"],
    "editor": ["sector 1", "45 46 49 20 50 41 52 54", "EFI PART"],
    "pool": ["Connections", "demo.sock", "ready"],
    "help": ["Keys", "Next sector", "Esc or F1 to close"],
}


def shown_text(svg: str) -> str:
    """The characters an SVG screenshot shows, in order, without blanks (a run of blanks
    is often drawn as a background rectangle, not as text)."""
    svg = re.sub(r"<style.*?</style>", "", svg, flags=re.S)
    return squeezed(html.unescape(re.sub(r"<[^>]+>", "", svg)))


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_the_script_writes_every_screen(tmp_path):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "shots")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    written = sorted(Path(line) for line in out.stdout.split())
    assert written == sorted(tmp_path / "shots" / f"{name}.svg" for name in EXPECTED)
    for name, texts in EXPECTED.items():
        svg = (tmp_path / "shots" / f"{name}.svg").read_text(encoding="utf-8")
        assert svg.startswith("<svg"), name
        text = shown_text(svg)
        for expected in texts:
            assert squeezed(expected) in text, f"{name}.svg does not show {expected!r}"


def test_the_committed_screenshots_are_the_ones_the_readme_shows():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED:
        path = ROOT / "assets" / "screenshots" / f"{name}.svg"
        assert path.stat().st_size > 0, path
        assert f"(assets/screenshots/{name}.svg)" in readme, name
