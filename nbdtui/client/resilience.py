"""Surviving a bad network and a bad server: request timeouts, reconnecting, replay.

The pieces the :class:`~nbdtui.client.pool.ExportGroup` of an export uses:

* :func:`perform` / :func:`perform_all` send requests over the group's connections and
  wait for their outcome. A request whose connection is lost before its reply arrives
  is *sent again* on a new connection when the group reconnects (NBD reads, writes,
  zeroes, trims and flushes are idempotent, so a write whose fate is unknown is simply
  written again); when the group gives up, the request fails with
  :class:`~nbdtui.errors.ConnectionLostError`. Nothing is dropped silently: every request
  ends with its reply or with an error.
* :class:`Watchdog` remembers when each request in flight was sent, gives the age of the
  oldest one per connection (the pool screen shows a *stalled* connection), and with a
  per-request timeout fails a request that waits too long with
  :class:`~nbdtui.errors.RequestTimeoutError`; the group then closes that connection
  (a timed-out request's cookie is never reused on the same stream) and opens a new one,
  and the other requests that were in flight on it are sent again.
* :class:`Backoff` (0.1 s doubling to 2 s) paces reconnect attempts, and
  :func:`check_compatible` refuses a reconnection to an export that changed in a way
  that matters (it shrank, became read-only, lost a capability in use).

Errors a server reports for one request (:class:`~nbdtui.errors.RequestError`) and
protocol violations (:class:`~nbdtui.errors.ProtocolError`) are never replayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nbdtui.client.connection import COMMAND_WORDS, Connection
from nbdtui.client.requests import PendingRequest
from nbdtui.errors import ConnectionLostError, ExportChangedError, NbdError, RequestError
from nbdtui.proto.constants import BASE_ALLOCATION, DEFAULT_BLOCK_MAX, Command
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.events import Negotiated

if TYPE_CHECKING:  # pragma: no cover
    from nbdtui.client.pool import ExportGroup

BACKOFF_START = 0.1
BACKOFF_MAX = 2.0
# A request in flight for longer than this shows its connection as stalled.
STALL_SECONDS = 3.0

# Commands whose success changes the export (counted until the next flush).
_CHANGES = frozenset({int(Command.WRITE), int(Command.WRITE_ZEROES), int(Command.TRIM)})

# Capabilities whose loss across a reconnect breaks what the export promised its users.
_CAPABILITIES = {
    TF.SEND_FLUSH: "flush",
    TF.SEND_FUA: "FUA",
    TF.SEND_TRIM: "trim",
    TF.SEND_WRITE_ZEROES: "write zeroes",
    TF.SEND_FAST_ZERO: "fast zero",
    TF.SEND_DF: "DF",
    TF.CAN_MULTI_CONN: "multi-conn",
    TF.SEND_CACHE: "cache",
}

Job = tuple[int, int, int, int, Any, Any]  # command, offset, length, flags, payload, dest


def describe(command: int, offset: int, length: int) -> str:
    """``read of 4096 bytes at offset 0x1000``; ``flush`` for a flush."""
    word = COMMAND_WORDS.get(command, "request")  # type: ignore[call-overload]
    if command == Command.FLUSH:
        return word
    return f"{word} of {length} byte{'' if length == 1 else 's'} at offset {offset:#x}"


def locate(exc: RequestError, where: str, offset: int, length: int) -> RequestError:
    """The same server error with the request's range and the server in its message.

    ``errno``, ``errno_name``, ``offset`` (the byte the server blamed, if it said) and
    ``command`` stay as they were; ``request_offset`` / ``request_length`` are added.
    """
    new = RequestError(exc.errno, exc.server_message, offset=exc.offset, command=exc.command)
    new.request_offset = offset  # type: ignore[attr-defined]
    new.request_length = length  # type: ignore[attr-defined]
    span = f" for {length} byte{'' if length == 1 else 's'} at offset {offset:#x}"
    if exc.command in (None, "flush"):
        span = ""
    new.args = (f"{new}{span} (server {where})",)
    return new


class Backoff:
    """Delays between reconnect attempts: ``start`` doubling up to ``maximum``."""

    def __init__(self, start: float = BACKOFF_START, maximum: float = BACKOFF_MAX) -> None:
        self.start = start
        self.maximum = maximum
        self._next = start

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.start


def check_compatible(before: Negotiated, after: Negotiated, where: str) -> None:
    """Raise :class:`ExportChangedError` when the export a reconnect reached is not one
    the open :class:`~nbdtui.client.export.Export` can keep using. A bigger size is fine
    (the export keeps its size); anything it relied on must still be there."""
    old, new = before.info, after.info
    name = repr(old.name or "")
    problems = []
    if new.size < old.size:
        problems.append(f"its size shrank from {old.size} to {new.size} bytes")
    if new.read_only and not old.read_only:
        problems.append("it became read-only")
    lost = [w for flag, w in _CAPABILITIES.items() if old.flags & flag and not new.flags & flag]
    if lost:
        problems.append(f"it no longer supports {', '.join(lost)}")
    if (new.block_minimum or 1) > (old.block_minimum or 1):
        problems.append(
            f"its minimum block size grew from {old.block_minimum or 1} to {new.block_minimum}"
        )
    old_max = old.block_maximum or DEFAULT_BLOCK_MAX
    new_max = new.block_maximum or DEFAULT_BLOCK_MAX
    if new_max < old_max:
        problems.append(f"its maximum payload shrank from {old_max} to {new_max} bytes")
    had_allocation = before.context_id(BASE_ALLOCATION) is not None
    if before.structured and not after.structured:
        problems.append("it no longer offers structured replies")
    elif had_allocation and after.context_id(BASE_ALLOCATION) is None:
        problems.append(f"it no longer offers {BASE_ALLOCATION}")
    if problems:
        raise ExportChangedError(
            f"export {name} on {where} changed while nbdtui was reconnecting: "
            f"{'; '.join(problems)}; nbdtui stopped using it (open it again)"
        )


class Watchdog:
    """Ages of the requests in flight; see the module documentation.

    Each request carries the time it was sent (``PendingRequest.sent_at``) and each
    connection keeps its requests in the order they were sent, so the oldest request
    of a connection is the first one still waited for: nothing is recorded per request
    here (a done callback per request cost a loop callback on the hot path).

    ``connections()`` gives the connections to watch; ``on_expired(connection, pending,
    age)`` is called for the oldest request of a connection once it is older than
    ``timeout`` (``None``: no limit) and must settle the request's future.
    """

    def __init__(
        self,
        on_expired: Callable[[Connection, PendingRequest, float], None],
        connections: Callable[[], Iterable[Connection]],
    ) -> None:
        self._timeout: float | None = None
        self._on_expired = on_expired
        self._connections = connections
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        if value is not None and value <= 0:
            raise ValueError("timeout must be greater than 0")
        self._timeout = value
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if value is not None:
            self._arm_for_oldest()

    def track(self, pending: PendingRequest) -> None:
        """``pending`` was just sent: make sure a timer runs while a timeout is set."""
        if self._timeout is not None and self._timer is None:
            self._arm(pending.sent_at)

    def _arm(self, sent_at: float) -> None:
        assert self._timeout is not None
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._timer = loop.call_at(sent_at + self._timeout, self._check)

    def _check(self) -> None:
        self._timer = None
        timeout = self._timeout
        if timeout is None or self._loop is None:
            return
        now = self._loop.time()
        expired = []
        for conn in list(self._connections()):
            pending = _oldest(conn)
            if pending is not None and now - pending.sent_at >= timeout - 1e-3:
                expired.append((conn, pending, now - pending.sent_at))
        for conn, pending, age in expired:
            if not pending.future.done():
                self._on_expired(conn, pending, age)
        if self._timer is None:  # (requests sent meanwhile armed it already)
            self._arm_for_oldest()

    def _arm_for_oldest(self) -> None:
        """Arm the timer for the oldest request in flight on any connection, if any."""
        sent = [p.sent_at for p in map(_oldest, self._connections()) if p is not None]
        if sent:
            self._arm(min(sent))

    def oldest(self, conn: Connection) -> float:
        """Seconds the oldest request in flight on ``conn`` has waited (0 when none)."""
        pending = _oldest(conn)
        if pending is None:
            return 0.0
        return max(pending.future.get_loop().time() - pending.sent_at, 0.0)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _oldest(conn: Connection) -> PendingRequest | None:
    """The oldest request in flight on ``conn`` whose caller still waits for it."""
    for pending in conn.pending_requests():
        if not pending.future.done():
            return pending
    return None


# ---- sending with replay --------------------------------------------------------------

# A request is sent at most this many times: a server that dies on one request every
# time it gets it must not be fed it forever.
MAX_SENDS = 5


def _gave_up_on(exc: ConnectionLostError, command: int, offset: int, length: int) -> NbdError:
    return ConnectionLostError(
        f"{describe(command, offset, length)} was sent {MAX_SENDS} times and each time the "
        f"connection was lost before the reply; giving up on it ({exc})"
    )


async def perform(
    group: ExportGroup,
    command: int,
    offset: int = 0,
    length: int = 0,
    flags: int = 0,
    *,
    payload: Any = None,
    dest: memoryview | None = None,
) -> tuple[Any, Connection]:
    """Send one request and wait for its outcome: ``(result, connection that answered)``.

    Sent again after a connection loss while the group reconnects; a server error
    raises :class:`~nbdtui.errors.RequestError` with the request's range in its message.
    """
    sends = 0
    while True:
        sent = group.send_nowait(command, offset, length, flags, payload, dest)
        if sent is None:
            sent = await group.send(command, offset, length, flags, payload, dest)
        conn, pending = sent
        sends += 1
        try:
            result = await pending.future
        except asyncio.CancelledError:
            pending.abandon()
            raise
        except ConnectionLostError as exc:
            if not group.may_replay(exc):
                raise
            if sends >= MAX_SENDS:
                raise _gave_up_on(exc, command, offset, length) from exc
            continue
        except RequestError as exc:
            raise locate(exc, group.endpoint.display, offset, length) from exc
        group.succeeded(conn, command)
        return result, conn


async def perform_all(group: ExportGroup, jobs: Iterable[Job]) -> None:
    """Send ``(command, offset, length, flags, payload, dest)`` jobs, keeping as many in
    flight as the connections allow; replay those a lost connection took with it; raise
    the first error once every request sent has an outcome."""
    # (job, request, connection, times sent)
    sent: list[tuple[Job, PendingRequest, Connection, int]] = []
    stop: list[bool] = []

    def note(future: asyncio.Future) -> None:
        if not future.cancelled():
            exc = future.exception()  # (retrieved even when nobody else will look)
            if exc is not None and not stop and not group.may_replay(exc):
                stop.append(True)

    try:
        for job in jobs:
            if stop:
                break
            conn, pending = await group.send(*job)
            pending.future.add_done_callback(note)
            sent.append((job, pending, conn, 1))
        while sent:
            await asyncio.wait([p.future for _, p, _, _ in sent])
            again: list[tuple[Job, int]] = []
            error: BaseException | None = None
            for job, pending, conn, sends in sent:
                future = pending.future
                if future.cancelled():  # pragma: no cover - only abandon() cancels
                    raise asyncio.CancelledError
                exc = future.exception()
                if exc is None:
                    group.succeeded(conn, job[0])
                elif isinstance(exc, ConnectionLostError) and group.may_replay(exc):
                    if sends < MAX_SENDS:
                        again.append((job, sends))
                    elif error is None:
                        error = _gave_up_on(exc, job[0], job[1], job[2])
                elif error is None:
                    error = exc
                    if isinstance(exc, RequestError):
                        error = locate(exc, group.endpoint.display, job[1], job[2])
            sent = []
            if error is not None:
                raise error
            for job, sends in again:
                conn, pending = await group.send(*job)
                pending.future.add_done_callback(note)
                sent.append((job, pending, conn, sends + 1))
    except BaseException:
        for _, pending, _, _ in sent:
            pending.abandon()
        raise
