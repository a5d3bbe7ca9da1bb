"""What the editor needs of an export, as protocols: the client's ``Export`` has all of
it, and so can a test's export in memory. The editor never imports the client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class ExtentView(Protocol):
    """One piece of an allocation map (``nbdtui.client.export.Extent``)."""

    @property
    def offset(self) -> int: ...
    @property
    def length(self) -> int: ...
    @property
    def hole(self) -> bool: ...
    @property
    def zero(self) -> bool: ...


class ExportFlags(Protocol):
    """What the server allows on an export (``nbdtui.proto.types.ExportInfo``)."""

    @property
    def read_only(self) -> bool: ...
    @property
    def can_flush(self) -> bool: ...
    @property
    def can_trim(self) -> bool: ...
    @property
    def can_zero(self) -> bool: ...


class Readable(Protocol):
    """An export the editor reads: its name, size and bytes."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    async def read(self, offset: int, length: int) -> bytes: ...


class Mapped(Protocol):
    """An export that can tell which of its parts are holes or read as zeros: the
    extents of ``offset+length`` in order, yielded as the server reports them (so
    that what is held stays bounded however many there are)."""

    def iter_extents(self, offset: int, length: int) -> AsyncIterator[ExtentView]: ...


class Searchable(Readable, Mapped, Protocol):
    """An export the editor searches: read, and skip what reads as zeros."""


class Writable(Readable, Protocol):
    """An export the editor writes, zeroes, trims and flushes, with its flags."""

    @property
    def info(self) -> ExportFlags: ...
    async def write(self, offset: int, data: bytes) -> None: ...
    async def flush(self) -> None: ...
    async def trim(self, offset: int, length: int) -> None: ...
    async def zero(self, offset: int, length: int) -> None: ...
