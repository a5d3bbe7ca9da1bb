"""How a failed or odd handshake is told, the same whichever driver ran it: the asyncio
one (:mod:`nbdtui.client.negotiate`) or the blocking one
(:mod:`nbdtui.client.negotiate_blocking`: one-shot commands, the bulk engine's TLS
connections).

- :func:`locate_error`: a handshake or protocol error with the server's location;
- :func:`timed_out`: what was slow when the connect timeout expired;
- :func:`warn_flags`: the warning for transmission flags sent without HAS_FLAGS, on the
  ``nbdtui.client.rules`` logger (servers that break a rule nbdtui can live with; the
  command line prints these on stderr; without a handler of the application's, nothing
  is printed), or to a callable the caller gives (the command line's blocking path).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from nbdtui.errors import ConnectError, HandshakeError, NbdError, ProtocolError
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.types import ExportInfo
from nbdtui.uri import Endpoint

__all__ = ["RULES_LOGGER", "locate_error", "located_faults", "timed_out", "warn_flags"]

RULES_LOGGER = "nbdtui.client.rules"


def locate_error(exc: NbdError, endpoint: Endpoint) -> NbdError:
    """The same error with the server's location appended."""
    where = endpoint.display
    message = str(exc)
    if where in message:
        return exc
    if isinstance(exc, HandshakeError):
        new: NbdError = type(exc)(f"{message} on {where}", reply=exc.reply, option=exc.option)
        # the server's own text, an attribute the handshake sets ("" when there is none)
        vars(new)["server_message"] = getattr(exc, "server_message", "")
    elif isinstance(exc, ProtocolError):
        new = ProtocolError(f"{message} (server {where})")
    else:
        return exc
    new.__cause__ = exc.__cause__
    return new


def warn_flags(
    endpoint: Endpoint, info: ExportInfo, warn: Callable[[str], None] | None = None
) -> None:
    """Warn when the server sent transmission flags without HAS_FLAGS: to ``warn``, else
    on the ``nbdtui.client.rules`` logger (imported only then: importing logging was a
    twelfth of the start-up of ``nbdtui info``)."""
    if not info.flags_without_has_flags:
        return
    if info.read_only:
        outcome = "nbdtui honours READ_ONLY and assumes no other capability"
    else:
        outcome = "nbdtui assumes no capability"
    where = endpoint.display if not info.name else f"{endpoint.display}, export {info.name!r}"
    text = (
        f"server {where} sent transmission flags {info.flags:#x} without HAS_FLAGS, which "
        f"the NBD protocol requires: {outcome}"
    )
    if warn is not None:
        warn(text)
        return
    import logging

    rules = logging.getLogger(RULES_LOGGER)
    if not any(isinstance(h, logging.NullHandler) for h in rules.handlers):
        rules.addHandler(logging.NullHandler())  # an application's handler decides
    rules.warning("%s", text)


def timed_out(endpoint: Endpoint, hs: ClientHandshake, timeout: float | None) -> str:
    """What was slow when the connect timeout expired: connecting, or a listing that was
    still arriving (a large one can take longer than the connection did)."""
    where = endpoint.display
    after = f"after {timeout:g} s" if timeout is not None else ""
    listing = hs.listing
    if listing is None:
        return f"timed out connecting to {where} {after}"
    done, total = listing
    hint = "the export list was still arriving: a longer connect timeout gives it time"
    if total is None:
        return f"timed out {after} receiving the export list of {where} ({done} so far; {hint})"
    return (
        f"timed out {after} asking {where} about its exports ({done} of {total} described; {hint})"
    )


@contextlib.contextmanager
def located_faults(
    endpoint: Endpoint, hs: ClientHandshake, connect_timeout: float | None
) -> Iterator[None]:
    """A handshake's failures as every driver reports them (the asyncio one, the blocking
    one-shot and TLS bulk ones): a timeout says what was slow, an NbdError gets the
    server's location, an OSError becomes :func:`~nbdtui.client.transport.openers.connect_error`."""
    try:
        yield
    except TimeoutError:
        raise ConnectError(timed_out(endpoint, hs, connect_timeout)) from None
    except NbdError as exc:
        raise locate_error(exc, endpoint) from exc.__cause__
    except OSError as exc:
        # imported only on a failure: openers imports asyncio, which one-shot commands skip
        from nbdtui.client.transport.openers import connect_error

        raise connect_error(endpoint, exc) from exc
