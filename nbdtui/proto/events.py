"""Frozen data exchanged between the sans-IO handshake and its drivers.

These types are the contract between ``proto/handshake.py`` (which produces them),
``client/`` (which drives the handshake on a socket) and the CLI/TUI (which show them).
"""

from __future__ import annotations

from dataclasses import dataclass

from nbdtui.proto.constants import TransmissionFlag as TF


@dataclass(frozen=True)
class ExportInfo:
    """What the server told us about one export.

    Block sizes are ``None`` when the server did not send NBD_INFO_BLOCK_SIZE.
    """

    name: str
    size: int
    flags: int
    description: str | None = None
    block_minimum: int | None = None
    block_preferred: int | None = None
    block_maximum: int | None = None

    def _has(self, flag: TF) -> bool:
        return bool(self.flags & TF.HAS_FLAGS) and bool(self.flags & flag)

    @property
    def read_only(self) -> bool:
        return self._has(TF.READ_ONLY)

    @property
    def rotational(self) -> bool:
        return self._has(TF.ROTATIONAL)

    @property
    def can_flush(self) -> bool:
        return self._has(TF.SEND_FLUSH)

    @property
    def can_fua(self) -> bool:
        return self._has(TF.SEND_FUA)

    @property
    def can_trim(self) -> bool:
        return self._has(TF.SEND_TRIM)

    @property
    def can_zero(self) -> bool:
        return self._has(TF.SEND_WRITE_ZEROES)

    @property
    def can_fast_zero(self) -> bool:
        return self._has(TF.SEND_FAST_ZERO)

    @property
    def can_df(self) -> bool:
        return self._has(TF.SEND_DF)

    @property
    def can_multi_conn(self) -> bool:
        return self._has(TF.CAN_MULTI_CONN)

    @property
    def can_cache(self) -> bool:
        return self._has(TF.SEND_CACHE)

    @property
    def can_resize(self) -> bool:
        return self._has(TF.SEND_RESIZE)


@dataclass(frozen=True)
class ExportDetails:
    """One entry of NBD_OPT_LIST, with NBD_OPT_INFO details when the server gave them."""

    name: str
    description: str
    info: ExportInfo | None = None
    contexts: tuple[str, ...] | None = None


# ---- events returned by ClientHandshake.receive_data -------------------------------


@dataclass(frozen=True)
class StartTLS:
    """The server accepted NBD_OPT_STARTTLS: wrap the socket in TLS now, then call
    ``ClientHandshake.tls_established()`` and go on feeding (decrypted) bytes."""


@dataclass(frozen=True)
class Negotiated:
    """The handshake finished (GO, EXPORT_NAME or oldstyle): transmission begins.

    ``protocol`` is ``"newstyle-fixed"``, ``"newstyle"`` or ``"oldstyle"`` (nbdinfo's words).
    ``meta_contexts`` maps each context the server agreed to (SET_META_CONTEXT) to its id.
    ``available_contexts`` is what LIST_META_CONTEXT returned, when it was asked for.
    """

    info: ExportInfo
    protocol: str
    structured: bool
    meta_contexts: tuple[tuple[str, int], ...] = ()
    available_contexts: tuple[str, ...] | None = None
    tls: bool = False
    #: TLS authenticated the server (verified certificate, or PSK); False when plaintext
    tls_verified: bool = False

    def context_id(self, name: str) -> int | None:
        for ctx, ident in self.meta_contexts:
            if ctx == name:
                return ident
        return None


@dataclass(frozen=True)
class ExportsListed:
    """NBD_OPT_LIST finished (and INFO for each export when details were asked for)."""

    protocol: str
    exports: tuple[ExportDetails, ...]
    structured: bool = False
    tls: bool = False
    tls_verified: bool = False  # as in Negotiated
