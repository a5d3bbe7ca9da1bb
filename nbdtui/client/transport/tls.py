"""TLS for NBD: the STARTTLS upgrader behind ``nbds://``, ``nbds+unix://`` (and
``nbds+ssh://``).

:func:`~nbdtui.client.transport.openers.tls_upgrader` imports this module the first time
a TLS endpoint is opened, checks the endpoint's settings with :func:`check` and hands out
:func:`start_tls`. The TLS layer is asyncio's
(``loop.start_tls``), which hands decrypted bytes to a ``BufferedProtocol`` straight into
its buffers: READ payload is still received into the caller's buffer. The contexts
(:func:`wrapping_for`) and the errors (:func:`handshake_error`,
:func:`after_handshake_error`) serve the blocking drivers too (the one-shot commands,
the bulk engine's TLS connections): importing this module imports ssl, not asyncio.

A TLS endpoint never falls back to plaintext: a server that refuses NBD_OPT_STARTTLS
ends the handshake ("server does not support TLS"), and any failure here aborts the
connection before anything else is sent.

The URI's TLS parameters (libnbd's names):

``tls-certificates=DIR``
    Trust only ``DIR/ca-cert.pem`` (and honour ``DIR/ca-crl.pem`` when present) instead
    of the system CA store, and present ``DIR/client-cert.pem`` + ``DIR/client-key.pem``
    when they exist (for servers that verify peers: ``nbdkit --tls-verify-peer``, qemu's
    ``verify-peer=on``). It is the directory layout nbdkit, qemu and libnbd share.
    Without it the server is verified against the system CA store.
``tls-hostname=NAME``
    The name the server certificate must be valid for (a DNS name or an IP address),
    also sent as SNI. Default: the endpoint's host (for ``nbds+ssh://`` the SSH host).
    **Unix sockets** have no host: nbdtui then checks the name ``localhost`` (the socket
    is on this machine). libnbd 1.14 skips certificate verification entirely in that
    case and QEMU checks the chain but no name; nbdtui is stricter and its error says to
    add ``tls-hostname=NAME`` when the certificate carries another name.
``tls-verify-peer=false``
    Accept any certificate (no chain or name check). Only honoured when written out; the
    connection is then flagged unverified (``Negotiated.tls_verified`` is False).
``tls-type=x509|psk|anon``
    ``x509`` (the default), ``psk`` (pre-shared key, see below) or ``anon`` (anonymous
    Diffie-Hellman, TLS 1.2, always unverified: it stops eavesdroppers, not impostors).
``tls-psk-file=FILE``
    TLS-PSK with the key of the URI's user (``nbds://alice@host/``; default: the local
    login name, like libnbd) from FILE, in GnuTLS ``psktool`` format (``name:hexkey``
    lines). Needs Python 3.13 or newer (``SSLContext.set_psk_client_callback``). PSK
    authenticates both sides, so such a connection counts as verified.

Errors are :class:`~nbdtui.errors.TLSError` with one line naming the server and the
reason: a certificate that failed verification (unknown CA, expired, hostname mismatch,
revoked), a missing ``ca-cert.pem``, an unreadable client key, a server that closed the
connection or rejected nbdtui's certificate during the TLS handshake.
"""

from __future__ import annotations

import getpass
import ipaddress
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from nbdtui.errors import NbdError, NotSupportedError, TLSError, UriError
from nbdtui.uri import Endpoint

if TYPE_CHECKING:  # asyncio is imported by start_tls only: the blocking one-shot
    import asyncio  # commands use the contexts and the errors without it

    from nbdtui.client.transport.stream import StreamProtocol

__all__ = [
    "NbdSSLContext",
    "TlsSettings",
    "after_handshake_error",
    "check",
    "context_for",
    "describe",
    "handshake_error",
    "is_verified",
    "make_context",
    "read_psk",
    "settings_for",
    "start_tls",
    "wrapping_for",
]

CA_CERT = "ca-cert.pem"
CA_CRL = "ca-crl.pem"
CLIENT_CERT = "client-cert.pem"
CLIENT_KEY = "client-key.pem"
UNIX_HOSTNAME = "localhost"
_FALSE = ("0", "false", "no", "off")

