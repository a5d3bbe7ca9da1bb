"""The wording of the client's errors: what a request was, where the server is."""

from __future__ import annotations

from nbdtui.errors import ProtocolError, RequestError
from nbdtui.proto.constants import Command
from nbdtui.uri import Endpoint

COMMAND_WORDS: dict[int, str] = {
    Command.READ: "read",
    Command.WRITE: "write",
    Command.FLUSH: "flush",
    Command.TRIM: "trim",
    Command.CACHE: "cache",
    Command.WRITE_ZEROES: "zero",
    Command.BLOCK_STATUS: "block status",
}


def describe(command: int, offset: int, length: int) -> str:
    """``read of 4096 bytes at offset 0x1000``; ``flush`` for a flush."""
    word = COMMAND_WORDS.get(command, "request")
    if command == Command.FLUSH:
        return word
    return f"{word} of {length} byte{'' if length == 1 else 's'} at offset {offset:#x}"


def requests_word(n: int) -> str:
    """``1 request``, ``3 requests``."""
    return f"{n} request{'' if n == 1 else 's'}"


def locate(exc: RequestError, where: str, offset: int, length: int) -> RequestError:
    """The same server error with the request's range and the server in its message.

    ``errno``, ``errno_name``, ``offset`` (the byte the server blamed, if it said) and
    ``command`` stay as they were; ``request_offset`` / ``request_length`` are added.
    """
    new = RequestError(exc.errno, exc.server_message, offset=exc.offset, command=exc.command)
    new.request_offset = offset  # type: ignore[attr-defined]  # an extra attribute, read by callers
    new.request_length = length  # type: ignore[attr-defined]  # (ditto)
    span = f" for {length} byte{'' if length == 1 else 's'} at offset {offset:#x}"
    if exc.command in (None, "flush"):
        span = ""
    new.args = (f"{new}{span} (server {where})",)
    return new


def located(exc: ProtocolError, endpoint: Endpoint) -> ProtocolError:
    """The protocol error with the server named."""
    return ProtocolError(f"{exc} (server {endpoint.display})")
