"""NBD endpoints: parsing and printing NBD URIs (NetworkBlockDevice/nbd doc/uri.md).

``parse(text)`` turns a URI (or one of QEMU's legacy ``nbd:`` strings) into a frozen
``Endpoint``; ``Endpoint.uri`` prints it back in canonical form, and
``parse(e.uri) == e`` holds for every Endpoint that can be constructed (constructing
an Endpoint validates it with the same rules as ``parse`` and raises ``UriError``).

Forms::

    nbd://[user@]host[:port]/[export][?query]            TCP (nbds: TLS required)
    nbd+tcp://...                                        QEMU's spelling of nbd://
    nbd+unix:///[export]?socket=PATH[&query]             Unix socket (nbds+unix: TLS)
    nbd+ssh://[user@]host[:sshport]/[export][?socket=REMOTE_PATH]
    nbd+vsock://CID[:port]/[export]                      parsed; the client refuses it
    nbd:HOST:PORT[:exportname=NAME]                      QEMU legacy
    nbd:[IPV6]:PORT[:exportname=NAME]                    QEMU legacy
    nbd:unix:PATH[:exportname=NAME]                      QEMU legacy

Decisions where the spec leaves a choice:

- The scheme is case-insensitive; blanks around the whole string are ignored.
- The export name is the path minus exactly one leading ``/``, percent-decoded as
  UTF-8 (``nbd://h//disk`` is ``/disk``).  Legacy ``exportname=`` is taken verbatim,
  as QEMU does.  Raw non-ASCII and blanks in the path are accepted as typed; control
  characters, NUL, malformed ``%`` escapes and names over 4096 bytes are refused.
- Printing percent-encodes everything outside the RFC 3986 path characters, ``+``
  (some parsers read it as a blank) and a *leading* ``/`` of the export name:
  ``/disk`` prints as ``nbd://h/%2Fdisk``, which survives parsers that collapse
  ``//``; other ``/`` stay literal.  Query values keep ``/`` and ``:`` literal and
  encode ``& = + # ? %`` and blanks.  On input ``+`` is never read as a blank.
- TLS query parameters on a non-TLS scheme are accepted and kept, as libnbd does
  (``nbd://`` may use TLS opportunistically); the client decides what to do.
  ``tls-type`` must be ``anon``, ``x509`` or ``psk``; ``tls-verify-peer`` must be a
  boolean (``0``/``1``, ``true``/``false``, ``yes``/``no``, ``on``/``off``).
- Query parameters other than ``socket``, the TLS ones and ``x-*`` are errors, with a
  "did you mean" suggestion; a parameter given twice is an error.  ``x-*`` parameters
  are kept verbatim (value may be empty).  Empty ``&&`` segments are ignored.
- IPv6 literals go in brackets; zone ids are supported in RFC 6874 form
  (``nbd://[fe80::1%25eth0]/``), and are stored as ``fe80::1%eth0`` in ``host``.
- Host names are ASCII letters, digits, ``.``, ``_`` and ``-`` (no percent-encoding);
  a host or user beginning with ``-`` is refused so that it can never become an
  option of a command such as ssh.
- ``user@`` is kept (ssh user, TLS PSK user name); ``user:password@`` is refused.
- An empty port (``nbd://h:/``) means the default; ports are 1-65535 (vsock: up to
  2**32-1) and ``port=None`` is printed as no port at all.
- ``nbd+unix`` forbids host and port but allows ``user@`` (a TLS PSK user name);
  ``socket=%00name`` is an abstract socket (NUL allowed only as the first byte).
- ``nbd+ssh`` without ``socket=`` means the default NBD port on the remote host.
- Printed URIs always have a ``/`` after the authority (``nbd://h/``,
  ``nbd+unix:///?socket=/x``) and list ``socket`` first, then the TLS parameters,
  then the ``x-`` ones, each group sorted by key.

``without_secrets(text)`` is the one place that decides what in a URI is secret; every
URI nbdtui stores (the connect screen's history, the undo journal) goes through it.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote

from nbdtui.errors import UriError
from nbdtui.proto.constants import DEFAULT_PORT, MAX_STRING
from nbdtui.proto.records import Record

TRANSPORTS = ("tcp", "unix", "ssh", "vsock")
TLS_PARAMS = ("tls-certificates", "tls-hostname", "tls-psk-file", "tls-type", "tls-verify-peer")
TLS_TYPES = ("anon", "x509", "psk")
BOOLEANS = ("0", "1", "true", "false", "yes", "no", "on", "off")

# scheme -> (transport, tls)
SCHEMES: dict[str, tuple[str, bool]] = {
    "nbd": ("tcp", False),
    "nbds": ("tcp", True),
    "nbd+tcp": ("tcp", False),
    "nbd+unix": ("unix", False),
    "nbds+unix": ("unix", True),
    "nbd+ssh": ("ssh", False),
    "nbds+ssh": ("ssh", True),
    "nbd+vsock": ("vsock", False),
    "nbds+vsock": ("vsock", True),
}
_SCHEME_OF = {(t, tls): s for s, (t, tls) in SCHEMES.items() if s != "nbd+tcp"}

MAX_URI = 64 * 1024
MAX_PORT = 65535
MAX_VSOCK = 2**32 - 1

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HOST_RE = re.compile(r"[A-Za-z0-9._-]+")
_ZONE_RE = re.compile(r"[A-Za-z0-9._~-]+")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")

# Characters printed literally; everything else is percent-encoded as UTF-8.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*,;=:@/")  # RFC 3986 pchar and "/", minus "+"
_QUERY_SAFE = _UNRESERVED | frozenset("!$'()*,;:@/")
_USER_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=")

_EXPECTED = "expected nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"


# ---------------------------------------------------------------- helpers


def _q(text: str, limit: int = 80) -> str:
    """Quote a piece of user input for a one-line message."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if text.isprintable():
        return f"'{text}'"
    return repr(text)