# OpenSSL X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code).
_UNKNOWN_CA = {2, 18, 19, 20, 21}
_NOT_YET_VALID = 9
_EXPIRED = 10
_REVOKED = 23
_NAME_MISMATCH = {62, 63, 64}  # host name, e-mail, IP address


class TlsSettings(NamedTuple):
    """What an endpoint's TLS parameters ask for (see the module documentation). A
    NamedTuple, not a dataclass: importing dataclasses costs a one-shot command 4 ms."""

    kind: str  # "x509" | "psk" | "anon"
    hostname: str | None  # checked against the certificate (x509) and sent as SNI
    verify: bool  # False only with tls-verify-peer=false (x509) and for anon
    certificates: Path | None = None
    psk_file: Path | None = None
    psk_user: str | None = None

    @property
    def verified(self) -> bool:
        """Whether a connection with these settings authenticates the server."""
        return self.kind == "psk" or (self.kind == "x509" and self.verify)


def settings_for(endpoint: Endpoint) -> TlsSettings:
    """Interpret ``endpoint``'s TLS parameters; UriError when they contradict each other."""
    kind = endpoint.tls_param("tls-type")
    psk_file = endpoint.tls_param("tls-psk-file")
    certificates = endpoint.tls_param("tls-certificates")
    verify_text = endpoint.tls_param("tls-verify-peer")
    verify = verify_text is None or verify_text.lower() not in _FALSE
    if kind is None:
        kind = "psk" if psk_file is not None else "x509"
    if kind == "psk":
        if psk_file is None:
            raise UriError("tls-type=psk needs tls-psk-file=FILE (lines of NAME:HEXKEY)")
        if certificates is not None:
            raise UriError("tls-certificates and tls-psk-file exclude each other: pick one")
        user = endpoint.user or _login_name()
        return TlsSettings("psk", _hostname(endpoint), True, psk_file=Path(psk_file), psk_user=user)
    if psk_file is not None:
        raise UriError(f"tls-psk-file needs tls-type=psk (not tls-type={kind})")
    if kind == "anon":
        if certificates is not None:
            raise UriError("tls-type=anon uses no certificates: drop tls-certificates")
        return TlsSettings("anon", _hostname(endpoint), False)
    return TlsSettings(
        "x509",
        _hostname(endpoint),
        verify,
        certificates=Path(certificates) if certificates is not None else None,
    )


def _hostname(endpoint: Endpoint) -> str | None:
    name = endpoint.tls_param("tls-hostname")
    if name is not None:
        return name
    if endpoint.transport == "unix":
        return UNIX_HOSTNAME
    host = endpoint.host
    if host is not None and "%" in host:  # an IPv6 zone id is no part of the certificate
        host = host.partition("%")[0]
    return host


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise TLSError(
            "no user name for TLS-PSK: write it in the URI (nbds://NAME@host/)"
        ) from None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# ---- contexts ----------------------------------------------------------------------


class NbdSSLContext(ssl.SSLContext):
    """A client context made by :func:`make_context`, which knows whether a connection
    made with it authenticates the server (:attr:`TlsSettings.verified`)."""

    verified: bool = False


def make_context(settings: TlsSettings) -> NbdSSLContext:
    """The client SSLContext for ``settings``; TLSError for unusable files."""
    if settings.kind == "psk":
        context = _psk_context(settings)
    elif settings.kind == "anon":
        context = _anon_context()
    else:
        context = _x509_context(settings)
    context.verified = settings.verified
    return context


def _x509_context(settings: TlsSettings) -> NbdSSLContext:
    context = NbdSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    directory = settings.certificates
    if directory is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        _load_directory(context, directory)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif settings.hostname is None:  # pragma: no cover - every endpoint has a name
        raise TLSError("no host name to verify the TLS certificate against: add tls-hostname=")
    return context


