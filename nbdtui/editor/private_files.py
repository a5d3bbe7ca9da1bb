"""Files that only their owner may read: the undo journal and the recent endpoints.

The undo journal holds the old bytes of overwritten sectors (a zero or trim in the
editor saves up to 32 MiB of them), the history the endpoints a person used. Both are
created 0600, in directories created 0700, whatever the umask; a file found more open
(an older nbdtui made them 0644 in 0755 directories) is tightened when it is opened, and
so are SQLite's side files (``-wal``, ``-shm``, ``-journal``).

A directory is tightened only when it is nbdtui's own (the default location in the
user's config or data directory): a path given on the command line may live in a
directory that others share, such as ``/tmp``, whose mode is not ours to change.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def tighten(path: Path, *, directory: bool = False) -> None:
    """Take the group's and others' permissions off ``path`` if we own it and it is a
    regular file (a directory with ``directory``)."""
    status = path.stat()
    kind = stat.S_ISDIR if directory else stat.S_ISREG
    if kind(status.st_mode) and status.st_mode & 0o077 and status.st_uid == os.getuid():
        os.chmod(path, status.st_mode & 0o700)


def private_directory(path: Path, *, ours: bool) -> None:
    """Make ``path`` and its missing parents, each 0700; tighten it if ``ours``."""
    missing = []
    walk = path
    while not walk.exists():
        missing.append(walk)
        if walk.parent == walk:
            break
        walk = walk.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:  # made meanwhile by another process: tightened below
            continue
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
    if ours:
        tighten(path, directory=True)


def private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists; tighten it and its side files."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask too
        finally:
            os.close(fd)
    tighten(path)
    for suffix in SQLITE_SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):  # or gone meanwhile (a checkpoint)
            tighten(path.with_name(path.name + suffix))


def private_database(path: Path, *, ours: bool) -> None:
    """Prepare an SQLite file at ``path``: its directory, then the file, both private."""
    private_directory(path.parent, ours=ours)
    private_file(path)