def _encode(text: str, safe: frozenset[str]) -> str:
    out = []
    for ch in text:
        if ch in safe:
            out.append(ch)
        else:
            # surrogateescape: a local socket path's undecodable byte prints as itself
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _decode(text: str, what: str, *, raw_bytes: bool = False) -> str:
    """Strict percent-decoding: every ``%`` starts a two-digit hex escape; UTF-8.

    ``text`` may hold bytes that were not UTF-8 on the command line (Python gives them
    as lone surrogates, "surrogateescape"): they are bytes like the escaped ones. The
    result must be UTF-8 unless ``raw_bytes`` (a local path, which is bytes on Linux:
    its undecodable bytes come back as surrogates, as ``os.fsdecode`` gives them).
    """
    if "%" not in text and (raw_bytes or not _has_surrogate(text)):
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            escape = text[i + 1 : i + 3]
            if not _HEX2.fullmatch(escape):
                raise UriError(f"malformed percent-escape {_q(text[i : i + 3])} in {what}")
            out.append(int(escape, 16))
            i += 3
        else:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
    try:
        return out.decode("utf-8", "surrogateescape" if raw_bytes else "strict")
    except UnicodeDecodeError:
        after = " after percent-decoding" if "%" in text else ""
        raise UriError(f"{what} is not valid UTF-8{after}") from None


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _check_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UriError(f"{what} is not valid UTF-8") from None