def _load_directory(context: ssl.SSLContext, directory: Path) -> None:
    ca = directory / CA_CERT
    if not directory.is_dir():
        raise TLSError(f"tls-certificates: no such directory: {directory}")
    if not ca.exists():
        raise TLSError(
            f"no {CA_CERT} in {directory} (tls-certificates= names a directory holding "
            f"{CA_CERT}, and {CLIENT_CERT} + {CLIENT_KEY} for client authentication)"
        )
    try:
        context.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(f"cannot use CA certificate {ca}: {_reason(exc)}") from exc
    crl = directory / CA_CRL
    if crl.exists():
        try:
            context.load_verify_locations(cafile=str(crl))
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f"cannot use certificate revocation list {crl}: {_reason(exc)}") from exc
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    cert, key = directory / CLIENT_CERT, directory / CLIENT_KEY
    if not cert.exists() and not key.exists():
        return  # no client authentication: fine unless the server verifies peers
    if not cert.exists() or not key.exists():
        have, lack = (cert, key) if cert.exists() else (key, cert)
        raise TLSError(f"{have.name} without {lack.name} in {directory}: add it or remove both")
    for path in (cert, key):
        try:
            path.open("rb").close()
        except OSError as exc:
            raise TLSError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        raise TLSError(
            f"cannot use client certificate {cert} with key {key}: {_reason(exc)}"
        ) from exc


