"""The steps before NBD: ``resolve`` (DNS, or the Unix socket on disk), ``connect`` and,
for SSH endpoints, ``ssh`` (log in, then open the channel to the remote socket or port)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time

from nbdtui.client.diagnosis.facts import ssh_hint
from nbdtui.client.diagnosis.results import OK, SKIPPED
from nbdtui.client.diagnosis.walk_base import WalkBase
from nbdtui.errors import NbdError

__all__ = ["LinkSteps"]


class LinkSteps(WalkBase):
    """Steps of the walk (see :class:`~nbdtui.client.diagnosis.walk_base.WalkBase`)."""

    async def resolve(self) -> None:
        kind = self.endpoint.transport
        if kind == "tcp":
            host = self.endpoint.host
            assert host is not None
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout):
                    infos = await loop.getaddrinfo(
                        host, self.endpoint.tcp_port, type=socket.SOCK_STREAM
                    )
            except socket.gaierror as exc:
                raise self.fail(
                    "resolve",
                    f"cannot resolve host '{host}': {exc.strerror}",
                    "check the host name (a typo, DNS, /etc/hosts)",
                ) from None
            except TimeoutError:
                raise self.fail(
                    "resolve",
                    f"no answer resolving '{host}' within {self.timeout:g} s",
                    "check the DNS servers (/etc/resolv.conf)",
                ) from None
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            self.add("resolve", OK, f"{host} is {', '.join(addresses[:4])}")
        elif kind == "unix":
            path = self.endpoint.socket
            assert path is not None
            if path.startswith("\0"):
                self.add("resolve", OK, f"abstract Unix socket {path[1:]!r}")
                return
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                raise self.fail(
                    "resolve",
                    f"no such socket: {path}",
                    "is the server running? it creates the socket when it starts (check the path)",
                ) from None
            except OSError as exc:
                raise self.fail("resolve", f"{path}: {exc.strerror}", "check the path") from None
            if not stat.S_ISSOCK(mode):
                raise self.fail(
                    "resolve", f"{path} is not a socket", "check the path of the server's socket"
                )
            self.add("resolve", OK, f"Unix socket {path}")
        elif kind == "ssh":
            self.add("resolve", SKIPPED, "the SSH host's name is resolved by the SSH login")
        else:
            raise self.fail(
                "resolve",
                f"{kind} endpoints are not supported",
                "use nbd://, nbds://, nbd+unix:// or nbd+ssh://",
            )

    async def _open(self, step: str) -> None:
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                await self.stream.open(self.opener)
        except TimeoutError:
            raise self.fail(
                step,
                f"no answer from {self.where} within {self.timeout:g} s",
                "the host is down, or a firewall drops the packets",
            ) from None
        except NbdError as exc:
            message = str(exc)
            if step == "ssh":
                hint = ssh_hint(message)
            elif "refused" in message:
                if self.endpoint.transport == "unix":
                    hint = (
                        f"nothing accepts connections on {self.endpoint.socket}: the server "
                        "is gone and left its socket behind"
                    )
                else:
                    hint = (
                        f"nothing listens on port {self.endpoint.tcp_port} of "
                        f"{self.endpoint.host}: is the server running, on this port?"
                    )
            elif "permission" in message:
                hint = "check the socket's owner and mode"
            else:
                hint = "check the network path to the host"
            if "refused" in message and step == "connect":
                message = (
                    f"connection refused: nothing listens on {self.endpoint.tcp_port}"
                    if self.endpoint.transport == "tcp"
                    else message
                )
            raise self.fail(step, message, hint) from None
        ms = (time.monotonic() - start) * 1000
        self.connect_ms = ms

    async def connect(self) -> None:
        if self.endpoint.transport == "ssh":
            self.add("connect", SKIPPED, "through the SSH host (see ssh)")
            return
        await self._open("connect")
        self.add("connect", OK, f"connected to {self.where} in {self.connect_ms:.1f} ms")

    async def ssh(self) -> None:
        if self.endpoint.transport != "ssh":
            self.add("ssh", SKIPPED, "not an SSH endpoint")
            return
        if self.opener is not None:
            await self._open("connect")
            self.add("ssh", SKIPPED, "the stream comes from the caller's opener")
            return
        from nbdtui.client.transport.ssh.endpoint import ssh_route
        from nbdtui.client.transport.ssh.tunnel import ssh_login

        route = ssh_route(self.endpoint)
        try:
            await self.exits.enter_async_context(ssh_login(self.endpoint, self.timeout))
        except NbdError as exc:
            raise self.fail("ssh", str(exc), ssh_hint(str(exc))) from None
        await self._open("ssh")
        user = f"{route.user}@" if route.user else ""
        self.add("ssh", OK, f"logged in to {user}{route.host}; channel to {route.target} open")

    # ---- handshake -----------------------------------------------------------------
