"""Caps on what a server may make a client hold during the handshake, one set for both
client machines (:mod:`nbdtui.proto.client_handshake` and
:mod:`nbdtui.proto.option_probe`, the doctor's).

The intermediate replies to one option (exports listed, infos, meta contexts) are kept
until its final reply: their number and their bytes on the wire (headers included) are
capped, and so are those to all the options of one handshake. A listing of 100,000
exports with their details stays well under them; a server streaming replies without
end meets them within a second. A reply that would pass a cap is refused before its
payload is buffered, with a one-line error naming the cap.
"""

from __future__ import annotations

from nbdtui.errors import ProtocolError
from nbdtui.proto import option_codec as wire

__all__ = [
    "MAX_HANDSHAKE_REPLY_BYTES",
    "MAX_OPTION_REPLIES",
    "MAX_OPTION_REPLY_BYTES",
    "ReplyCaps",
]

MAX_OPTION_REPLIES = 250_000
MAX_OPTION_REPLY_BYTES = 32 << 20
MAX_HANDSHAKE_REPLY_BYTES = 128 << 20


class ReplyCaps:
    """What one handshake has kept so far, checked against the caps (read when
    checked, so that a test may lower them)."""

    def __init__(self) -> None:
        self.replies = 0  # intermediate replies to the option awaited
        self.reply_bytes = 0  # and their bytes
        self.handshake_bytes = 0  # of the intermediate replies to every option so far

    def check(self, option: int, size: int) -> None:
        """Refuse one more intermediate reply of ``size`` bytes (header included) to
        ``option`` when it would pass a cap: ProtocolError."""
        name = wire.option_name(option)
        if self.replies >= MAX_OPTION_REPLIES:
            raise ProtocolError(
                f"server sent more than {MAX_OPTION_REPLIES} replies to {name}, "
                "nbdtui's cap on the replies to one option"
            )
        if self.reply_bytes + size > MAX_OPTION_REPLY_BYTES:
            raise ProtocolError(
                f"server sent more than {_mib(MAX_OPTION_REPLY_BYTES)} of replies to {name}, "
                "nbdtui's cap on the replies to one option"
            )
        if self.handshake_bytes + size > MAX_HANDSHAKE_REPLY_BYTES:
            raise ProtocolError(
                f"server sent more than {_mib(MAX_HANDSHAKE_REPLY_BYTES)} of option replies "
                f"(the last to {name}), nbdtui's cap on one handshake"
            )

    def kept(self, size: int) -> None:
        """An intermediate reply of ``size`` bytes (checked) was kept."""
        self.replies += 1
        self.reply_bytes += size
        self.handshake_bytes += size

    def answered(self) -> None:
        """The option awaited got its final reply: its replies no longer count."""
        self.replies = self.reply_bytes = 0


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"
