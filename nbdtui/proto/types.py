"""Plain data of the NBD protocol core: what an export is, and where READ payload goes.

These are values, not events: the machines put them inside their events
(:class:`~nbdtui.proto.client_events.Negotiated` carries an :class:`ExportInfo`,
:class:`~nbdtui.proto.client_events.ExportsListed` a tuple of :class:`ExportDetails`, the
server's :class:`~nbdtui.proto.server_events.TransmissionStarted` the
:class:`ExportInfo` it sent) or return them from queries
(:meth:`~nbdtui.proto.client_transmission.ClientTransmission.read_target`). ``client/``,
``server/``, the CLI and the TUI show and pass them around.
"""

from __future__ import annotations

from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.records import Record, SlotSetter


class ExportInfo(Record):
    """What the server told us about one export.

    Block sizes are ``None`` when the server did not send NBD_INFO_BLOCK_SIZE.
    """

    _fields = (
        "name",
        "size",
        "flags",
        "description",
        "block_minimum",
        "block_preferred",
        "block_maximum",
    )
    __slots__ = _fields
    name: str
    size: int
    flags: int
    description: str | None
    block_minimum: int | None
    block_preferred: int | None
    block_maximum: int | None

    def __init__(
        self,
        name: str,
        size: int,
        flags: int,
        description: str | None = None,
        block_minimum: int | None = None,
        block_preferred: int | None = None,
        block_maximum: int | None = None,
    ) -> None:
        s = self._set
        s[0](self, name)
        s[1](self, size)
        s[2](self, flags)
        s[3](self, description)
        s[4](self, block_minimum)
        s[5](self, block_preferred)
        s[6](self, block_maximum)

    def _has(self, flag: TF) -> bool:
        return bool(self.flags & TF.HAS_FLAGS) and bool(self.flags & flag)

    @property
    def read_only(self) -> bool:
        # Honoured even without HAS_FLAGS (as libnbd does): a server that says its export
        # is read-only but forgot HAS_FLAGS must not be written to.
        return bool(self.flags & TF.READ_ONLY)

    @property
    def flags_without_has_flags(self) -> bool:
        """The server sent transmission flags but not HAS_FLAGS, which the spec says it
        must always set: READ_ONLY is honoured, no other capability is assumed."""
        return bool(self.flags) and not self.flags & TF.HAS_FLAGS

    @property
    def rotational(self) -> bool:
        return self._has(TF.ROTATIONAL)

    @property
    def can_flush(self) -> bool:
        return self._has(TF.SEND_FLUSH)

    @property
    def can_fua(self) -> bool:
        return self._has(TF.SEND_FUA)

    @property
    def can_trim(self) -> bool:
        return self._has(TF.SEND_TRIM)

    @property
    def can_zero(self) -> bool:
        return self._has(TF.SEND_WRITE_ZEROES)

    @property
    def can_fast_zero(self) -> bool:
        return self._has(TF.SEND_FAST_ZERO)

    @property
    def can_df(self) -> bool:
        return self._has(TF.SEND_DF)

    @property
    def can_multi_conn(self) -> bool:
        return self._has(TF.CAN_MULTI_CONN)

    @property
    def can_cache(self) -> bool:
        return self._has(TF.SEND_CACHE)

    @property
    def can_resize(self) -> bool:
        return self._has(TF.SEND_RESIZE)


class ExportDetails(Record):
    """One entry of NBD_OPT_LIST, with NBD_OPT_INFO details when the server gave them."""

    _fields = ("name", "description", "info", "contexts")
    __slots__ = _fields
    name: str
    description: str
    info: ExportInfo | None
    contexts: tuple[str, ...] | None

    def __init__(
        self,
        name: str,
        description: str,
        info: ExportInfo | None = None,
        contexts: tuple[str, ...] | None = None,
    ) -> None:
        s = self._set
        s[0](self, name)
        s[1](self, description)
        s[2](self, info)
        s[3](self, contexts)


class ReadTarget(Record):
    """The next ``length`` bytes on the wire are READ payload for ``cookie``, to be
    stored at export offset ``offset`` (``offset - request offset`` in its buffer).

    Returned by ``ClientTransmission.read_target()``; built by :func:`make_target`.
    """

    _fields = ("cookie", "offset", "length")
    __slots__ = _fields
    cookie: int
    offset: int
    length: int

    def __init__(self, cookie: int, offset: int, length: int) -> None:
        s = self._set
        s[0](self, cookie)
        s[1](self, offset)
        s[2](self, length)


# The fast constructor of ReadTarget (see client_events for the others): positional,
# every field given.
_new = object.__new__
_target_set = ReadTarget._set


def make_target(
    cookie: int, offset: int, length: int, _s: tuple[SlotSetter, ...] = _target_set
) -> ReadTarget:
    ev = _new(ReadTarget)
    _s[0](ev, cookie)
    _s[1](ev, offset)
    _s[2](ev, length)
    return ev