def _anon_context() -> NbdSSLContext:
    context = NbdSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Anonymous key exchange exists only up to TLS 1.2 (GnuTLS's ANON-DH / ANON-ECDH).
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.set_ciphers("aNULL:!eNULL:@SECLEVEL=0")
    except ssl.SSLError as exc:  # pragma: no cover - depends on the OpenSSL build
        raise TLSError(f"this OpenSSL has no anonymous TLS ciphers: {_reason(exc)}") from exc
    return context


def read_psk(path: Path, user: str) -> bytes:
    """The key of ``user`` in a GnuTLS ``psktool`` file (``name:hexkey`` lines)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TLSError(f"cannot read PSK file {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(text.splitlines(), 1):
        name, colon, hexkey = line.strip().partition(":")
        if colon and name == user:
            try:
                key = bytes.fromhex(hexkey)
            except ValueError:
                raise TLSError(f"{path}, line {number}: the key of '{user}' is not hex") from None
            if not key:
                raise TLSError(f"{path}, line {number}: the key of '{user}' is empty")
            return key
    raise TLSError(f"user '{user}' not found in PSK file {path} (set the user: nbds://NAME@...)")


# What SSLContext.set_psk_client_callback takes: the server's identity hint to
# (identity, key).
_PskClientCallback = Callable[[str | None], tuple[str | None, bytes]]


def _psk_context(settings: TlsSettings) -> NbdSSLContext:
    context = NbdSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # SSLContext.set_psk_client_callback is new in Python 3.13 (not in the 3.11 stubs)
    set_callback: Callable[[_PskClientCallback], None] | None = getattr(
        context, "set_psk_client_callback", None
    )
    if set_callback is None:
        this = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise TLSError(f"TLS-PSK needs Python 3.13 or newer (this is {this})")
    assert settings.psk_file is not None and settings.psk_user is not None
    key = read_psk(settings.psk_file, settings.psk_user)
    identity = settings.psk_user
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-PSK:DHE-PSK:PSK")  # for TLS 1.2; TLS 1.3 suites stay on
    set_callback(lambda hint: (identity, key))
    return context


# ---- the upgrader ------------------------------------------------------------------


_CONTEXTS: dict[tuple[object, ...], NbdSSLContext] = {}
_CONTEXTS_KEPT = 16


def _stamp(settings: TlsSettings) -> tuple[object, ...]:
    """What the files behind ``settings`` look like now (a changed file is reloaded)."""
    paths: list[Path] = []
    if settings.certificates is not None:
        paths += [settings.certificates / n for n in (CA_CERT, CA_CRL, CLIENT_CERT, CLIENT_KEY)]
    if settings.psk_file is not None:
        paths.append(settings.psk_file)
    stamp: list[object] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            stamp.append(None)
        else:
            stamp.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(stamp)


def context_for(settings: TlsSettings) -> NbdSSLContext:
    """:func:`make_context`, cached: the connections of a pool share one context (loading
    the system CA store takes tens of milliseconds)."""
    key = (settings._replace(hostname=None), _stamp(settings))  # name: not in it
    context = _CONTEXTS.get(key)
    if context is None:
        context = make_context(settings)
        if len(_CONTEXTS) >= _CONTEXTS_KEPT:
            del _CONTEXTS[next(iter(_CONTEXTS))]
        _CONTEXTS[key] = context
    return context


def wrapping_for(endpoint: Endpoint) -> tuple[NbdSSLContext, str | None]:
    """The context to wrap ``endpoint``'s stream with and the ``server_hostname`` to give
    (``None`` for an address whose name is not checked: no name check and no SNI)."""
    settings = settings_for(endpoint)
    context = context_for(settings)
    hostname = settings.hostname
    if hostname is not None and not context.check_hostname and _is_ip(hostname):
        hostname = None
    return context, hostname


def check(endpoint: Endpoint) -> None:
    """Raise TLSError now, before connecting, if ``endpoint``'s TLS settings are unusable."""
    context_for(settings_for(endpoint))


async def start_tls(
    endpoint: Endpoint, transport: asyncio.Transport, protocol: StreamProtocol
) -> asyncio.Transport:
    """Wrap ``transport`` in TLS as ``endpoint`` asks (the built-in
    :data:`~nbdtui.client.transport.stream.TlsUpgrader`)."""
    import asyncio

    context, hostname = wrapping_for(endpoint)
    if not getattr(transport, "_start_tls_compatible", False):  # what loop.start_tls checks
        raise NotSupportedError(f"TLS over {endpoint.transport} connections is not supported")
    loop = asyncio.get_running_loop()
    try:
        tls_transport = await loop.start_tls(
            transport, protocol, context, server_side=False, server_hostname=hostname
        )
    except (OSError, EOFError) as exc:
        raise handshake_error(endpoint, exc) from exc
    if tls_transport is None:  # pragma: no cover - asyncio returns one unless it raised
        raise TLSError(f"TLS handshake with {endpoint.display} failed: no TLS transport")
    return tls_transport


def is_verified(transport: asyncio.BaseTransport) -> bool:
    """Whether the TLS ``transport`` authenticated the server (see the module docs).

    For contexts not made here: a verified certificate chain and host name.
    """
    context = transport.get_extra_info("sslcontext")
    if isinstance(context, NbdSSLContext):
        return context.verified
    if not isinstance(context, ssl.SSLContext):
        return False
    return context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def describe(transport: asyncio.BaseTransport) -> str:
    """The TLS version and cipher of ``transport`` and whether the server was verified,
    for the debug log (``"TLSv1.3 TLS_AES_256_GCM_SHA384, verified"``)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return "not TLS"
    cipher = ssl_object.cipher()
    name = cipher[0] if cipher is not None else "no cipher"
    verified = "verified" if is_verified(transport) else "not verified"
    return f"{ssl_object.version()} {name}, {verified}"


# ---- errors ------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLError) and reason:
        return str(reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _trust(endpoint: Endpoint) -> str:
    directory = endpoint.tls_param("tls-certificates")
    if directory is None:
        return "the system CA store does not trust it: use tls-certificates=DIR"
    return f"it is not signed by the CA in {Path(directory) / CA_CERT}"


def _verify_error(endpoint: Endpoint, exc: ssl.SSLCertVerificationError) -> TLSError:
    where = endpoint.display
    code = exc.verify_code
    message = (exc.verify_message or _reason(exc)).rstrip(".")
    if code in _NAME_MISMATCH:
        try:
            name = settings_for(endpoint).hostname
        except NbdError:  # pragma: no cover - the settings were usable a moment ago
            name = None
        hint = (
            " (a Unix socket has no host name: give the certificate's with tls-hostname=NAME)"
            if endpoint.transport == "unix" and endpoint.tls_param("tls-hostname") is None
            else " (set tls-hostname=NAME to a name the certificate carries)"
        )
        detail = f"certificate is not valid for '{name}'" if name else message
        return TLSError(
            f"TLS certificate verify failed for {where}: hostname mismatch, {detail}{hint}"
        )
    if code in _UNKNOWN_CA:
        return TLSError(
            f"TLS certificate verify failed for {where}: unknown CA ({message}; {_trust(endpoint)})"
        )
    if code == _EXPIRED:
        return TLSError(f"TLS certificate verify failed for {where}: certificate has expired")
    if code == _NOT_YET_VALID:
        return TLSError(
            f"TLS certificate verify failed for {where}: certificate is not yet valid "
            "(check the clocks)"
        )
    if code == _REVOKED:
        return TLSError(f"TLS certificate verify failed for {where}: certificate was revoked")
    return TLSError(f"TLS certificate verify failed for {where}: {message}")


_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate: put "
    f"{CLIENT_CERT} and {CLIENT_KEY} in the tls-certificates directory",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server rejected nbdtui's client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the CA of nbdtui's client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server says nbdtui's client certificate has expired",
    "TLSV1_ALERT_ACCESS_DENIED": "the server denied access (client certificate not accepted)",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server refused the handshake (it may want other "
    "credentials: check tls-type, tls-certificates, tls-psk-file)",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common with the server",
    "NO_SHARED_CIPHER": "no cipher in common with the server",
    "WRONG_VERSION_NUMBER": "the server did not answer in TLS",
    "UNKNOWN_PROTOCOL": "the server did not answer in TLS",
    "TLSV1_ALERT_UNKNOWN_PSK_IDENTITY": "the server does not know the PSK user name",
    "TLSV1_ALERT_DECRYPT_ERROR": "the server rejected the handshake (wrong pre-shared key?)",
}


def handshake_error(endpoint: Endpoint, exc: BaseException) -> TLSError:
    """A one-line TLSError for an exception raised by (or right after) the TLS handshake."""
    where = endpoint.display
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _verify_error(endpoint, exc)
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        if reason in _ALERTS:
            return TLSError(f"TLS handshake with {where} failed: {_ALERTS[reason]}")
        if reason == "UNEXPECTED_EOF_WHILE_READING" or isinstance(exc, ssl.SSLEOFError):
            return TLSError(f"server {where} closed the connection during the TLS handshake")
        return TLSError(f"TLS handshake with {where} failed: {_reason(exc)}")
    if isinstance(exc, ConnectionAbortedError):  # asyncio's ssl_handshake_timeout
        return TLSError(f"TLS handshake with {where} failed: {_reason(exc)}")
    if isinstance(exc, ConnectionError | EOFError):
        return TLSError(
            f"server {where} closed the connection during the TLS handshake (it may want "
            "other credentials: check tls-type, tls-certificates, tls-psk-file)"
        )
    return TLSError(f"TLS handshake with {where} failed: {_reason(exc)}")


def after_handshake_error(
    endpoint: Endpoint, exc: BaseException | None, *, quiet: bool
) -> TLSError | None:
    """The TLSError for a connection that failed after the TLS handshake, during the NBD
    one: a TLS alert (``exc``), or, when nothing arrived through TLS yet (``quiet``), a
    server hanging up, which is how GnuTLS servers (nbdkit, qemu) reject a missing or
    untrusted client certificate under TLS 1.3. None when neither applies."""
    if isinstance(exc, ssl.SSLError):
        return handshake_error(endpoint, exc)
    if not quiet:
        return None
    where = endpoint.display
    directory = endpoint.tls_param("tls-certificates")
    cert = Path(directory) / CLIENT_CERT if directory else None
    if cert is not None and cert.exists():
        hint = f"it probably does not accept nbdtui's client certificate {cert}"
    else:
        where_to = "the tls-certificates directory" if directory else "tls-certificates=DIR"
        hint = (
            "it probably requires a client certificate: "
            f"put {CLIENT_CERT} and {CLIENT_KEY} in {where_to}"
        )
    return TLSError(f"server {where} closed the connection right after the TLS handshake ({hint})")
