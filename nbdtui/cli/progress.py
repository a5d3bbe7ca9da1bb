"""A progress bar on stderr for long transfers, only when stderr is a terminal."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Protocol


class ProgressBar(Protocol):
    """What a transfer tells its progress bar: so many more bytes are done."""

    def advance(self, n: int) -> None: ...


class _Silent:
    def advance(self, n: int) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Bar:
    def __init__(self, description: str, total: int | None):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


# Transfers smaller than this finish before a bar would be worth drawing.
MIN_BYTES_FOR_BAR = 8 * 1024 * 1024


def progress(description: str, total: int | None) -> AbstractContextManager[ProgressBar]:
    if not sys.stderr.isatty() or (total is not None and total < MIN_BYTES_FOR_BAR):
        return _Silent()
    return _Bar(description, total)
