"""The handshake's steps: ``greeting`` (oldstyle, newstyle, fixed newstyle), ``tls``
(STARTTLS and the TLS handshake, or whether the server requires or offers TLS) and
``export`` (GO, or the EXPORT_NAME fallback; on "not found", LIST for the names offered)."""

from __future__ import annotations

import asyncio

from nbdtui.client.diagnosis.facts import human_size, tls_hint
from nbdtui.client.diagnosis.probe_stream import ProbeStream
from nbdtui.client.diagnosis.results import OK, SKIPPED, WARN, printable, shown
from nbdtui.client.diagnosis.walk_base import WalkBase
from nbdtui.errors import ConnectionLostError, NbdError, ProtocolError, TLSError
from nbdtui.proto import option_codec as wire
from nbdtui.proto.client_events import OptionAnswered
from nbdtui.proto.constants import BASE_ALLOCATION, HandshakeFlag, Info, Option, OptionReply
from nbdtui.proto.option_replies import fold_infos
from nbdtui.proto.types import ExportInfo

__all__ = ["HandshakeSteps"]

_INFOS = (Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE)


class HandshakeSteps(WalkBase):
    """Steps of the walk (see :class:`~nbdtui.client.diagnosis.walk_base.WalkBase`)."""

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
                raise self.fail("tls", str(exc), tls_hint(str(exc))) from None
            except NbdError as exc:
                raise self.fail("tls", str(exc), tls_hint(str(exc))) from None
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
            self.add(
                "export", OK, f"the oldstyle server's only export ({human_size(self.export.size)})"
            )
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
            self.export = fold_infos(go.infos, name)
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
