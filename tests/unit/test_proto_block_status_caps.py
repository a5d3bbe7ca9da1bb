"""What one block status reply may make the client hold (issue 13, item 2): extents of
one kind merged as they are parsed, none kept past the end of the request, at most
MAX_STATUS_EXTENTS per chunk, one chunk per metadata context, a bounded number of
contexts. Bytes in, events out."""

from __future__ import annotations

import pytest

from nbdtui.errors import ProtocolError
from nbdtui.proto import client_transmission
from nbdtui.proto.client_events import BlockStatus, RequestDone
from nbdtui.proto.client_transmission import ClientTransmission
from nbdtui.proto.constants import Command
from tests.support.proto_scenarios import status_chunk


def _status(length: int) -> tuple[ClientTransmission, int]:
    m = ClientTransmission(structured=True)
    cookie, _ = m.request(Command.BLOCK_STATUS, 0, length)
    return m, cookie


def test_extents_of_one_kind_are_merged_as_they_arrive():
    m, c = _status(1 << 20)
    extents = [(1, 0)] * 1000 + [(1, 3)] * 24 + [(4096, 3), (8192, 0)]
    assert m.receive_data(status_chunk(c, 1, extents)) == [
        BlockStatus(c, 1, ((1000, 0), (4120, 3), (8192, 0))),
        RequestDone(c),
    ]


def test_extents_past_the_end_of_the_request_are_not_kept():
    """The one crossing the end is kept whole (the spec allows it), the rest dropped."""
    m, c = _status(100)
    extents = [(60, 0), (50, 3), (4096, 0), (1, 3)]
    [status, done] = m.receive_data(status_chunk(c, 1, extents))
    assert status == BlockStatus(c, 1, ((60, 0), (50, 3)))
    assert done == RequestDone(c)


def test_a_chunk_of_tiny_alternating_extents_keeps_at_most_the_cap(monkeypatch):
    monkeypatch.setattr(client_transmission, "MAX_STATUS_EXTENTS", 1000)
    m, c = _status(1 << 30)
    extents = [(1, i % 2 * 3) for i in range(200_000)]  # nothing to merge
    [status, done] = m.receive_data(status_chunk(c, 1, extents))
    assert len(status.extents) == 1000
    assert status.extents[:2] == ((1, 0), (1, 3))
    assert done == RequestDone(c)


def test_the_default_cap_bounds_a_full_size_chunk():
    """A chunk of the largest size accepted (2**21 one-byte extents, alternating):
    131,072 extents kept, 1 byte each."""
    m, c = _status(1 << 30)
    extents = [(1, i % 2) for i in range(1 << 21)]
    [status, _] = m.receive_data(status_chunk(c, 1, extents))
    assert len(status.extents) == client_transmission.MAX_STATUS_EXTENTS == 1 << 17
    assert sum(n for n, _ in status.extents) == 1 << 17


def test_a_second_chunk_for_a_context_is_not_kept():
    m, c = _status(1 << 20)
    stream = b"".join(status_chunk(c, 1, [(4096, 0)], flags=0) for _ in range(50))
    events = m.receive_data(stream + status_chunk(c, 1, [(512, 3)]))
    assert events == [BlockStatus(c, 1, ((4096, 0),)), RequestDone(c)]


def test_chunks_for_too_many_contexts_are_a_protocol_error():
    m, c = _status(1 << 20)
    stream = b"".join(status_chunk(c, ident, [(4096, 0)], flags=0) for ident in range(16))
    assert len(m.receive_data(stream)) == 16
    with pytest.raises(ProtocolError, match="more than 16 metadata contexts"):
        m.receive_data(status_chunk(c, 99, [(4096, 0)], flags=0))
