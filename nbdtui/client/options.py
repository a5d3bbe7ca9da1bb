"""How an export is opened: :class:`ExportOptions`, the settings :func:`nbdtui.open`
takes, passed as one object down to the group of connections that uses them."""

from __future__ import annotations

from dataclasses import dataclass

from nbdtui.client.connection import DEFAULT_WINDOW
from nbdtui.client.negotiate import DEFAULT_CONNECT_TIMEOUT
from nbdtui.client.transport.stream import Opener, TlsUpgrader
from nbdtui.uri import SshTarget


@dataclass(frozen=True)
class ExportOptions:
    """The settings of an open export (see :func:`nbdtui.open` for each).

    ``connect_timeout`` bounds connect + handshake of each connection; ``window`` is the
    number of requests in flight per connection; ``connections`` caps the connections
    (used only with multi-conn; ``None``: the pool's default); ``timeout`` bounds each
    request; ``reconnect_delay`` is how long to keep reconnecting after a loss;
    ``opener`` and ``start_tls`` replace the registered transport and TLS upgrader;
    ``ssh`` reaches the target through an SSH host (used when the endpoint is resolved,
    before the pool is asked). ``meta_contexts`` are asked for besides
    ``base:allocation`` (``qemu:dirty-bitmap:NAME``...; see
    :meth:`Export.context_extents <nbdtui.client.export.Export.context_extents>`).
    Invalid values raise ``ValueError`` here.
    """

    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    window: int = DEFAULT_WINDOW
    connections: int | None = None
    timeout: float | None = None
    reconnect_delay: float = 0.0
    opener: Opener | None = None
    start_tls: TlsUpgrader | None = None
    ssh: str | SshTarget | None = None
    meta_contexts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be greater than 0")
        if self.reconnect_delay < 0:
            raise ValueError("reconnect_delay must not be negative")
        if self.connections is not None and self.connections < 1:
            raise ValueError("connections must be at least 1")
