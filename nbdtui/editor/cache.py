"""A bounded cache of blocks read from an export, and the read that fills it.

The editor never holds more than ``capacity`` blocks of ``block_size`` bytes (64 × 64 KiB
= 4 MiB by default), whatever the size of the export: the least recently used block is
dropped first.

Each cache has an ``epoch``. ``invalidate()`` empties the cache and starts a new epoch, so
a read that was already in flight when the export was written cannot put the old bytes
back: ``put()`` ignores blocks fetched in an earlier epoch.

A block whose read fails is read again sector by sector, so that one bad sector does not
hide the 127 good sectors around it (data recovery); sectors that still fail are kept as
``bad`` with the server's message and read as zeros in ``data``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nbdtui.errors import ConnectionLostError, NbdError, ProtocolError

BLOCK_SIZE = 64 * 1024
CAPACITY = 64

Reader = Callable[[int, int], Awaitable[bytes]]


@dataclass(frozen=True)
class Block:
    """The bytes of one cache block (``len(data)`` is short at the end of the export)."""

    offset: int
    data: bytes
    bad: dict[int, str] = field(default_factory=dict)  # sector offset (absolute) -> error

    def bad_at(self, offset: int, sector_size: int) -> str | None:
        """The read error of the sector holding ``offset``, or ``None`` if it was read."""
        if not self.bad:
            return None
        return self.bad.get(offset - offset % sector_size)


class BlockCache:
    """Least-recently-used cache of :class:`Block` objects keyed by block index."""

    def __init__(self, block_size: int = BLOCK_SIZE, capacity: int = CAPACITY):
        if block_size <= 0 or capacity <= 0:
            raise ValueError("block size and capacity must be positive")
        self.block_size = block_size
        self.capacity = capacity
        self.epoch = 0
        self._blocks: OrderedDict[int, Block] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, index: int) -> bool:
        return index in self._blocks

    def index_of(self, offset: int) -> int:
        return offset // self.block_size

    def get(self, index: int) -> Block | None:
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
        return block

    def block_at(self, offset: int) -> Block | None:
        return self.get(self.index_of(offset))

    def put(self, index: int, block: Block, epoch: int | None = None) -> bool:
        """Store ``block``; refused (``False``) when it was read in an older epoch."""
        if epoch is not None and epoch != self.epoch:
            return False
        self._blocks[index] = block
        self._blocks.move_to_end(index)
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
        return True

    def invalidate(self) -> None:
        """Forget every block; reads started before this call will not be stored."""
        self._blocks.clear()
        self.epoch += 1

    def byte_at(self, offset: int) -> int | None:
        """The cached byte at ``offset`` (``None`` when its block is not cached)."""
        block = self._blocks.get(self.index_of(offset))
        if block is None:
            return None
        pos = offset - block.offset
        return block.data[pos] if pos < len(block.data) else None

    def peek(self, offset: int, length: int) -> bytes | None:
        """``length`` cached bytes from ``offset`` (shorter at a missing block or the end)."""
        out = bytearray()
        while len(out) < length:
            block = self._blocks.get(self.index_of(offset + len(out)))
            if block is None:
                break
            pos = offset + len(out) - block.offset
            chunk = block.data[pos : pos + length - len(out)]
            if not chunk:
                break
            out += chunk
        return bytes(out) if out else None


async def read_block(read: Reader, offset: int, length: int, sector_size: int) -> Block:
    """Read one block; on a request error, read it again sector by sector.

    Connection-level errors (the connection is gone or broken) are raised: reading the
    sectors one by one would only fail 128 more times.
    """
    try:
        return Block(offset, await read(offset, length))
    except (ConnectionLostError, ProtocolError):
        raise
    except NbdError:
        pass
    data = bytearray(length)
    bad: dict[int, str] = {}
    pos = offset
    while pos < offset + length:
        size = min(sector_size - pos % sector_size, offset + length - pos)
        try:
            data[pos - offset : pos - offset + size] = await read(pos, size)
        except (ConnectionLostError, ProtocolError):
            raise
        except NbdError as error:
            bad[pos - pos % sector_size] = str(error)
        pos += size
    return Block(offset, bytes(data), bad)
