"""The block cache stays bounded, drops the least recently used block, refuses stale
reads after an invalidation, and reads around bad sectors."""

from __future__ import annotations

from nbdtui.editor.cache import Block, BlockCache, read_block
from nbdtui.errors import ConnectionLostError
from tests.support.fakes import MemoryExport


def test_bounded_lru():
    cache = BlockCache(block_size=16, capacity=3)
    for i in range(10):
        cache.put(i, Block(i * 16, bytes([i]) * 16))
        assert len(cache) <= 3
    assert [i in cache for i in (6, 7, 8, 9)] == [False, True, True, True]
    cache.get(7)  # 7 is now the most recent: 8 goes next
    cache.put(10, Block(160, b"x" * 16))
    assert 8 not in cache and 7 in cache
    assert cache.byte_at(7 * 16 + 3) == 7
    assert cache.byte_at(8 * 16) is None


def test_peek_crosses_blocks_and_stops_at_a_gap():
    cache = BlockCache(block_size=4, capacity=8)
    cache.put(0, Block(0, b"abcd"))
    cache.put(1, Block(4, b"efgh"))
    cache.put(3, Block(12, b"mn"))
    assert cache.peek(2, 4) == b"cdef"
    assert cache.peek(6, 8) == b"gh"
    assert cache.peek(8, 2) is None
    assert cache.peek(12, 9) == b"mn"


def test_invalidate_refuses_reads_started_before():
    cache = BlockCache()
    epoch = cache.epoch
    cache.invalidate()
    assert not cache.put(0, Block(0, b"old"), epoch)
    assert 0 not in cache
    assert cache.put(0, Block(0, b"new"), cache.epoch)


async def test_read_block_narrows_a_failure_to_the_bad_sector():
    mem = MemoryExport(1 << 20)
    mem.put(0, b"A" * 4096)
    mem.bad.add(1024 + 7)
    block = await read_block(mem.read, 0, 4096, 512)
    assert block.bad.keys() == {1024}
    assert block.data[:1024] == b"A" * 1024 and block.data[1024:1536] == bytes(512)
    assert block.data[1536:] == b"A" * (4096 - 1536)
    assert block.bad_at(1030, 512) and block.bad_at(1536, 512) is None
    assert mem.reads == [(0, 4096)] + [(s, 512) for s in range(0, 4096, 512)]


async def test_read_block_gives_up_when_the_connection_is_gone():
    async def dead(offset, length):
        raise ConnectionLostError("gone")

    try:
        await read_block(dead, 0, 4096, 512)
    except ConnectionLostError:
        pass
    else:  # pragma: no cover
        raise AssertionError("expected ConnectionLostError")
