"""Checking many endpoints at once: the doctor's quick walk for each, at most ``jobs``
at a time (each walk holds one connection), every SSH host logged in to once; each
walk ends within :data:`DEADLINE_FACTOR` times ``connect_timeout``.

Endpoints behind the same SSH login (user, host, port) share one SSH connection: it is
opened once before their walks and held until the run ends; when that login fails, each
of its endpoints reports the failure without trying again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nbdtui.client.diagnosis.facts import ssh_hint
from nbdtui.client.diagnosis.inventory import Target
from nbdtui.client.diagnosis.results import FAIL, SKIPPED, STEP_NAMES, Diagnosis, Step
from nbdtui.client.diagnosis.walk import diagnose
from nbdtui.errors import NbdError
from nbdtui.uri import without_secrets

__all__ = ["DEADLINE_FACTOR", "Checked", "check_all"]

#: An endpoint's whole walk may take this many times ``connect_timeout``: each wait is
#: bounded by it, and a server that answers every option just in time still ends.
DEADLINE_FACTOR = 3


@dataclass(frozen=True)
class Checked:
    """One target's outcome and how long its walk took (seconds)."""

    target: Target
    diagnosis: Diagnosis
    elapsed: float


def _ssh_failure(target: Target, exc: NbdError) -> Diagnosis:
    result = Diagnosis(without_secrets(target.endpoint.uri))
    for name in STEP_NAMES:
        if name == "ssh":
            result.steps.append(Step(name, FAIL, str(exc), ssh_hint(str(exc))))
        elif name in ("resolve", "connect"):
            result.steps.append(Step(name, SKIPPED, "through the SSH host (see ssh)"))
        else:
            result.steps.append(Step(name, SKIPPED, "not reached: ssh failed"))
    return result


async def check_all(
    targets: Sequence[Target],
    *,
    jobs: int = 16,
    connect_timeout: float = 10.0,
    on_result: Callable[[Checked], None] | None = None,
) -> list[Checked]:
    """Walk every target quickly (no throughput); results in the order of ``targets``."""
    limit = asyncio.Semaphore(jobs)
    logins: dict[tuple[object, ...], list[Target]] = {}
    for item in targets:
        if item.endpoint.transport == "ssh":
            from nbdtui.client.transport.ssh.endpoint import ssh_route

            route = ssh_route(item.endpoint)
            logins.setdefault((route.user, route.host, route.port), []).append(item)
    failed: dict[tuple[object, ...], NbdError] = {}

    async with contextlib.AsyncExitStack() as holds:
        if logins:
            from nbdtui.client.transport.ssh.tunnel import ssh_login

            async def login(key: tuple[object, ...], first: Target) -> None:
                async with limit:
                    try:
                        await holds.enter_async_context(ssh_login(first.endpoint, connect_timeout))
                    except NbdError as exc:
                        failed[key] = exc

            await asyncio.gather(*(login(key, group[0]) for key, group in logins.items()))
        failures = {
            id(t): failed[key] for key, group in logins.items() if key in failed for t in group
        }

        async def one(item: Target) -> Checked:
            start = time.monotonic()
            error = failures.get(id(item))
            if error is not None:
                diagnosis = _ssh_failure(item, error)
            else:
                async with limit:
                    start = time.monotonic()
                    diagnosis = await diagnose(
                        item.endpoint,
                        quick=True,
                        connect_timeout=connect_timeout,
                        deadline=connect_timeout * DEADLINE_FACTOR,
                    )
            checked = Checked(item, diagnosis, time.monotonic() - start)
            if on_result is not None:
                on_result(checked)
            return checked

        return list(await asyncio.gather(*(one(t) for t in targets)))
