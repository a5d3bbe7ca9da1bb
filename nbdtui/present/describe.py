"""Words for people: how the CLI and the TUI describe an export and its connection.

Pure functions over the handshake's data types, so that both front ends say the same
thing in the same words.
"""

from __future__ import annotations

from nbdtui.proto.types import ExportInfo


def flag_words(info: ExportInfo) -> str:
    """The capabilities an export advertises, e.g. ``flush fua trim zero``."""
    words = [
        word
        for word, present in (
            ("flush", info.can_flush),
            ("fua", info.can_fua),
            ("trim", info.can_trim),
            ("zero", info.can_zero),
            ("fast-zero", info.can_fast_zero),
            ("cache", info.can_cache),
            ("df", info.can_df),
            ("multi-conn", info.can_multi_conn),
            ("resize", info.can_resize),
            ("rotational", info.rotational),
        )
        if present
    ]
    return " ".join(words) or "none"


def block_sizes(info: ExportInfo) -> str:
    if info.block_minimum is None:
        return "not advertised"
    return (
        f"minimum {info.block_minimum}, preferred {info.block_preferred}, "
        f"maximum {info.block_maximum}"
    )


def tls_state(tls: bool, verified: bool) -> str:
    """``TLS (verified)``, ``TLS (unverified)`` or ``no TLS``."""
    if not tls:
        return "no TLS"
    return "TLS (verified)" if verified else "TLS (unverified)"


def protocol_line(protocol: str, structured: bool, tls: bool, verified: bool) -> str:
    """``newstyle-fixed, TLS (verified), structured replies``."""
    replies = "structured replies" if structured else "simple replies only"
    return ", ".join([protocol, tls_state(tls, verified), replies])