def _check_path(text: str, what: str) -> None:
    """A local path is bytes: UTF-8, or undecodable bytes as ``os.fsdecode`` gives them."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = None
    # Canonical: the form os.fsdecode gives those bytes (so that parse(e.uri) == e).
    if raw is None or raw.decode("utf-8", "surrogateescape") != text:
        raise UriError(f"{what} is neither UTF-8 nor the bytes of a local path") from None


def _check_host(host: str) -> None:
    if not host:
        raise UriError("empty host")
    if host.startswith("-"):
        raise UriError(f"host {_q(host)} may not begin with '-'")
    if ":" in host:
        address, _, zone = host.partition("%")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise UriError(f"invalid IPv6 address {_q(host)}") from None
        if "%" in host and not _ZONE_RE.fullmatch(zone):
            raise UriError(f"invalid IPv6 zone id {_q(zone)} in {_q(host)}")
        return
    if not _HOST_RE.fullmatch(host):
        bad = next((c for c in host if not _HOST_RE.fullmatch(c)), host[0])
        raise UriError(f"invalid character {_q(bad)} in host {_q(host)}")


def _check_user(user: str) -> None:
    if not user:
        raise UriError("empty user name before '@'")
    if user.startswith("-"):
        raise UriError(f"user name {_q(user)} may not begin with '-'")
    if _has_control(user):
        raise UriError(f"control character in user name {_q(user)}")
    _check_utf8(user, "user name")


def _check_port(port: object, limit: int = MAX_PORT) -> None:
    if not isinstance(port, int) or isinstance(port, bool):
        raise UriError(f"port {port!r} is not a number")
    if not 1 <= port <= limit:
        raise UriError(f"port {port} out of range")


def _parse_port(text: str, limit: int = MAX_PORT) -> int | None:
    if text == "":
        return None
    if not text.isascii() or not text.isdigit():
        raise UriError(f"port {_q(text)} is not a number")
    if len(text.lstrip("0")) > 10:
        raise UriError(f"port {_q(text, 20)} out of range")
    port = int(text)
    _check_port(port, limit)
    return port


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str | None:
    import difflib  # only for a mistyped word: not at start-up

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


# ---------------------------------------------------------------- Endpoint


class Endpoint(Record):
    """Where an NBD export lives and how to reach it."""

    _fields = (
        "transport",
        "tls",
        "host",
        "port",
        "socket",
        "export",
        "user",
        "tls_params",
        "extra",
    )
    __slots__ = _fields
    transport: str  # "tcp" | "unix" | "ssh" | "vsock"
    tls: bool
    host: str | None  # tcp host or IP literal (IPv6 unbracketed); ssh host; vsock CID
    port: int | None  # tcp: NBD port (None = 10809); ssh: SSH port; vsock: port
    socket: str | None  # unix: local socket path; ssh: remote unix socket path
    export: str
    user: str | None  # ssh user, TLS PSK user name
    tls_params: tuple[tuple[str, str], ...]  # sorted by key
    extra: tuple[tuple[str, str], ...]  # x-* parameters, sorted by key

    def __init__(
        self,
        transport: str,
        tls: bool = False,
        host: str | None = None,
        port: int | None = None,
        socket: str | None = None,
        export: str = "",
        user: str | None = None,
        tls_params: tuple[tuple[str, str], ...] = (),
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        s = self._set
        s[0](self, transport)
        s[1](self, tls)
        s[2](self, host)
        s[3](self, port)
        s[4](self, socket)
        s[5](self, export)
        s[6](self, user)
        # The parameter lists normalised (any iterable of pairs, any order).
        s[7](self, _pairs(tls_params))
        s[8](self, _pairs(extra))
        _validate(self)

    @property
    def scheme(self) -> str:
        return _SCHEME_OF[(self.transport, self.tls)]

    @property
    def uri(self) -> str:
        """The canonical URI; ``parse(e.uri) == e``."""
        authority = ""
        if self.user is not None:
            authority = _encode(self.user, _USER_SAFE) + "@"
        if self.host is not None:
            host = self.host.replace("%", "%25") if ":" in self.host else self.host
            authority += _bracket(host)
        if self.port is not None:
            authority += f":{self.port}"
        path = "/" + _encode(self.export[:1], _PATH_SAFE - {"/"})
        path += _encode(self.export[1:], _PATH_SAFE)
        query = []
        if self.socket is not None:
            query.append(("socket", self.socket))
        query += self.tls_params
        query += self.extra
        text = f"{self.scheme}://{authority}{path}"
        if query:
            text += "?" + "&".join(
                f"{_encode(k, _QUERY_SAFE)}={_encode(v, _QUERY_SAFE)}" for k, v in query
            )
        return text

    @property
    def display(self) -> str:
        """A short human location for messages (no export name)."""
        if self.transport == "unix":
            assert self.socket is not None
            if self.socket.startswith("\0"):
                return "@" + self.socket[1:]
            return self.socket
        if self.transport == "tcp":
            assert self.host is not None
            return f"{_bracket(self.host)}:{self.tcp_port}"
        if self.transport == "vsock":
            return f"vsock:{self.host}:{self.tcp_port}"
        # ssh
        assert self.host is not None
        where = (self.user + "@" if self.user else "") + _bracket(self.host)
        if self.socket is not None:
            where += ":" + self.socket
        return f"{where} (ssh, port {self.port})" if self.port else f"{where} (ssh)"

    @property
    def tcp_port(self) -> int:
        """The port to connect to: ``port`` or the default 10809."""
        return DEFAULT_PORT if self.port is None else self.port

    def with_export(self, name: str) -> Endpoint:
        return self.replace(export=name)

    def tls_param(self, key: str) -> str | None:
        for k, v in self.tls_params:
            if k == key:
                return v
        return None


def _pairs(items: object) -> tuple[tuple[str, str], ...]:
    try:
        # ``items`` is whatever the caller passed: iterating it is the check.
        pairs = tuple((k, v) for k, v in items)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise UriError("query parameters must be (key, value) pairs") from None
    for k, v in pairs:
        if not isinstance(k, str) or not isinstance(v, str):
            raise UriError("query parameters must be (key, value) pairs of strings")
    return tuple(sorted(pairs))


def _validate(e: Endpoint) -> None:
    if e.transport not in TRANSPORTS:
        raise UriError(f"unknown transport {e.transport!r} (expected tcp, unix, ssh or vsock)")
    if not isinstance(e.tls, bool):
        raise UriError(f"tls must be True or False, not {e.tls!r}")
    scheme = _SCHEME_OF[(e.transport, e.tls)]
    if e.user is not None:
        _check_user(e.user)

    if e.transport == "unix":
        if e.host is not None:
            raise UriError(
                f"{scheme} URI may not have a host ({_q(e.host)}): give the socket as ?socket=PATH"
            )
        if e.port is not None:
            raise UriError(f"{scheme} URI may not have a port")
        if e.socket is None:
            raise UriError(f"{scheme} URI needs ?socket=PATH")
    else:
        if not isinstance(e.host, str) or not e.host:
            what = "a CID as host" if e.transport == "vsock" else "a host"
            raise UriError(f"{scheme} URI needs {what}")
        if e.transport == "vsock":
            if not (e.host.isascii() and e.host.isdigit()):
                raise UriError(f"vsock CID {_q(e.host)} is not a number")
            if int(e.host) > MAX_VSOCK:
                raise UriError(f"vsock CID {e.host} out of range")
        else:
            _check_host(e.host)
        if e.port is not None:
            _check_port(e.port, MAX_VSOCK if e.transport == "vsock" else MAX_PORT)
        if e.socket is not None and e.transport != "ssh":
            raise UriError(
                f"query parameter 'socket' is not allowed with {scheme}:// "
                "(use nbd+unix:///?socket=PATH or nbd+ssh://HOST/?socket=PATH)"
            )

    if e.socket is not None:
        if not isinstance(e.socket, str) or not e.socket:
            raise UriError("socket path is empty")
        if "\0" in e.socket[1:] or (e.socket.startswith("\0") and e.transport != "unix"):
            raise UriError(f"socket path {_q(e.socket)} contains a NUL byte")
        if e.socket == "\0":
            raise UriError("abstract socket name is empty")
        if e.transport == "unix":
            _check_path(e.socket, "socket path")
        else:  # a path on the SSH host travels as an SSH protocol string: UTF-8
            _check_utf8(e.socket, "remote socket path")

    if not isinstance(e.export, str):
        raise UriError(f"export name must be a string, not {type(e.export).__name__}")
    if "\0" in e.export:
        raise UriError("export name contains a NUL byte")
    _check_utf8(e.export, "export name")
    size = len(e.export.encode("utf-8"))
    if size > MAX_STRING:
        raise UriError(f"export name is {size} bytes long, the limit is {MAX_STRING}")

    keys = [k for k, _ in e.tls_params] + [k for k, _ in e.extra]
    for key in keys:
        if keys.count(key) > 1:
            raise UriError(f"duplicate query parameter {_q(key)}")
    for key, value in e.tls_params:
        if key not in TLS_PARAMS:
            raise UriError(f"unknown TLS parameter {_q(key)}")
        _check_utf8(value, f"value of {key}")
        if _has_control(value):
            raise UriError(f"control character in the value of {key}")
        if not value:
            raise UriError(f"query parameter {_q(key)} needs a value")
        if key == "tls-type" and value not in TLS_TYPES:
            raise UriError(f"tls-type {_q(value)} is not one of anon, x509, psk")
        if key == "tls-verify-peer" and value.lower() not in BOOLEANS:
            raise UriError(f"tls-verify-peer {_q(value)} is not a boolean (0 or 1)")
    for key, value in e.extra:
        if not key.startswith("x-"):
            raise UriError(f"extra query parameter {_q(key)} does not start with 'x-'")
        _check_utf8(key + value, f"query parameter {key}")
        if "\0" in key + value:
            raise UriError(f"query parameter {_q(key)} contains a NUL byte")


# ---------------------------------------------------------------- parse


def parse(text: str) -> Endpoint:
    """Parse an NBD URI or a QEMU legacy ``nbd:`` string; raise ``UriError``."""
    if not isinstance(text, str):
        raise UriError(f"an NBD URI must be a string, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise UriError(f"empty URI: {_EXPECTED}")
    if len(text) > MAX_URI:
        raise UriError(f"too long for an NBD URI ({len(text)} characters)")
    if _has_control(text):
        raise UriError(f"control character in URI {_q(text)}")

    match = _SCHEME_RE.match(text)
    scheme = match[1].lower() if match else None
    if match is not None and scheme in SCHEMES:
        rest = text[match.end() :]
        if not rest.startswith("//"):
            if scheme == "nbd":
                return _parse_legacy(rest)
            raise UriError(f"expected '//' after '{scheme}:' in {_q(text)}")
        return _parse_uri(scheme, rest[2:])
    if match and "://" in text:
        raise UriError(_unknown_scheme(scheme or ""))
    if "://" not in text:
        hint = _bare_word_hint(text)
        if hint:
            raise UriError(f"not an NBD URI: {_q(text)} (did you mean {hint}?)")
        if match:
            raise UriError(_unknown_scheme(scheme or ""))
    raise UriError(f"not an NBD URI: {_q(text)} ({_EXPECTED})")


def _unknown_scheme(scheme: str) -> str:
    close = _suggest(scheme, list(SCHEMES))
    if close:
        return f"unknown scheme {_q(scheme)} (did you mean '{close}'?)"
    names = [s for s in SCHEMES if s != "nbd+tcp"]
    return f"unknown scheme {_q(scheme)} (use {', '.join(names[:-1])} or {names[-1]})"


def _bare_word_hint(text: str) -> str | None:
    """A URI the user probably meant by a string that is not one."""
    scheme = next(
        (s for s in sorted(SCHEMES, key=len, reverse=True) if text.lower().startswith(s)), ""
    )
    if scheme and text[len(scheme) :].startswith("//"):
        # A scheme without its colon (nbd//host): the colon, not nbd://nbd//host.
        candidate = scheme + ":" + text[len(scheme) :]
    elif text.startswith(("/", "./", "~/")):
        candidate = "nbd+unix:///?socket=" + _encode(text, _QUERY_SAFE)
    else:
        candidate = "nbd://" + text
    try:
        parse(candidate)
    except UriError:
        return None
    return candidate


def _parse_uri(scheme: str, rest: str) -> Endpoint:
    transport, tls = SCHEMES[scheme]
    if "#" in rest:
        raise UriError(f"fragment {_q(rest[rest.index('#') :])} is not allowed in an NBD URI")
    rest, has_query, query = rest.partition("?")
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])

    user = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        if "@" in userinfo:
            raise UriError("more than one '@' in the URI authority (write '@' as %40)")
        if ":" in userinfo:
            raise UriError("passwords in URIs are not supported")
        user = _decode(userinfo, "user name")
        if not user:
            raise UriError("empty user name before '@'")

    host: str | None
    host, port_text = _split_host_port(authority)
    port_limit = MAX_VSOCK if transport == "vsock" else MAX_PORT
    port = _parse_port(port_text, port_limit) if port_text is not None else None
    if transport == "unix":
        if host:
            raise UriError(
                f"{scheme} URI may not have a host ({_q(host)}): give the socket as ?socket=PATH"
            )
        if port_text is not None:
            raise UriError(f"{scheme} URI may not have a port")
        host = None
    elif not host:
        what = "a CID as host" if transport == "vsock" else "a host"
        raise UriError(f"{scheme} URI needs {what}")

    export = _decode(path[1:], "export name")

    socket: str | None = None
    tls_params: list[tuple[str, str]] = []
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in query.split("&") if has_query else []:
        if not item:
            continue
        raw_key, has_value, raw_value = item.partition("=")
        key = _decode(raw_key, "query parameter name")
        if key in seen:
            raise UriError(f"duplicate query parameter {_q(key)}")
        seen.add(key)
        local_path = key == "socket" and transport == "unix"
        value = _decode(raw_value, f"query parameter {_q(key)}", raw_bytes=local_path)
        if key == "socket":
            if transport not in ("unix", "ssh"):
                raise UriError(
                    f"query parameter 'socket' is not allowed with {scheme}:// "
                    "(use nbd+unix:///?socket=PATH or nbd+ssh://HOST/?socket=PATH)"
                )
            if not value:
                raise UriError("query parameter 'socket' needs a value (a socket path)")
            socket = value
        elif key in TLS_PARAMS:
            if not has_value or not value:
                raise UriError(f"query parameter {_q(key)} needs a value")
            tls_params.append((key, value))
        elif key.startswith("x-"):
            extra.append((key, value))
        else:
            close = _suggest(key, ["socket", *TLS_PARAMS])
            hint = f"did you mean '{close}'?" if close else "prefix experimental ones with 'x-'"
            raise UriError(f"unknown query parameter {_q(key)} ({hint})")

    if transport == "unix" and socket is None:
        raise UriError(f"{scheme} URI needs ?socket=PATH")
    return Endpoint(
        transport=transport,
        tls=tls,
        host=host,
        port=port,
        socket=socket,
        export=export,
        user=user,
        tls_params=tuple(tls_params),
        extra=tuple(extra),
    )


def _split_host_port(authority: str) -> tuple[str, str | None]:
    """``host[:port]`` or ``[v6]:port`` -> (host, port text or None); host unbracketed."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise UriError(f"missing ']' after IPv6 address {_q(authority)}")
        literal, after = authority[1:end], authority[end + 1 :]
        if after and not after.startswith(":"):
            raise UriError(f"unexpected {_q(after)} after IPv6 address [{literal}]")
        port = after[1:] if after else None
        if "%" in literal:
            address, _, zone = literal.partition("%")
            if not zone.startswith("25"):
                raise UriError(f"zone id in {_q(authority)} must be written %25ZONE (RFC 6874)")
            literal = address + "%" + _decode(zone[2:], "IPv6 zone id")
        if ":" not in literal:
            raise UriError(f"invalid IPv6 address {_q(literal)}")
        _check_host(literal)
        return literal, port
    if _is_bare_ipv6(authority):
        raise UriError(f"unbracketed IPv6 address {_q(authority)}: write [{authority}]")
    host, colon, port = authority.partition(":")
    if host:
        _check_host(host)
    return host, (port if colon else None)


