"""The state a walk shares between its steps (:mod:`~nbdtui.client.diagnosis.walk`): the
endpoint, the probe connection, what each step learnt, the steps recorded so far; and
running the steps in order, a failed step ending the walk."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from nbdtui.client.diagnosis.facts import tls_hint
from nbdtui.client.diagnosis.probe_stream import ProbeStream
from nbdtui.client.diagnosis.results import FAIL, SKIPPED, STEP_NAMES, Diagnosis, Step
from nbdtui.client.transport.stream import Opener
from nbdtui.errors import ConnectionLostError, NbdError
from nbdtui.proto import option_codec as wire
from nbdtui.proto.client_events import Greeted, OptionAnswered
from nbdtui.proto.types import ExportInfo
from nbdtui.uri import Endpoint, without_secrets

__all__ = ["StepFunction", "WalkBase"]

StepFunction = Callable[[], Awaitable[None]]


class _Stop(Exception):
    """A step failed: the walk ends here."""


class WalkBase:
    """See the module documentation; the steps are methods of its subclasses."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        quick: bool,
        timeout: float,
        deadline: float | None,
        opener: Opener | None,
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.deadline = deadline
        self.quick = quick
        self.timeout = timeout
        self.opener = opener
        self.on_step = on_step
        self.result = Diagnosis(without_secrets(endpoint.uri))
        self.stream = ProbeStream(endpoint)
        self.exits = contextlib.AsyncExitStack()
        self.greeted: Greeted | None = None
        self.structured = False
        self.structured_reply: OptionAnswered | None = None
        self.available: tuple[str, ...] | None = None
        self.agreed: tuple[str, ...] = ()
        self.info_reply: OptionAnswered | None = None
        self.export: ExportInfo | None = None
        self.name = endpoint.export
        self.connect_ms = 0.0

    # ---- bookkeeping ---------------------------------------------------------------

    def add(self, name: str, status: str, detail: str, hint: str = "") -> None:
        step = Step(name, status, detail, hint)
        self.result.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def fail(self, name: str, detail: str, hint: str) -> _Stop:
        self.add(name, FAIL, detail, hint)
        return _Stop()

    @property
    def where(self) -> str:
        return self.endpoint.display

    async def run_steps(self, steps: Sequence[tuple[str, StepFunction]]) -> Diagnosis:
        """Run ``steps`` in order until one fails; the steps not reached are ``skipped``."""
        current = steps[0][0]
        try:
            async with asyncio.timeout(self.deadline):
                for name, step in steps:
                    current = name
                    await step()
        except _Stop:
            pass
        except TimeoutError:
            if self.result.step(current) is None:
                self.add(
                    current,
                    FAIL,
                    f"gave up: the whole walk may take {self.deadline:g} s",
                    "the server answers, but too slowly: see its load and its log",
                )
        finally:
            self.stream.close()
            with contextlib.suppress(Exception):
                await self.exits.aclose()
        failed = self.result.failed
        done = {s.name for s in self.result.steps}
        for name in STEP_NAMES:
            if name not in done:
                why = f"not reached: {failed.name} failed" if failed else "not reached"
                self.result.steps.append(Step(name, SKIPPED, why))
        order = {name: i for i, name in enumerate(STEP_NAMES)}
        self.result.steps.sort(key=lambda s: order[s.name])
        return self.result

    async def _ask(self, step: str, option: int, payload: bytes = b"") -> OptionAnswered:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.stream.ask(option, payload)
        except TimeoutError:
            raise self.fail(
                step,
                f"no answer to {wire.option_name(option)} within {self.timeout:g} s",
                "the server hangs in the handshake: see its log",
            ) from None
        except ConnectionLostError as exc:
            if self.stream.tls_active and not self.stream.received_since_tls:
                from nbdtui.client.transport.tls import after_handshake_error

                tls_error = after_handshake_error(self.endpoint, self.stream.lost_exc, quiet=True)
                if tls_error is not None:
                    raise self.fail("tls", str(tls_error), tls_hint(str(tls_error))) from None
            raise self.fail(
                step,
                f"the server closed the connection in reply to {wire.option_name(option)}",
                "see the server's log",
            ) from exc
        except NbdError as exc:
            raise self.fail(step, str(exc), "the server broke the NBD protocol") from None
