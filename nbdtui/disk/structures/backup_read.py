"""Reading a backup copy inside a decoder's plan, on a disk that may be damaged."""

from __future__ import annotations

from collections.abc import Generator

from nbdtui.disk.structures.model import Backup, Request
from nbdtui.errors import RequestError


def read_backup(at: int, length: int) -> Generator[Request, bytes, bytes | None]:
    """The bytes of a backup copy, or None when the server failed to read them (a
    driver that throws read errors into the plan, as the scan's does): the copy is then
    reported unreadable instead of the whole structure being lost."""
    try:
        data: bytes = yield (at, length)
    except RequestError:
        return None
    return data


def unreadable(at: int, length: int, label: str) -> Backup:
    """A backup copy the server could not read."""
    return Backup(at, length, matches=False, sound=False, differences=("unreadable",), label=label)