def _is_bare_ipv6(text: str) -> bool:
    """``::1`` or ``::1:10809``: an IPv6 address someone forgot to bracket."""
    if text.count(":") < 2:
        return False
    for candidate in (text, text.rpartition(":")[0]):
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return True
    return False


def _parse_legacy(rest: str) -> Endpoint:
    """QEMU's ``nbd:HOST:PORT[:exportname=NAME]`` and ``nbd:unix:PATH[...]``."""
    spec, _, export = rest.partition(":exportname=")
    if spec.startswith("unix:"):
        path = spec[5:]
        if not path:
            raise UriError("nbd:unix: needs a socket path (nbd:unix:PATH)")
        return Endpoint(transport="unix", socket=path, export=export)
    if _is_bare_ipv6(spec):
        raise UriError(f"unbracketed IPv6 address in {_q('nbd:' + spec)}: write nbd:[ADDRESS]:PORT")
    host, port_text = _split_host_port(spec)
    if not host:
        raise UriError("nbd URI needs a host")
    if not port_text:
        raise UriError(
            f"legacy string {_q('nbd:' + spec)} needs a port: nbd:{_bracket(host)}:PORT "
            f"(or use nbd://{_bracket(host)})"
        )
    return Endpoint(transport="tcp", host=host, port=_parse_port(port_text), export=export)


