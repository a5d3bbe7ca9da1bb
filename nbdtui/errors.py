"""Exceptions shared by every layer of nbdtui.

Every exception class nbdtui raises for its callers to catch is defined here, whichever
layer raises it (the sections below say which), so that one module imports them all and
``nbdtui`` re-exports them; only private control flow (a class with a leading underscore,
raised and caught inside one module) stays where it is used. All but
``PromptUnavailable``, ``PatternError`` and ``GotoError`` derive from :class:`NbdError`.

Every message is one line a person can act on; the CLI prints ``nbdtui: <message>``.
"""

from __future__ import annotations

import enum


class Errno(enum.IntEnum):
    """NBD error values carried on the wire (not the host's errno numbers)."""

    EPERM = 1
    EIO = 5
    ENOMEM = 12
    EINVAL = 22
    ENOSPC = 28
    EOVERFLOW = 75
    ENOTSUP = 95
    ESHUTDOWN = 108

    @classmethod
    def from_wire(cls, value: int) -> Errno:
        """An unknown error value reads as EINVAL, as the spec says."""
        try:
            return cls(value)
        except ValueError:
            return cls.EINVAL


ERRNO_TEXT = {
    Errno.EPERM: "Operation not permitted",
    Errno.EIO: "Input/output error",
    Errno.ENOMEM: "Cannot allocate memory",
    Errno.EINVAL: "Invalid argument",
    Errno.ENOSPC: "No space left on device",
    Errno.EOVERFLOW: "Value too large",
    Errno.ENOTSUP: "Operation not supported",
    Errno.ESHUTDOWN: "Server is shutting down",
}


# ---------------------------------------------------------------- every layer


class NbdError(Exception):
    """Base of every error nbdtui raises on purpose."""


class UriError(NbdError, ValueError):
    """A malformed endpoint string (bad command line: exit status 2)."""


class UsageError(NbdError):
    """The command line asks for something impossible (exit status 2)."""


class ConnectError(NbdError):
    """The endpoint could not be reached (refused, unreachable, timed out)."""


class HandshakeError(NbdError):
    """The server refused or broke the option haggling.

    ``reply`` is the NBD option reply type when the server sent an error reply,
    ``option`` the option it answered.
    """

    def __init__(self, message: str, *, reply: int | None = None, option: int | None = None):
        super().__init__(message)
        self.reply = reply
        self.option = option


class TLSRequiredError(HandshakeError):
    """The server requires TLS but the endpoint is plaintext."""


class ExportNotFoundError(HandshakeError):
    """The server has no export by that name."""


class ProtocolError(NbdError):
    """The peer violated the protocol; the connection cannot be used any more."""


class ConnectionLostError(NbdError):
    """The connection closed while requests were waiting."""


class NotSupportedError(NbdError):
    """The export does not support the command; nothing was sent."""


class RequestError(NbdError):
    """The server failed one request; the connection stays usable.

    ``errno`` is the wire value, ``errno_name`` its name (``EIO``), ``offset`` the
    byte the server blamed when it said (structured ERROR_OFFSET chunks).
    """

    def __init__(
        self,
        errno: int,
        message: str = "",
        *,
        offset: int | None = None,
        command: str | None = None,
    ):
        err = Errno.from_wire(errno)
        self.errno = int(err)
        self.errno_name = err.name
        self.server_message = message
        self.offset = offset
        self.command = command
        text = f"{command + ': ' if command else ''}{err.name}"
        text += f" ({message})" if message else f" ({ERRNO_TEXT[err]})"
        if offset is not None:
            text += f" at offset {offset}"
        super().__init__(text)


class RequestTimeoutError(NbdError):
    """A request took longer than the configured timeout."""


class TLSError(ConnectError):
    """TLS could not be set up: a certificate failed verification, TLS files are missing or
    unusable, or the TLS handshake failed (never followed by a plaintext fallback)."""


# ---------------------------------------------------------------- client


class RangeError(NbdError, ValueError):
    """A range past the end of the export (nothing was sent)."""


class ClosedByClient(ConnectionLostError):
    """nbdtui closed the connection itself (a request timed out, the user cancelled it).

    The requests that were in flight on it are sent again on a new connection.
    """


class ExportChangedError(ConnectionLostError):
    """After a reconnect, the export is not the one that was open (it shrank, became
    read-only, lost a capability): nbdtui stops using it."""


class PromptUnavailable(Exception):
    """A prompt hook cannot ask anybody (no terminal, no UI); the text says why."""


# ---------------------------------------------------------------- server


class BackendError(NbdError):
    """A backend operation failed; ``errno`` is the NBD error sent to the client."""

    def __init__(self, errno: Errno, message: str):
        super().__init__(message)
        self.errno = Errno(errno)


# ---------------------------------------------------------------- editor


class CommitError(NbdError):
    """Writing failed; ``entry_id`` is the journal entry (marked failed), if any."""

    def __init__(self, message: str, entry_id: int | None = None):
        super().__init__(message)
        self.entry_id = entry_id


class ConflictError(CommitError):
    """The export no longer holds the bytes the edit (or the revert) expects."""


class RepairError(NbdError):
    """A structure cannot be repaired as asked (no backup, a backup that fails its own
    checks, nothing to fix); nothing was written."""


class BookmarkError(NbdError):
    """The bookmarks cannot be kept (their database cannot be opened or has another
    layout): a message a person can act on."""


class JournalError(NbdError):
    """The undo journal cannot be opened or used, or has no such entry."""


class PatternError(ValueError):
    """The search text is neither hex bytes nor text."""


class GotoError(ValueError):
    """The goto text cannot be understood or points outside the export."""
