"""The doctor's walk: every step of a connection to one export, each judged on its own.

:func:`diagnose` resolves the name, connects (or logs in to the SSH host and opens the
channel), reads the greeting, sets up TLS or learns whether the server requires it,
negotiates the export (GO, or the EXPORT_NAME fallback; on "not found", LIST on the same
connection for the names the server offers), compares what NBD_OPT_INFO and NBD_OPT_GO
say, sums up the features, reads 4 KiB and, unless ``quick``, reads for
:data:`~nbdtui.client.diagnosis.export_steps.THROUGHPUT_SECONDS` (and asks, on a second
connection, whether a plaintext server offers TLS). All else on one connection (a fleet
check opens no more connections than it checks endpoints at a time). A step that fails
stops the walk; the steps after it are ``skipped``. Each network wait is bounded by
``connect_timeout``, the whole walk by ``deadline``.

The steps are methods of :class:`~nbdtui.client.diagnosis.link_steps.LinkSteps`,
:class:`~nbdtui.client.diagnosis.handshake_steps.HandshakeSteps` and
:class:`~nbdtui.client.diagnosis.export_steps.ExportSteps`, over the shared state of
:class:`~nbdtui.client.diagnosis.walk_base.WalkBase`.
"""

from __future__ import annotations

from collections.abc import Callable

from nbdtui.client.diagnosis.export_steps import ExportSteps
from nbdtui.client.diagnosis.handshake_steps import HandshakeSteps
from nbdtui.client.diagnosis.link_steps import LinkSteps
from nbdtui.client.diagnosis.results import Diagnosis, Step
from nbdtui.client.transport.stream import Opener
from nbdtui.uri import Endpoint, parse

__all__ = ["diagnose"]


class _Walk(LinkSteps, HandshakeSteps, ExportSteps):
    async def run(self) -> Diagnosis:
        return await self.run_steps(
            (
                ("resolve", self.resolve),
                ("connect", self.connect),
                ("ssh", self.ssh),
                ("greeting", self.greeting),
                ("tls", self.tls),
                ("export", self.negotiate),
                ("info", self.info),
                ("features", self.features),
                ("read", self.read),
                ("throughput", self.throughput),
            )
        )


async def diagnose(
    target: str | Endpoint,
    *,
    quick: bool = False,
    connect_timeout: float = 10.0,
    deadline: float | None = None,
    opener: Opener | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Diagnosis:
    """Walk every step of a connection to ``target`` (see the module documentation).

    ``connect_timeout`` bounds each wait; ``deadline`` (None: no limit) the whole walk,
    whose step then fails. ``on_step`` is called with each step as it ends (the steps
    not reached are only in the result). Raises UriError for a malformed target; every
    other failure is a step's.
    """
    endpoint = target if isinstance(target, Endpoint) else parse(target)
    walk = _Walk(
        endpoint,
        quick=quick,
        timeout=connect_timeout,
        deadline=deadline,
        opener=opener,
        on_step=on_step,
    )
    return await walk.run()
