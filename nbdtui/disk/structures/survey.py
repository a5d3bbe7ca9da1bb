"""From the partition table down into each partition: what ``nbdtui inspect`` shows.

:func:`probe_at` tries every decoder of :data:`~nbdtui.disk.structures.registry.PROBES`
at one offset and returns the first structure found. :func:`survey_plan` decodes the
partition table and probes each partition (or the whole export when there is no table),
or only the structure at one offset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

from nbdtui.disk.partitions import Partition, partition_table_plan
from nbdtui.disk.structures import tables
from nbdtui.disk.structures.field_specs import fetch
from nbdtui.disk.structures.model import Request, Structure
from nbdtui.disk.structures.registry import PROBES

__all__ = ["Found", "Survey", "block_reader", "bounded", "probe_at", "survey_plan"]

BLOCK = 64 * 1024
MAX_CACHED_BLOCKS = 256


@dataclass(frozen=True)
class Found:
    """What lies at one place: a partition (or the whole export) and its structure."""

    offset: int
    size: int
    structure: Structure | None
    partition: Partition | None = None


@dataclass(frozen=True)
class Survey:
    size: int  # of the export
    table: Structure | None
    absence: str  # why there is no partition table ("" when there is one)
    found: tuple[Found, ...]


_T = TypeVar("_T")


def bounded(
    plan: Generator[Request, bytes, _T], low: int, high: int
) -> Generator[Request, bytes, _T]:
    """``plan`` with every read cut to ``[low, high)``: a read outside gets no bytes (the
    decoders take a short read as "not there"), so none reaches past a partition."""
    try:
        offset, length = next(plan)
        while True:
            start, end = max(offset, low), min(offset + length, high)
            data = (yield (start, end - start)) if start < end else b""
            if start > offset:  # starts before the space: its bytes would be misplaced
                data = b""
            offset, length = plan.send(bytes(data or b""))
    except StopIteration as stop:
        result: _T = stop.value
        return result


def probe_at(offset: int, size: int) -> Generator[Request, bytes, Structure | None]:
    """The first structure a decoder finds at ``offset`` (``size`` bytes from there)."""
    for _names, probe in PROBES:
        found = yield from bounded(probe(offset, size), offset, offset + size)
        if found is not None:
            return found
    return None


_Place = tuple[int, int, Partition | None]


def _places(partitions: tuple[Partition, ...], disk: int) -> list[_Place]:
    out: list[_Place] = []
    for p in partitions:
        if p.is_extended or p.type_id == "0xee" or p.start >= disk:
            continue
        out.append((p.start, min(p.size, disk - p.start), p))
    return out


def survey_plan(disk: int, offset: int | None = None) -> Generator[Request, bytes, Survey]:
    """Everything found on an export of ``disk`` bytes, or only at ``offset``."""
    table = yield from bounded(tables.probe(0, disk), 0, disk)
    absence = ""
    if table is None:
        sector0 = yield from fetch(0, min(512, disk))
        absence = tables.absence(sector0)
    parsed = yield from partition_table_plan(disk, None)
    partitions = parsed.partitions if parsed is not None else ()
    places = _places(partitions, disk)
    if offset is not None:
        for start, size, p in places:
            if start == offset:
                places = [(start, size, p)]
                break
        else:
            if offset == 0 and table is not None:
                return Survey(disk, table, absence, ())
            places = [(offset, disk - offset, None)] if 0 <= offset < disk else []
        if offset != 0:
            table = None
    elif not places:
        places = [(0, disk, None)]
    found = []
    for start, size, p in places:
        structure = yield from probe_at(start, size)
        found.append(Found(start, size, structure, p))
    return Survey(disk, table, absence, tuple(found))


def block_reader(
    aread: Callable[[int, int], Awaitable[bytes]], size: int, block: int = BLOCK
) -> Callable[[int, int], Awaitable[bytes]]:
    """``aread`` in whole aligned blocks, each read once and kept (up to
    :data:`MAX_CACHED_BLOCKS`): a survey asks for many small pieces of the same few
    places, and on a slow link each round trip counts. Reads stop at ``size``."""
    blocks: dict[int, bytes] = {}

    async def get(index: int) -> bytes:
        data = blocks.get(index)
        if data is None:
            start = index * block
            data = await aread(start, min(block, size - start)) if start < size else b""
            if len(blocks) >= MAX_CACHED_BLOCKS:
                blocks.pop(next(iter(blocks)))
            blocks[index] = data
        return data

    async def read(offset: int, length: int) -> bytes:
        end = min(offset + length, size)
        out = bytearray()
        pos = max(offset, 0)
        while pos < end:
            data = await get(pos // block)
            inner = pos % block
            piece = data[inner : inner + end - pos]
            if not piece:
                break
            out += piece
            pos += len(piece)
        return bytes(out)

    return read