# ---------------------------------------------------------------- --ssh


class SshTarget(Record):
    """The value of ``--ssh [user@]host[:port]``."""

    _fields = ("host", "user", "port")
    __slots__ = _fields
    host: str
    user: str | None
    port: int | None

    def __init__(self, host: str, user: str | None = None, port: int | None = None) -> None:
        s = self._set
        s[0](self, host)
        s[1](self, user)
        s[2](self, port)
        if not isinstance(self.host, str):
            raise UriError("ssh target needs a host: expected [USER@]HOST[:PORT]")
        _check_host(self.host)
        if self.user is not None:
            _check_user(self.user)
        if self.port is not None:
            _check_port(self.port)


def parse_ssh_target(text: str) -> SshTarget:
    """Parse ``[user@]host[:port]``; IPv6 as ``[addr]:port`` or a bare address."""
    text = text.strip()
    if not text:
        raise UriError("empty ssh target: expected [USER@]HOST[:PORT]")
    if _has_control(text):
        raise UriError(f"control character in ssh target {_q(text)}")
    user = None
    if "@" in text:
        user, _, text = text.rpartition("@")
        if ":" in user:
            raise UriError("passwords in ssh targets are not supported")
        _check_user(user)
    if text.startswith("["):
        host, port_text = _split_host_port(text)
    elif text.count(":") > 1:
        host, port_text = text, None  # a bare IPv6 address, no port
    else:
        host, colon, port_text = text.partition(":")
        if not colon:
            port_text = None
    if not host:
        raise UriError("ssh target needs a host: expected [USER@]HOST[:PORT]")
    port = _parse_port(port_text) if port_text else None
    if port_text == "":
        raise UriError("empty ssh port after ':'")
    return SshTarget(host=host, user=user, port=port)


