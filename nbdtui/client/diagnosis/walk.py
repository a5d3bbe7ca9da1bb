"""The doctor's walk: every step of a connection to one export, each judged on its own.

:func:`diagnose` resolves the name, connects (or logs in to the SSH host and opens the
channel), reads the greeting, sets up TLS or learns whether the server requires it,
negotiates the export (GO, or the EXPORT_NAME fallback; on "not found", LIST on the same
connection for the names the server offers), compares what NBD_OPT_INFO and NBD_OPT_GO
say, sums up the features, reads 4 KiB and, unless ``quick``, reads for
:data:`THROUGHPUT_SECONDS`. All of it on one connection (a fleet check opens no more
connections than it checks endpoints at a time). A step that fails stops the walk; the
steps after it are ``skipped``. Each network wait is bounded by ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import time

from nbdtui.client.diagnosis.probe_stream import ProbeStream
from nbdtui.client.diagnosis.results import (
    FAIL,
    OK,
    SKIPPED,
    STEP_NAMES,
    WARN,
    Diagnosis,
    Step,
    printable,
    shown,
)
from nbdtui.client.transport.stream import Opener
from nbdtui.errors import (
    ERRNO_TEXT,
    ConnectionLostError,
    Errno,
    NbdError,
    ProtocolError,
    TLSError,
)
from nbdtui.proto import option_codec as wire
from nbdtui.proto.client_events import Greeted, OptionAnswered
from nbdtui.proto.constants import (
    BASE_ALLOCATION,
    DEFAULT_BLOCK_MAX,
    HandshakeFlag,
    Info,
    Option,
    OptionReply,
)
from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.types import ExportInfo
from nbdtui.uri import Endpoint, parse, without_secrets

__all__ = ["READ_SIZE", "THROUGHPUT_SECONDS", "diagnose", "ssh_hint"]

READ_SIZE = 4096
THROUGHPUT_SECONDS = 5.0
_THROUGHPUT_CHUNK = 256 * 1024
_THROUGHPUT_WINDOW = 4
_INFOS = (Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE)


class _Stop(Exception):
    """A step failed: the walk ends here."""


def _mib(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} bytes"


def _fold(infos: tuple[tuple[int, object], ...], name: str) -> ExportInfo | None:
    """The NBD_REP_INFO replies of a successful INFO or GO as an ExportInfo."""
    export: wire.InfoExport | None = None
    sizes: wire.InfoBlockSize | None = None
    description = None
    for info_type, value in infos:
        if isinstance(value, wire.InfoExport):
            export = value
        elif isinstance(value, wire.InfoBlockSize):
            sizes = value
        elif info_type == Info.NAME and isinstance(value, str):
            name = value
        elif info_type == Info.DESCRIPTION and isinstance(value, str):
            description = value
    if export is None:
        return None
    return ExportInfo(
        name=name,
        size=export.size,
        flags=export.flags,
        description=description,
        block_minimum=sizes.minimum if sizes else None,
        block_preferred=sizes.preferred if sizes else None,
        block_maximum=sizes.maximum if sizes else None,
    )


def _commands(info: ExportInfo) -> str:
    names = ["read"]
    if not info.read_only:
        names.append("write")
    for flag, name in (
        (TF.SEND_FLUSH, "flush"),
        (TF.SEND_FUA, "fua"),
        (TF.SEND_TRIM, "trim"),
        (TF.SEND_WRITE_ZEROES, "zero"),
        (TF.SEND_FAST_ZERO, "fast-zero"),
        (TF.SEND_CACHE, "cache"),
        (TF.SEND_DF, "df"),
        (TF.SEND_RESIZE, "resize"),
    ):
        if info.flags & TF.HAS_FLAGS and info.flags & flag:
            names.append(name)
    return " ".join(names)


def ssh_hint(message: str) -> str:
    if "does not match known_hosts" in message:
        return (
            "the SSH host key changed: unless you know why (a reinstalled host), do not "
            "connect; if it did change on purpose, remove the old key as the message says"
        )
    if "not in known_hosts" in message:
        return "trust the host's key once: pass --ssh-accept-new (or ssh to it once)"
    if "authentication failed" in message:
        return "check the user name, your keys and ssh-agent (try: ssh -v HOST)"
    if "connection refused" in message:
        return "no SSH server listens there: check the host and port (ssh_config Port)"
    if "timed out" in message:
        return "the SSH host does not answer: is it up, is the port filtered?"
    if "cannot resolve" in message:
        return "check the host name, or its Host alias in ~/.ssh/config"
    if "remote socket" in message or "as seen from" in message:
        return "is the NBD server running on the SSH host, at this socket path or port?"
    return "try the same login with ssh -v to see where it stops"


def _tls_hint(message: str) -> str:
    if "unknown CA" in message or "not signed by the CA" in message:
        return (
            "the server's certificate is not signed by a CA nbdtui trusts: point "
            "tls-certificates=DIR at the directory holding its CA (ca-cert.pem)"
        )
    if "hostname mismatch" in message:
        return "connect with a name the certificate carries, or set tls-hostname=NAME"
    if "expired" in message:
        return "the server's certificate has expired: renew it"
    if "client certificate" in message:
        return "the server wants a client certificate it trusts in the tls-certificates directory"
    return "check the server's TLS setup and the URI's tls- parameters"


class _Walk:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        quick: bool,
        timeout: float,
        deadline: float | None,
        opener: Opener | None,
    ) -> None:
        self.endpoint = endpoint
        self.deadline = deadline
        self.quick = quick
        self.timeout = timeout
        self.opener = opener
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
        self.result.steps.append(Step(name, status, detail, hint))

    def fail(self, name: str, detail: str, hint: str) -> _Stop:
        self.add(name, FAIL, detail, hint)
        return _Stop()

    @property
    def where(self) -> str:
        return self.endpoint.display

    async def run(self) -> Diagnosis:
        steps = (
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
        current = "resolve"
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

    # ---- resolve, connect, ssh -----------------------------------------------------

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
                    raise self.fail("tls", str(tls_error), _tls_hint(str(tls_error))) from None
            raise self.fail(
                step,
                f"the server closed the connection in reply to {wire.option_name(option)}",
                "see the server's log",
            ) from exc
        except NbdError as exc:
            raise self.fail(step, str(exc), "the server broke the NBD protocol") from None

    async def greeting(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                greeted = await self.stream.greeting()
        except TimeoutError:
            raise self.fail(
                "greeting",
                f"the server accepted the connection but sent no NBD greeting within "
                f"{self.timeout:g} s",
                "is this an NBD server? it may be hung or overloaded, or another service "
                "that waits for the client to speak",
            ) from None
        except ProtocolError as exc:
            raise self.fail(
                "greeting", str(exc), "another service listens here: check the port"
            ) from None
        except NbdError:
            raise self.fail(
                "greeting",
                "the server closed the connection without sending the NBD greeting",
                "the server refuses this client: an access list (nbd-server authfile, "
                "nbdkit --ip-allow), a connection limit, or a failing plugin: see its log",
            ) from None
        self.greeted = greeted
        if greeted.style == "oldstyle":
            self.add(
                "greeting",
                WARN,
                "oldstyle protocol: one export, no names, no TLS, no structured replies",
                "the oldstyle protocol is obsolete: configure the server for newstyle",
            )
        elif greeted.style == "newstyle":
            self.add(
                "greeting",
                WARN,
                "newstyle, not fixed: only NBD_OPT_EXPORT_NAME (no error replies, no TLS, "
                "no listing, no structured replies)",
                "the server (or nbdkit --mask-handshake) hides fixed newstyle: a wrong "
                "export name just closes the connection",
            )
        else:
            extra = ", no zeroes" if greeted.flags & HandshakeFlag.NO_ZEROES else ""
            self.add("greeting", OK, f"fixed newstyle{extra}")

    async def tls(self) -> None:
        assert self.greeted is not None
        style = self.greeted.style
        if style != "newstyle-fixed":
            if self.endpoint.tls:
                raise self.fail(
                    "tls",
                    f"the server cannot do TLS: it speaks the {style} protocol",
                    "connect with nbd:// (plaintext), or configure the server for TLS",
                )
            self.add("tls", SKIPPED, f"not available with the {style} protocol")
            return
        if self.endpoint.tls:
            from nbdtui.client.transport.openers import tls_upgrader

            try:
                upgrade = tls_upgrader(self.endpoint)
            except NbdError as exc:
                raise self.fail("tls", str(exc), "check the URI's tls- parameters") from None
            answer = await self._ask("tls", Option.STARTTLS)
            if answer.reply != OptionReply.ACK:
                reason = wire.refusal(answer.reply, answer.message)
                raise self.fail(
                    "tls",
                    f"the server does not do TLS ({reason})",
                    "connect with nbd:// (plaintext), or enable TLS on the server",
                )
            try:
                async with asyncio.timeout(self.timeout):
                    await self.stream.start_tls(upgrade)
            except TimeoutError:
                raise self.fail(
                    "tls",
                    f"no TLS handshake within {self.timeout:g} s",
                    "the server accepted STARTTLS but does not answer in TLS",
                ) from None
            except TLSError as exc:
                raise self.fail("tls", str(exc), _tls_hint(str(exc))) from None
            except NbdError as exc:
                raise self.fail("tls", str(exc), _tls_hint(str(exc))) from None
            self.structured_reply = await self._ask("tls", Option.STRUCTURED_REPLY)
            from nbdtui.client.transport.tls import describe

            assert self.stream.transport is not None
            self.add("tls", OK, describe(self.stream.transport))
            return
        self.structured_reply = await self._ask("tls", Option.STRUCTURED_REPLY)
        if self.structured_reply.reply == OptionReply.ERR_TLS_REQD:
            raise self.fail(
                "tls",
                "the server requires TLS",
                "the server requires TLS: use nbds:// (with tls-certificates=DIR when its "
                "CA is not in the system store)",
            )
        detail = "not used (the server does not require it)"
        if not self.quick:
            offered = await self._offers_tls()
            if offered is not None:
                detail += (
                    "; it offers TLS: nbds:// would encrypt"
                    if offered
                    else "; it does not offer TLS"
                )
        self.add("tls", OK, detail)

    async def _offers_tls(self) -> bool | None:
        """Whether the server accepts NBD_OPT_STARTTLS, asked on a connection of its own
        (the answer commits that connection to TLS); None when that cannot be told."""
        probe = ProbeStream(self.endpoint)
        try:
            async with asyncio.timeout(self.timeout):
                await probe.open(self.opener)
                greeted = await probe.greeting()
                if greeted.style != "newstyle-fixed":
                    return None
                answer = await probe.ask(Option.STARTTLS)
        except (TimeoutError, NbdError):
            return None
        finally:
            if probe.transport is not None:
                probe.transport.abort()
        return answer.reply == OptionReply.ACK

    async def negotiate(self) -> None:
        assert self.greeted is not None
        style = self.greeted.style
        name = self.name
        if style == "oldstyle":
            self.export = self.greeted.info
            assert self.export is not None
            self.add("export", OK, f"the oldstyle server's only export ({_mib(self.export.size)})")
            return
        name_bytes = name.encode("utf-8")
        if style == "newstyle":
            await self._export_name(name_bytes, "NBD_OPT_EXPORT_NAME (the only option)", OK)
            return
        assert self.structured_reply is not None
        self.structured = self.structured_reply.reply == OptionReply.ACK
        if self.structured:
            payload = wire.encode_meta_context_request(name_bytes, ())
            listed = await self._ask("export", Option.LIST_META_CONTEXT, payload)
            if listed.reply == OptionReply.ACK:
                self.available = tuple(context for _, context in listed.contexts)
        request = wire.encode_info_request(name_bytes, _INFOS)
        self.info_reply = await self._ask("export", Option.INFO, request)
        if self.structured:
            payload = wire.encode_meta_context_request(name_bytes, (BASE_ALLOCATION.encode(),))
            agreed = await self._ask("export", Option.SET_META_CONTEXT, payload)
            if agreed.reply == OptionReply.ACK:
                self.agreed = tuple(context for _, context in agreed.contexts)
        go = await self._ask("export", Option.GO, request)
        if go.reply == OptionReply.ACK:
            self.export = _fold(go.infos, name)
            if self.export is None:
                raise self.fail(
                    "export",
                    f"the server accepted NBD_OPT_GO for export {shown(name)} without "
                    "sending NBD_INFO_EXPORT",
                    "the server breaks the NBD protocol: report it to its authors",
                )
            described = self.export.description
            description = f" ({printable(described)})" if described else ""
            self.add("export", OK, f"NBD_OPT_GO: export {shown(name)}{description}")
            return
        if go.reply == OptionReply.ERR_UNSUP:
            await self._export_name(
                name_bytes,
                "NBD_OPT_GO unsupported: NBD_OPT_EXPORT_NAME fallback",
                WARN,
                "the server is old: a wrong export name will only show as a closed connection",
            )
            return
        await self._refused(go)

    async def _export_name(self, name: bytes, detail: str, status: str, hint: str = "") -> None:
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self.stream.export_name(name)
        except TimeoutError:
            raise self.fail(
                "export",
                f"no answer to NBD_OPT_EXPORT_NAME within {self.timeout:g} s",
                "the server hangs in the handshake: see its log",
            ) from None
        except ConnectionLostError:
            raise self.fail(
                "export",
                f"export {shown(self.name)} not found: the server closed the connection "
                "after NBD_OPT_EXPORT_NAME",
                "check the export name (with only NBD_OPT_EXPORT_NAME the server cannot say "
                "more, nor list its exports)",
            ) from None
        except NbdError as exc:
            raise self.fail("export", str(exc), "the server broke the NBD protocol") from None
        self.export = ExportInfo(name=self.name, size=answer.size, flags=answer.flags)
        self.add("export", status, f"{detail}: export {shown(self.name)}", hint)

    async def _refused(self, go: OptionAnswered) -> None:
        name = shown(self.name)
        said = f": {go.message}" if go.message else ""
        if go.reply == OptionReply.ERR_TLS_REQD:
            raise self.fail(
                "export",
                f"export {name} requires TLS{said}",
                "the server requires TLS for this export: use nbds://",
            )
        if go.reply != OptionReply.ERR_UNKNOWN:
            reason = wire.refusal(go.reply, go.message)
            if go.reply == OptionReply.ERR_POLICY:
                hint = (
                    "the server's policy refuses this client or export (access lists, "
                    "connection limits): see its configuration"
                )
            else:
                hint = "see the server's log"
            raise self.fail("export", f"the server refused export {name} ({reason})", hint)
        listed = await self._ask("export", Option.LIST)
        if listed.reply != OptionReply.ACK:
            reason = wire.refusal(listed.reply, listed.message)
            hint = (
                f"export {name} not found; the server does not list its exports ({reason}): "
                "ask its administrator for the name"
            )
        elif not listed.servers:
            hint = f"export {name} not found; the server lists no exports"
        else:
            offers = ", ".join(
                shown(n) if not n.isprintable() or not n else n for n, _ in listed.servers
            )
            hint = f"export {name} not found; the server offers: {offers}"
        raise self.fail("export", f"export {name} not found{said}", hint)

    # ---- what was negotiated -------------------------------------------------------

    async def info(self) -> None:
        export = self.export
        assert export is not None
        reply = self.info_reply
        if reply is None:
            self.add("info", SKIPPED, "NBD_OPT_INFO needs the fixed newstyle protocol")
            return
        if reply.reply == OptionReply.ERR_UNSUP:
            self.add("info", SKIPPED, "the server does not support NBD_OPT_INFO")
            return
        if reply.reply != OptionReply.ACK:
            reason = wire.refusal(reply.reply, reply.message)
            self.add(
                "info",
                WARN,
                f"NBD_OPT_INFO refused ({reason}) although NBD_OPT_GO succeeded",
                "tools that list exports with details (nbdinfo --list) fail on this export",
            )
            return
        info = _fold(reply.infos, self.name)
        if info is None:
            self.add(
                "info",
                WARN,
                "NBD_OPT_INFO succeeded without NBD_INFO_EXPORT",
                "the server breaks the NBD protocol; the export itself works",
            )
            return
        if info.size != export.size:
            self.add(
                "info",
                WARN,
                f"NBD_OPT_INFO says {info.size} bytes, NBD_OPT_GO says {export.size} bytes",
                "tools that trust INFO (nbdinfo --list) show the wrong size; nbd-server "
                "reports 0 for exports it has not opened: the size after GO is right",
            )
            return
        if info.flags != export.flags:
            self.add(
                "info",
                WARN,
                f"NBD_OPT_INFO says flags {info.flags:#x}, NBD_OPT_GO says {export.flags:#x}",
                "tools that trust INFO may misjudge what the export allows",
            )
            return
        self.add("info", OK, f"NBD_OPT_INFO agrees with NBD_OPT_GO: {export.size} bytes")

    async def features(self) -> None:
        export = self.export
        assert export is not None
        self.result.size = export.size
        self.result.read_only = export.read_only
        parts = [
            f"size {export.size} ({_mib(export.size)})",
            "read-only" if export.read_only else "read-write",
            "structured replies" if self.structured else "no structured replies",
        ]
        if self.agreed:
            parts.append("meta contexts: " + ", ".join(self.agreed))
        elif self.available:
            parts.append("meta contexts offered: " + ", ".join(self.available))
        if export.block_minimum is not None:
            parts.append(
                f"block sizes {export.block_minimum}/{export.block_preferred}/"
                f"{export.block_maximum}"
            )
        parts.append("multi-conn" if export.can_multi_conn else "no multi-conn")
        parts.append(f"commands: {_commands(export)}")
        detail = "; ".join(parts)
        if (
            self.greeted is not None
            and self.greeted.style == "newstyle-fixed"
            and (not self.structured)
        ):
            self.add(
                "features",
                WARN,
                detail,
                "the server offers no structured replies (nbd-server, nbdkit --no-sr): no "
                "block status, so holes and zeroes cannot be mapped or skipped",
            )
            return
        self.add("features", OK, detail)

    def _read_error(self, what: str, error: int, message: str) -> str:
        errno = Errno.from_wire(error)
        said = f": {message}" if message else ""
        return f"{what} failed: {errno.name} ({ERRNO_TEXT[errno]}){said}"

    async def read(self) -> None:
        export = self.export
        assert export is not None
        if export.size == 0:
            raise self.fail(
                "read",
                "the export is empty (0 bytes): nothing to read",
                "check the server's backing file or device",
            )
        length = min(max(READ_SIZE, export.block_minimum or 1), export.size)
        self.stream.begin_transmission(self.structured)
        start = time.monotonic()
        what = f"read of {length} bytes at offset 0"
        try:
            async with asyncio.timeout(self.timeout):
                done = await self.stream.read(0, length)
        except TimeoutError:
            raise self.fail(
                "read",
                f"no reply to a {what} within {self.timeout:g} s",
                "the server hangs: its storage may be stuck",
            ) from None
        except NbdError as exc:
            raise self.fail("read", f"{what}: {exc}", "see the server's log") from None
        if done.error:
            raise self.fail(
                "read",
                self._read_error(what, done.error, done.message),
                "the server could not read its storage: see its log",
            )
        latency = time.monotonic() - start
        self.result.latency = latency
        self.add("read", OK, f"{length} bytes at offset 0 in {latency * 1000:.2f} ms")

    async def throughput(self) -> None:
        if self.quick:
            self.add("throughput", SKIPPED, "skipped (--quick)")
            return
        export = self.export
        assert export is not None
        chunk = min(_THROUGHPUT_CHUNK, export.block_maximum or DEFAULT_BLOCK_MAX, export.size)
        stream = self.stream
        offset = 0
        total = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + THROUGHPUT_SECONDS

        def send() -> None:
            nonlocal offset
            if offset + chunk > export.size:
                offset = 0
            stream.send_read(offset, chunk)
            offset += chunk

        try:
            for _ in range(_THROUGHPUT_WINDOW):
                send()
            in_flight = _THROUGHPUT_WINDOW
            while in_flight:
                async with asyncio.timeout(self.timeout):
                    done = await stream.done()
                in_flight -= 1
                if done.error:
                    raise self.fail(
                        "throughput",
                        self._read_error(f"read of {chunk} bytes", done.error, done.message),
                        "the server could not read its storage: see its log",
                    )
                total += chunk
                if loop.time() < end:
                    send()
                    in_flight += 1
        except TimeoutError:
            raise self.fail(
                "throughput",
                f"a read got no reply within {self.timeout:g} s",
                "the server hangs: its storage may be stuck",
            ) from None
        except NbdError as exc:
            raise self.fail("throughput", str(exc), "see the server's log") from None
        seconds = loop.time() - start
        rate = total / seconds if seconds > 0 else 0.0
        self.result.throughput = rate
        self.add(
            "throughput",
            OK,
            f"{rate / (1 << 20):.1f} MiB/s ({_mib(total)} in {seconds:.1f} s, "
            f"{_mib(chunk)} reads, {_THROUGHPUT_WINDOW} in flight)",
        )


async def diagnose(
    target: str | Endpoint,
    *,
    quick: bool = False,
    connect_timeout: float = 10.0,
    deadline: float | None = None,
    opener: Opener | None = None,
) -> Diagnosis:
    """Walk every step of a connection to ``target`` (see the module documentation).

    ``connect_timeout`` bounds each wait; ``deadline`` (None: no limit) the whole walk,
    whose step then fails. Raises UriError for a malformed target; every other failure
    is a step's.
    """
    endpoint = target if isinstance(target, Endpoint) else parse(target)
    walk = _Walk(endpoint, quick=quick, timeout=connect_timeout, deadline=deadline, opener=opener)
    return await walk.run()
