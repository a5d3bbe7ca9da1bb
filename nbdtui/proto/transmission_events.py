"""The events of :mod:`nbdtui.proto.transmission` (frozen dataclasses), and the fast
constructors its parser builds them with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Data:
    """``length`` bytes of the export at ``offset`` for READ ``cookie``.

    ``data`` holds them when they came through ``receive_data``; it is ``None`` when the
    driver received them itself (``payload_received``) into the target it was given.
    """

    cookie: int
    offset: int
    length: int
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Hole:
    """``length`` bytes at ``offset`` read as zeroes (structured OFFSET_HOLE chunk)."""

    cookie: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class BlockStatus:
    """One NBD_REPLY_TYPE_BLOCK_STATUS chunk: ``extents`` are ``(length, flags)`` pairs
    describing consecutive bytes from the request's offset."""

    cookie: int
    context_id: int
    extents: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ChunkError:
    """An error chunk (``offset`` is set for NBD_REPLY_TYPE_ERROR_OFFSET)."""

    cookie: int
    error: int
    message: str = ""
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class RequestDone:
    """The reply to ``cookie`` is complete; ``error`` is 0 or the first error reported."""

    cookie: int
    error: int = 0
    message: str = ""
    offset: int | None = None

    @property
    def ok(self) -> bool:
        return self.error == 0


@dataclass(frozen=True, slots=True)
class ReadTarget:
    """The next ``length`` bytes on the wire are READ payload for ``cookie``, to be
    stored at export offset ``offset`` (``offset - request offset`` in its buffer)."""

    cookie: int
    offset: int
    length: int


Event = Data | Hole | BlockStatus | ChunkError | RequestDone

# Constructors for the events of every reply (the hot path). A frozen dataclass's
# generated __init__ stores each field through object.__setattr__ (about 1.3 µs for four
# fields); storing through the slot descriptors builds the very same object in well under
# half of that. Positional, every field given.
_new = object.__new__
_data_set = (Data.cookie.__set__, Data.offset.__set__, Data.length.__set__, Data.data.__set__)
_done_set = (
    RequestDone.cookie.__set__,
    RequestDone.error.__set__,
    RequestDone.message.__set__,
    RequestDone.offset.__set__,
)
_target_set = (ReadTarget.cookie.__set__, ReadTarget.offset.__set__, ReadTarget.length.__set__)


def make_data(
    cookie: int,
    offset: int,
    length: int,
    data: bytes | memoryview | None,
    _s: tuple = _data_set,
) -> Data:
    ev = _new(Data)
    _s[0](ev, cookie)
    _s[1](ev, offset)
    _s[2](ev, length)
    _s[3](ev, data)
    return ev


def make_done(
    cookie: int, error: int, message: str, offset: int | None, _s: tuple = _done_set
) -> RequestDone:
    ev = _new(RequestDone)
    _s[0](ev, cookie)
    _s[1](ev, error)
    _s[2](ev, message)
    _s[3](ev, offset)
    return ev


def make_target(cookie: int, offset: int, length: int, _s: tuple = _target_set) -> ReadTarget:
    ev = _new(ReadTarget)
    _s[0](ev, cookie)
    _s[1](ev, offset)
    _s[2](ev, length)
    return ev