# ---------------------------------------------------------------- secrets

# A query parameter is secret when its name (percent-decoded, any case) contains one of
# these words: ``tls-psk-file``, ``x-api-token``, ``x-ssh-identity``, ``x-password``...
SECRET_WORDS = ("psk", "key", "password", "passwd", "passphrase", "secret", "token", "identity")


def is_secret_param(name: str) -> bool:
    """True for a query parameter that names or points to a secret (see ``SECRET_WORDS``)."""
    name = unquote(name).lower()
    return any(word in name for word in SECRET_WORDS)


# Removed whatever their value: paths to key material, and parameters whose meaning
# nbdtui cannot know (``x-*`` belong to whoever invented them, and may carry anything).
_NEVER_STORED = ("tls-psk-file", "tls-certificates")


def is_stored_param(name: str) -> bool:
    """True for a query parameter that :func:`without_secrets` keeps."""
    name = unquote(name).lower()
    return not (name in _NEVER_STORED or name.startswith("x-") or is_secret_param(name))


def without_secrets(text: str) -> str:
    """``text`` with every secret removed, for storing or showing an endpoint safely.

    The one rule for everything nbdtui stores: the connect screen's history and the undo
    journal's endpoints. Removed:

    - a password in the user part (``nbds://alice:secret@host`` -> ``nbds://alice@host``);
    - ``tls-psk-file`` (the path of a file of keys) and ``tls-certificates`` (the
      directory of the client's own certificate and private key): paths that lead to key
      material are not kept; an endpoint that needed them must be given them again;
    - every ``x-*`` parameter: nbdtui cannot tell what an experimental parameter holds;
    - any other parameter whose name contains ``psk``, ``key``, ``password``, ``passwd``,
      ``passphrase``, ``secret``, ``token`` or ``identity`` (:func:`is_secret_param`);
    - the fragment.

    Kept: transport, host, port, export name, user name, ``socket``, ``tls-verify-peer``,
    ``tls-hostname`` and ``tls-type``.

    Works on any string (the text is not parsed: a URI that ``parse`` refuses, or a
    legacy ``nbd:`` string, loses its secrets the same way); blanks around it go.
    """
    text = text.strip().partition("#")[0]
    head, _, query = text.partition("?")
    scheme, sep, rest = head.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            userinfo, _, hostport = authority.rpartition("@")
            user = userinfo.split(":", 1)[0]
            authority = f"{user}@{hostport}" if user else hostport
        head = f"{scheme}://{authority}{slash}{path}"
    items = [item for item in query.split("&") if item]
    query = "&".join(item for item in items if is_stored_param(item.partition("=")[0]))
    return f"{head}?{query}" if query else head
