"""What a reply does, whichever engine received it: the events of the transmission
machine (:mod:`nbdtui.proto.client_transmission`) applied to the requests in flight, and the
errors a reply or a broken stream becomes.

The event-loop :class:`~nbdtui.client.connection.Connection` and the threads of
:mod:`nbdtui.client.bulk` both call :func:`deliver` with the events the machine gave
them; READ payload they received in place (straight into the caller's buffer, or
spliced into a file) comes as :class:`~nbdtui.proto.client_events.Data` without bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from nbdtui.client.files import fill_zero, pwrite_all, write_zeroes
from nbdtui.client.messages import COMMAND_WORDS
from nbdtui.client.request import FileRange
from nbdtui.errors import ConnectionLostError, RequestError
from nbdtui.proto.client_events import BlockStatus, Data, Hole, RequestDone, TransmissionEvent
from nbdtui.uri import Endpoint


class Target(Protocol):
    """A request in flight, as the replies see it."""

    @property
    def offset(self) -> int: ...

    @property
    def dest(self) -> memoryview | FileRange | None:
        """Where READ data goes (``None``: nowhere, the caller gave up)."""

    @property
    def statuses(self) -> list[BlockStatus] | None:
        """Where BLOCK_STATUS chunks go (``None``: not collected)."""


def deliver(
    events: Iterable[TransmissionEvent],
    targets: Mapping[int, Target],
    done: Callable[[RequestDone], None],
) -> int:
    """Apply ``events`` to the requests in flight (``targets``, by cookie): READ data and
    holes into their destinations, block status collected, ``done`` called for each
    finished reply (a ChunkError needs nothing: its RequestDone carries the first
    error). Returns the bytes of READ payload the events carried."""
    got = 0
    for ev in events:
        if type(ev) is Data:
            got += ev.length
            data = ev.data
            if data is not None:
                target = targets[ev.cookie]
                dest = target.dest
                if dest is not None:
                    start = ev.offset - target.offset
                    if isinstance(dest, FileRange):
                        pwrite_all(dest.file.fileno(), data, dest.offset + start)
                    else:
                        dest[start : start + ev.length] = data
        elif type(ev) is RequestDone:
            done(ev)
        elif type(ev) is Hole:
            target = targets[ev.cookie]
            dest = target.dest
            if dest is not None:
                start = ev.offset - target.offset
                if isinstance(dest, FileRange):
                    write_zeroes(dest, start, ev.length)
                else:
                    fill_zero(dest, start, ev.length)
        elif type(ev) is BlockStatus:
            statuses = targets[ev.cookie].statuses
            if statuses is not None:
                statuses.append(ev)
    return got


def request_error(done: RequestDone, command: int) -> RequestError:
    """The error a failed reply raises (the connection stays usable)."""
    return RequestError(
        done.error,
        done.message,
        offset=done.offset,
        command=COMMAND_WORDS.get(command, "request"),
    )


def stream_lost(endpoint: Endpoint, exc: BaseException) -> ConnectionLostError:
    """The error of a blocking stream that failed (a thread's recv or send)."""
    return ConnectionLostError(
        f"connection to {endpoint.display} lost ({exc or 'closed by the server'})"
    )
