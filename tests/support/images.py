"""Disk images for the tests, made with qemu-img."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

from tests.support.requirements import require

# --------------------------------------------------------------------------- images


def make_image(
    tmp_path: Path,
    size: int,
    fmt: str = "raw",
    content: bytes | None = None,
    name: str | None = None,
) -> Path:
    """Create a ``size``-byte disk image with ``qemu-img create``; ``content`` goes at offset 0.

    For qcow2 with content, a raw image is written first and converted, so the guest-visible
    bytes are exactly ``content`` followed by zeros.
    """
    qemu_img = require("qemu-img")
    if content is not None and len(content) > size:
        raise ValueError(f"content ({len(content)} bytes) is larger than the image ({size})")
    if name is None:
        for n in itertools.count(1):
            path = tmp_path / f"image-{n}.{fmt}"
            if not path.exists():
                break
    else:
        path = tmp_path / name
    tmp_path.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        proc = subprocess.run([qemu_img, *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"qemu-img {' '.join(args)}: {proc.stderr.strip()}")

    if fmt == "raw" or content is None:
        run("create", "-q", "-f", fmt, str(path), str(size))
        if content:  # only raw gets here with content
            with path.open("r+b") as f:
                f.write(content)
        return path
    raw = path.with_name(path.name + ".raw-source")
    run("create", "-q", "-f", "raw", str(raw), str(size))
    with raw.open("r+b") as f:
        f.write(content)
    run("convert", "-q", "-f", "raw", "-O", fmt, str(raw), str(path))
    raw.unlink()
    return path
