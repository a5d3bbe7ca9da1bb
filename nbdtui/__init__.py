"""nbdtui: a terminal app and Python library for remote block devices over NBD.

The library API is asyncio and never imports Textual::

    import nbdtui

    async with nbdtui.open("nbd://localhost/disk") as export:
        data = await export.read(0, 512)

What is public is what ``__all__`` lists:

- ``open``, ``list_exports`` and ``probe`` (from :mod:`nbdtui.client.api`);
- ``parse``, ``Endpoint`` and ``without_secrets`` (from :mod:`nbdtui.uri`);
- every error class, ``NbdError`` at their root, and ``Errno`` (from :mod:`nbdtui.errors`).

The error classes are imported with the package (``nbdtui.errors`` imports nothing but
``enum``); the client and URI functions the first time they are used, so that
``import nbdtui`` (and ``nbdtui --version``) stays cheap: it imports neither asyncio nor
Textual nor asyncssh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbdtui.errors import (
    BackendError,
    BookmarkError,
    ClosedByClient,
    CommitError,
    ConflictError,
    ConnectError,
    ConnectionLostError,
    Errno,
    ExportChangedError,
    ExportNotFoundError,
    GotoError,
    HandshakeError,
    JournalError,
    NbdError,
    NotSupportedError,
    PatternError,
    PromptUnavailable,
    ProtocolError,
    RangeError,
    RepairError,
    RequestError,
    RequestTimeoutError,
    TLSError,
    TLSRequiredError,
    UriError,
    UsageError,
)
from nbdtui.lazy_names import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    from nbdtui.client.api import list_exports, open, probe
    from nbdtui.uri import Endpoint, parse, without_secrets

__version__ = "0.1.0"

# name -> the module that defines it
_LAZY = {
    "open": "nbdtui.client.api",
    "list_exports": "nbdtui.client.api",
    "probe": "nbdtui.client.api",
    "parse": "nbdtui.uri",
    "Endpoint": "nbdtui.uri",
    "without_secrets": "nbdtui.uri",
}

__all__ = [
    "BackendError",
    "BookmarkError",
    "ClosedByClient",
    "CommitError",
    "ConflictError",
    "ConnectError",
    "ConnectionLostError",
    "Endpoint",
    "Errno",
    "ExportChangedError",
    "ExportNotFoundError",
    "GotoError",
    "HandshakeError",
    "JournalError",
    "NbdError",
    "NotSupportedError",
    "PatternError",
    "PromptUnavailable",
    "ProtocolError",
    "RangeError",
    "RepairError",
    "RequestError",
    "RequestTimeoutError",
    "TLSError",
    "TLSRequiredError",
    "UriError",
    "UsageError",
    "__version__",
    "list_exports",
    "open",
    "parse",
    "probe",
    "without_secrets",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
