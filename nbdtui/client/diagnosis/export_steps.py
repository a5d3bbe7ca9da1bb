"""What the negotiated export is and does: ``info`` (NBD_OPT_INFO against NBD_OPT_GO),
``features``, ``read`` (one 4 KiB read and its latency) and ``throughput`` (reads for
:data:`THROUGHPUT_SECONDS`, 4 in flight)."""

from __future__ import annotations

import asyncio
import time

from nbdtui.client.diagnosis.facts import commands, human_size
from nbdtui.client.diagnosis.results import OK, SKIPPED, WARN
from nbdtui.client.diagnosis.walk_base import WalkBase
from nbdtui.errors import ERRNO_TEXT, Errno, NbdError
from nbdtui.proto import option_codec as wire
from nbdtui.proto.constants import DEFAULT_BLOCK_MAX, OptionReply
from nbdtui.proto.option_replies import fold_infos

__all__ = ["READ_SIZE", "THROUGHPUT_SECONDS", "ExportSteps"]

READ_SIZE = 4096
THROUGHPUT_SECONDS = 5.0
_THROUGHPUT_CHUNK = 256 * 1024
_THROUGHPUT_WINDOW = 4


class ExportSteps(WalkBase):
    """Steps of the walk (see :class:`~nbdtui.client.diagnosis.walk_base.WalkBase`)."""

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
        info = fold_infos(reply.infos, self.name)
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
            f"size {export.size} ({human_size(export.size)})",
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
        parts.append(f"commands: {commands(export)}")
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
            f"{rate / (1 << 20):.1f} MiB/s ({human_size(total)} in {seconds:.1f} s, "
            f"{human_size(chunk)} reads, {_THROUGHPUT_WINDOW} in flight)",
        )
