"""NBD URI parsing and printing (nbdtui.uri)."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nbdtui.errors import UriError
from nbdtui.uri import (
    BOOLEANS,
    TLS_TYPES,
    Endpoint,
    SshTarget,
    is_secret_param,
    parse,
    parse_ssh_target,
    without_secrets,
)

# ---------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("text", "export"),
    [
        ("nbd://example.com", ""),
        ("nbd://example.com/", ""),
        ("nbd://example.com/disk", "disk"),
        ("nbd://example.com//disk", "/disk"),
        ("nbd://example.com///disk", "//disk"),
        ("nbd://example.com/hello%20world", "hello world"),
        ("nbd://example.com/a/b/c", "a/b/c"),
        ("nbd://example.com/%2Fdisk", "/disk"),
        ("nbd://example.com/caf%C3%A9", "café"),
        ("nbd://example.com/café", "café"),
        ("nbd://example.com/100%25", "100%"),
        ("nbd://example.com/a%3Fb%23c", "a?b#c"),
        ("nbd://example.com/hello world", "hello world"),
        ("nbd+unix:///disk?socket=sock", "disk"),
        ("nbd+unix:///?socket=sock", ""),
        ("nbd+unix://?socket=sock", ""),
    ],
)
def test_export_name_from_path(text: str, export: str) -> None:
    assert parse(text).export == export


def test_tcp_defaults() -> None:
    e = parse("nbd://localhost")
    assert e == Endpoint(transport="tcp", host="localhost")
    assert e.port is None
    assert e.tcp_port == 10809
    assert e.tls is False
    assert e.uri == "nbd://localhost/"
    assert e.display == "localhost:10809"


def test_tcp_full() -> None:
    e = parse("nbds://alice@10.0.0.1:1234/disk?tls-type=psk&tls-psk-file=/etc/keys.psk")
    assert e == Endpoint(
        transport="tcp",
        tls=True,
        host="10.0.0.1",
        port=1234,
        export="disk",
        user="alice",
        tls_params=(("tls-psk-file", "/etc/keys.psk"), ("tls-type", "psk")),
    )
    assert e.tcp_port == 1234
    assert e.tls_param("tls-type") == "psk"
    assert e.tls_param("tls-hostname") is None
    assert e.uri == "nbds://alice@10.0.0.1:1234/disk?tls-psk-file=/etc/keys.psk&tls-type=psk"
    assert e.display == "10.0.0.1:1234"


@pytest.mark.parametrize("scheme", ["nbd", "NBD", "Nbd", "nbd+tcp", "NBD+TCP"])
def test_plain_tcp_schemes(scheme: str) -> None:
    e = parse(f"{scheme}://h:1/x")
    assert e == Endpoint(transport="tcp", host="h", port=1, export="x")
    assert e.uri == "nbd://h:1/x"


def test_nbds_scheme_case_insensitive() -> None:
    assert parse("NBDS://h/") == Endpoint(transport="tcp", tls=True, host="h")


def test_ipv6() -> None:
    e = parse("nbd://[::1]:10809/x")
    assert e.host == "::1"
    assert e.port == 10809
    assert e.export == "x"
    assert e.uri == "nbd://[::1]:10809/x"
    assert e.display == "[::1]:10809"
    assert parse("nbd://[2001:db8::7]/").display == "[2001:db8::7]:10809"


def test_ipv6_zone_id() -> None:
    e = parse("nbd://[fe80::1%25eth0]:1/")
    assert e.host == "fe80::1%eth0"
    assert e.uri == "nbd://[fe80::1%25eth0]:1/"
    assert e.display == "[fe80::1%eth0]:1"


def test_empty_port_means_default() -> None:
    e = parse("nbd://h:/x")
    assert e.port is None
    assert e.uri == "nbd://h/x"


def test_port_leading_zeros() -> None:
    assert parse("nbd://h:010809/").port == 10809


def test_unix() -> None:
    e = parse("nbd+unix:///disk?socket=/run/nbd.sock")
    assert e == Endpoint(transport="unix", socket="/run/nbd.sock", export="disk")
    assert e.uri == "nbd+unix:///disk?socket=/run/nbd.sock"
    assert e.display == "/run/nbd.sock"
    assert e.tcp_port == 10809


def test_unix_tls_with_user() -> None:
    e = parse("nbds+unix://alice@/?socket=s&tls-type=psk")
    assert e.tls and e.user == "alice" and e.host is None and e.socket == "s"
    assert e.uri == "nbds+unix://alice@/?socket=s&tls-type=psk"


def test_unix_abstract_socket() -> None:
    e = parse("nbd+unix:///?socket=%00/abstract")
    assert e.socket == "\0/abstract"
    assert e.uri == "nbd+unix:///?socket=%00/abstract"
    assert e.display == "@/abstract"


def test_unix_socket_percent_encoded() -> None:
    e = parse("nbd+unix:///?socket=/tmp/a%20b%26c%3Dd")
    assert e.socket == "/tmp/a b&c=d"
    assert e.uri == "nbd+unix:///?socket=/tmp/a%20b%26c%3Dd"


def test_ssh() -> None:
    e = parse("nbd+ssh://bob@server:2222/exp?socket=/run/nbd.sock")
    assert e == Endpoint(
        transport="ssh",
        host="server",
        port=2222,
        user="bob",
        socket="/run/nbd.sock",
        export="exp",
    )
    assert e.uri == "nbd+ssh://bob@server:2222/exp?socket=/run/nbd.sock"
    assert e.display == "bob@server:/run/nbd.sock (ssh, port 2222)"


def test_ssh_minimal() -> None:
    e = parse("nbds+ssh://server")
    assert e == Endpoint(transport="ssh", tls=True, host="server")
    assert e.uri == "nbds+ssh://server/"
    assert e.display == "server (ssh)"


def test_ssh_display_with_socket() -> None:
    assert parse("nbd+ssh://user@host/?socket=/remote.sock").display == (
        "user@host:/remote.sock (ssh)"
    )


def test_vsock() -> None:
    e = parse("nbd+vsock://2:10809/x")
    assert e == Endpoint(transport="vsock", host="2", port=10809, export="x")
    assert e.uri == "nbd+vsock://2:10809/x"
    assert e.display == "vsock:2:10809"
    assert parse("nbds+vsock://3/").tls is True
    assert parse("nbd+vsock://1:4294967295/").port == 4294967295


def test_tls_params_on_plain_scheme_are_kept() -> None:
    e = parse("nbd://h/?tls-hostname=server.example&tls-verify-peer=0")
    assert e.tls is False
    assert e.tls_param("tls-hostname") == "server.example"
    assert e.tls_param("tls-verify-peer") == "0"


@pytest.mark.parametrize("value", ["0", "1", "true", "False", "yes", "NO", "on", "off"])
def test_tls_verify_peer_booleans(value: str) -> None:
    assert parse(f"nbds://h/?tls-verify-peer={value}").tls_param("tls-verify-peer") == value


def test_all_tls_params() -> None:
    e = parse(
        "nbds://h/?tls-type=x509&tls-hostname=n&tls-verify-peer=1"
        "&tls-certificates=/etc/pki&tls-psk-file=/k"
    )
    assert [k for k, _ in e.tls_params] == [
        "tls-certificates",
        "tls-hostname",
        "tls-psk-file",
        "tls-type",
        "tls-verify-peer",
    ]


def test_x_params_kept_verbatim_and_sorted() -> None:
    e = parse("nbd://h/?x-zeta=1&x-alpha=a%20b&x-empty=&x-flag")
    assert e.extra == (("x-alpha", "a b"), ("x-empty", ""), ("x-flag", ""), ("x-zeta", "1"))
    assert e.uri == "nbd://h/?x-alpha=a%20b&x-empty=&x-flag=&x-zeta=1"


def test_plus_in_query_is_literal() -> None:
    e = parse("nbd+unix:///?socket=/tmp/a+b")
    assert e.socket == "/tmp/a+b"
    assert e.uri == "nbd+unix:///?socket=/tmp/a%2Bb"
    assert parse(e.uri) == e


def test_empty_query_segments_ignored() -> None:
    assert parse("nbd+unix:///?&socket=s&&").socket == "s"
    assert parse("nbd://h/?").uri == "nbd://h/"


def test_user_percent_decoded() -> None:
    e = parse("nbds://alice%40example.com@h/")
    assert e.user == "alice@example.com"
    assert e.uri == "nbds://alice%40example.com@h/"


def test_surrounding_blanks_ignored() -> None:
    assert parse("  nbd://h/x\t") == Endpoint(transport="tcp", host="h", export="x")


def test_leading_slash_is_encoded_when_printing() -> None:
    e = Endpoint(transport="tcp", host="h", export="/disk")
    assert e.uri == "nbd://h/%2Fdisk"
    assert parse(e.uri).export == "/disk"
    # The spec's spelling means the same.
    assert parse("nbd://h//disk") == e


def test_export_encoding() -> None:
    e = Endpoint(transport="tcp", host="h", export="a b/c?d#e%f+g:h@i&j=k é\n")
    assert e.uri == "nbd://h/a%20b/c%3Fd%23e%25f%2Bg:h@i&j=k%20%C3%A9%0A"
    assert parse(e.uri) == e


def test_with_export() -> None:
    e = parse("nbd://h:5/a?x-k=v")
    f = e.with_export("b c")
    assert f.export == "b c" and f.host == "h" and f.port == 5 and f.extra == (("x-k", "v"),)
    assert e.export == "a"
    assert f.uri == "nbd://h:5/b%20c?x-k=v"


def test_export_name_limit() -> None:
    assert parse("nbd://h/" + "a" * 4096).export == "a" * 4096
    # 2048 two-byte characters are 4096 bytes: still fine.
    assert len(parse("nbd://h/" + "é" * 2048).export) == 2048
    with pytest.raises(UriError, match=r"^export name is 4098 bytes long, the limit is 4096$"):
        parse("nbd://h/" + "é" * 2049)


def test_endpoint_normalises_param_order() -> None:
    e = Endpoint(
        transport="tcp",
        host="h",
        tls_params=[("tls-type", "psk"), ("tls-hostname", "n")],  # type: ignore[arg-type]
        extra=(("x-b", "2"), ("x-a", "1")),
    )
    assert e.tls_params == (("tls-hostname", "n"), ("tls-type", "psk"))
    assert e.extra == (("x-a", "1"), ("x-b", "2"))
    assert parse(e.uri) == e


def test_endpoint_is_frozen_and_hashable() -> None:
    e = parse("nbd://h/x")
    assert hash(e) == hash(parse("nbd://h/x"))
    with pytest.raises(AttributeError):
        e.export = "y"  # type: ignore[misc]


# ---------------------------------------------------------------- legacy QEMU strings


@pytest.mark.parametrize(
    ("legacy", "uri"),
    [
        ("nbd:localhost:10809", "nbd://localhost:10809/"),
        ("nbd:localhost:10809:exportname=disk", "nbd://localhost:10809/disk"),
        ("nbd:192.168.0.1:5000:exportname=", "nbd://192.168.0.1:5000/"),
        ("nbd:[::1]:10809", "nbd://[::1]:10809/"),
        ("nbd:[::1]:10809:exportname=x", "nbd://[::1]:10809/x"),
        ("nbd:unix:/tmp/nbd.sock", "nbd+unix:///?socket=/tmp/nbd.sock"),
        ("nbd:unix:/tmp/nbd.sock:exportname=disk", "nbd+unix:///disk?socket=/tmp/nbd.sock"),
        ("NBD:localhost:1", "nbd://localhost:1/"),
    ],
)
def test_legacy_forms(legacy: str, uri: str) -> None:
    e = parse(legacy)
    assert e == parse(uri)
    assert e.uri == uri


def test_legacy_export_name_is_verbatim() -> None:
    # QEMU does not percent-decode, and keeps a leading '/' and any ':' in the name.
    assert parse("nbd:h:1:exportname=a%20b").export == "a%20b"
    assert parse("nbd:h:1:exportname=/x:y").export == "/x:y"
    assert parse("nbd:h:1:exportname=a b").uri == "nbd://h:1/a%20b"
    assert parse("nbd:unix:/a:b:exportname=c").socket == "/a:b"


# ---------------------------------------------------------------- errors


ERRORS = [
    ("", "empty URI: expected nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"),
    ("nbdx://h/", "unknown scheme 'nbdx' (did you mean 'nbd'?)"),
    ("nbdx:foo", "unknown scheme 'nbdx' (did you mean 'nbd'?)"),
    (
        "http://example.com/",
        "unknown scheme 'http' (use nbd, nbds, nbd+unix, nbds+unix, nbd+ssh, nbds+ssh, "
        "nbd+vsock or nbds+vsock)",
    ),
    ("nbds:h", "expected '//' after 'nbds:' in 'nbds:h'"),
    ("nbd+unix:///x", "nbd+unix URI needs ?socket=PATH"),
    ("nbds+unix:///x?tls-type=psk", "nbds+unix URI needs ?socket=PATH"),
    (
        "nbd+unix://h/?socket=s",
        "nbd+unix URI may not have a host ('h'): give the socket as ?socket=PATH",
    ),
    ("nbd+unix://:5/?socket=s", "nbd+unix URI may not have a port"),
    ("nbd+unix:///?socket=", "query parameter 'socket' needs a value (a socket path)"),
    ("nbd://h:99999/", "port 99999 out of range"),
    ("nbd://h:0/", "port 0 out of range"),
    ("nbd://h:65536/", "port 65536 out of range"),
    ("nbd://h:" + "9" * 5000, "port '9999999999999999999…' out of range"),
    ("nbd://h:abc/", "port 'abc' is not a number"),
    ("nbd://h:-1/", "port '-1' is not a number"),
    ("nbd://h:10809:x/", "port '10809:x' is not a number"),
    ("nbd:///x", "nbd URI needs a host"),
    ("nbd://", "nbd URI needs a host"),
    ("nbds://:10809/", "nbds URI needs a host"),
    ("nbd+ssh:///?socket=/s", "nbd+ssh URI needs a host"),
    ("nbd+vsock:///", "nbd+vsock URI needs a CID as host"),
    ("nbd+vsock://abc/", "vsock CID 'abc' is not a number"),
    ("nbd+vsock://4294967296/", "vsock CID 4294967296 out of range"),
    ("nbd+ssh://-oProxyCommand=x/", "host '-oProxyCommand=x' may not begin with '-'"),
    ("nbd://-oProxyCommand=x/", "host '-oProxyCommand=x' may not begin with '-'"),
    ("nbd+ssh://-oProxyCommand=x@h/", "user name '-oProxyCommand=x' may not begin with '-'"),
    ("nbd://h/x#frag", "fragment '#frag' is not allowed in an NBD URI"),
    ("nbd://h/x?tls-type=psk#", "fragment '#' is not allowed in an NBD URI"),
    ("nbd://h/%zz", "malformed percent-escape '%zz' in export name"),
    ("nbd://h/%4", "malformed percent-escape '%4' in export name"),
    ("nbd://h/100%", "malformed percent-escape '%' in export name"),
    ("nbd+unix:///?socket=%g0", "malformed percent-escape '%g0' in query parameter 'socket'"),
    ("nbd://h/%C3", "export name is not valid UTF-8 after percent-decoding"),
    ("nbd://h/%00", "export name contains a NUL byte"),
    ("nbd://h/" + "a" * 4097, "export name is 4097 bytes long, the limit is 4096"),
    ("localhost", "not an NBD URI: 'localhost' (did you mean nbd://localhost?)"),
    (
        "localhost:10809",
        "not an NBD URI: 'localhost:10809' (did you mean nbd://localhost:10809?)",
    ),
    ("[::1]:10809", "not an NBD URI: '[::1]:10809' (did you mean nbd://[::1]:10809?)"),
    ("nbd//bad", "not an NBD URI: 'nbd//bad' (did you mean nbd://bad?)"),
    ("NBDS//h/x", "not an NBD URI: 'NBDS//h/x' (did you mean nbds://h/x?)"),
    (
        "nbd//",
        "not an NBD URI: 'nbd//' "
        "(expected nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)",
    ),
    (
        "/run/nbd.sock",
        "not an NBD URI: '/run/nbd.sock' (did you mean nbd+unix:///?socket=/run/nbd.sock?)",
    ),
    (
        "foo bar",
        "not an NBD URI: 'foo bar' "
        "(expected nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)",
    ),
    ("nbd://user:secret@h/", "passwords in URIs are not supported"),
    ("nbd://user:@h/", "passwords in URIs are not supported"),
    ("nbd://@h/", "empty user name before '@'"),
    ("nbd://a@b@h/", "more than one '@' in the URI authority (write '@' as %40)"),
    ("nbd://h/?sokcet=/x", "unknown query parameter 'sokcet' (did you mean 'socket'?)"),
    ("nbd://h/?tls-typ=psk", "unknown query parameter 'tls-typ' (did you mean 'tls-type'?)"),
    (
        "nbd://h/?frobnicate=1",
        "unknown query parameter 'frobnicate' (prefix experimental ones with 'x-')",
    ),
    ("nbd+unix:///?socket=a&socket=b", "duplicate query parameter 'socket'"),
    ("nbds://h/?tls-type=psk&tls-type=x509", "duplicate query parameter 'tls-type'"),
    ("nbd://h/?x-a=1&x-a=2", "duplicate query parameter 'x-a'"),
    (
        "nbd://h/?socket=/x",
        "query parameter 'socket' is not allowed with nbd:// "
        "(use nbd+unix:///?socket=PATH or nbd+ssh://HOST/?socket=PATH)",
    ),
    ("nbds://h/?tls-type=x590", "tls-type 'x590' is not one of anon, x509, psk"),
    ("nbds://h/?tls-verify-peer=maybe", "tls-verify-peer 'maybe' is not a boolean (0 or 1)"),
    ("nbds://h/?tls-hostname", "query parameter 'tls-hostname' needs a value"),
    ("nbds://h/?tls-psk-file=", "query parameter 'tls-psk-file' needs a value"),
    ("nbd://::1/", "unbracketed IPv6 address '::1': write [::1]"),
    ("nbd://::1:10809/", "unbracketed IPv6 address '::1:10809': write [::1:10809]"),
    ("nbd://[::1/", "missing ']' after IPv6 address '[::1'"),
    ("nbd://[::1]x/", "unexpected 'x' after IPv6 address [::1]"),
    ("nbd://[1.2.3.4]/", "invalid IPv6 address '1.2.3.4'"),
    ("nbd://[::g]/", "invalid IPv6 address '::g'"),
    ("nbd://[fe80::1%eth0]/", "zone id in '[fe80::1%eth0]' must be written %25ZONE (RFC 6874)"),
    ("nbd://[fe80::1%25eth/0]/", "missing ']' after IPv6 address '[fe80::1%25eth'"),
    ("nbd://[fe80::1%25]/", "invalid IPv6 zone id '' in 'fe80::1%'"),
    ("nbd://a b/", "invalid character ' ' in host 'a b'"),
    ("nbd://h%41/", "invalid character '%' in host 'h%41'"),
    ("nbd://h\n/", "control character in URI 'nbd://h\\n/'"),
    (
        "nbd:localhost",
        "legacy string 'nbd:localhost' needs a port: nbd:localhost:PORT (or use nbd://localhost)",
    ),
    (
        "nbd:localhost:",
        "legacy string 'nbd:localhost:' needs a port: nbd:localhost:PORT (or use nbd://localhost)",
    ),
    ("nbd:[::1]", "legacy string 'nbd:[::1]' needs a port: nbd:[::1]:PORT (or use nbd://[::1])"),
    ("nbd::10809", "nbd URI needs a host"),
    ("nbd:::1:10809", "unbracketed IPv6 address in 'nbd:::1:10809': write nbd:[ADDRESS]:PORT"),
    ("nbd:h:99999", "port 99999 out of range"),
    ("nbd:h:1:exportname=a\0b", "control character in URI 'nbd:h:1:exportname=a\\x00b'"),
    ("nbd:unix:", "nbd:unix: needs a socket path (nbd:unix:PATH)"),
    ("nbd:unix::exportname=x", "nbd:unix: needs a socket path (nbd:unix:PATH)"),
    ("nbd:-oProxyCommand=x:22", "host '-oProxyCommand=x' may not begin with '-'"),
    ("nbd://h/" + "a" * 70000, "too long for an NBD URI (70008 characters)"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(UriError) as info:
        parse(text)
    assert str(info.value) == message


@pytest.mark.parametrize("text", [t for t, _ in ERRORS])
def test_error_message_style(text: str) -> None:
    with pytest.raises(UriError) as info:
        parse(text)
    message = str(info.value)
    assert message
    assert "\n" not in message
    assert not message[0].isupper(), message
    assert not message.endswith("."), message
    assert len(message) < 200


def test_uri_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse("nbdx://h")


def test_suggestions_parse() -> None:
    # Every "did you mean" URI is itself valid.
    for text in ["localhost", "host.example:5", "[::1]:10809", "/run/x.sock", "./x.sock"]:
        with pytest.raises(UriError, match=r"did you mean (\S+)\?\)$") as info:
            parse(text)
        suggestion = str(info.value).rsplit("did you mean ", 1)[1][: -len("?)")]
        parse(suggestion)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transport": "tcp"}, "nbd URI needs a host"),
        (
            {"transport": "udp", "host": "h"},
            "unknown transport 'udp' (expected tcp, unix, ssh or vsock)",
        ),
        ({"transport": "unix"}, "nbd+unix URI needs ?socket=PATH"),
        ({"transport": "tcp", "host": "h", "tls": 1}, "tls must be True or False, not 1"),
        ({"transport": "unix", "socket": ""}, "socket path is empty"),
        ({"transport": "unix", "socket": "\0"}, "abstract socket name is empty"),
        ({"transport": "unix", "socket": "/a\0b"}, "socket path '/a\\x00b' contains a NUL byte"),
        (
            {"transport": "unix", "socket": "/s", "host": "h"},
            "nbd+unix URI may not have a host ('h'): give the socket as ?socket=PATH",
        ),
        ({"transport": "tcp", "host": "h", "port": 0}, "port 0 out of range"),
        ({"transport": "tcp", "host": "h", "port": "80"}, "port '80' is not a number"),
        ({"transport": "tcp", "host": "-x"}, "host '-x' may not begin with '-'"),
        ({"transport": "tcp", "host": "h", "user": ""}, "empty user name before '@'"),
        ({"transport": "tcp", "host": "h", "user": "-l"}, "user name '-l' may not begin with '-'"),
        ({"transport": "tcp", "host": "h", "export": "a\0"}, "export name contains a NUL byte"),
        ({"transport": "tcp", "host": "h", "export": "\udc80"}, "export name is not valid UTF-8"),
        (
            {"transport": "tcp", "host": "h", "extra": (("y-a", "1"),)},
            "extra query parameter 'y-a' does not start with 'x-'",
        ),
        (
            {"transport": "tcp", "host": "h", "tls_params": (("socket", "1"),)},
            "unknown TLS parameter 'socket'",
        ),
        (
            {"transport": "tcp", "host": "h", "tls_params": (("tls-type", "a"), ("tls-type", "b"))},
            "duplicate query parameter 'tls-type'",
        ),
        (
            {"transport": "tcp", "host": "h", "socket": "/s"},
            "query parameter 'socket' is not allowed with nbd:// "
            "(use nbd+unix:///?socket=PATH or nbd+ssh://HOST/?socket=PATH)",
        ),
        (
            {"transport": "ssh", "host": "h", "socket": "\0x"},
            "socket path '\\x00x' contains a NUL byte",
        ),
        ({"transport": "vsock", "host": "2", "port": 2**32}, "port 4294967296 out of range"),
    ],
)
def test_endpoint_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(UriError) as info:
        Endpoint(**kwargs)
    assert str(info.value) == message


# ---------------------------------------------------------------- --ssh targets


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("host", SshTarget(host="host")),
        ("user@host", SshTarget(host="host", user="user")),
        ("user@host:2222", SshTarget(host="host", user="user", port=2222)),
        ("host.example.com:22", SshTarget(host="host.example.com", port=22)),
        ("10.0.0.1", SshTarget(host="10.0.0.1")),
        ("[::1]:2222", SshTarget(host="::1", port=2222)),
        ("root@[fe80::1]", SshTarget(host="fe80::1", user="root")),
        ("::1", SshTarget(host="::1")),
        ("a@b@host", SshTarget(host="host", user="a@b")),
    ],
)
def test_parse_ssh_target(text: str, target: SshTarget) -> None:
    assert parse_ssh_target(text) == target


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty ssh target: expected [USER@]HOST[:PORT]"),
        ("-oProxyCommand=x", "host '-oProxyCommand=x' may not begin with '-'"),
        ("user@-oProxyCommand=x", "host '-oProxyCommand=x' may not begin with '-'"),
        ("-l@host", "user name '-l' may not begin with '-'"),
        ("user:pw@host", "passwords in ssh targets are not supported"),
        ("@host", "empty user name before '@'"),
        ("user@", "ssh target needs a host: expected [USER@]HOST[:PORT]"),
        (":22", "ssh target needs a host: expected [USER@]HOST[:PORT]"),
        ("host:", "empty ssh port after ':'"),
        ("host:99999", "port 99999 out of range"),
        ("host:ssh", "port 'ssh' is not a number"),
        ("[::1", "missing ']' after IPv6 address '[::1'"),
        ("ho st", "invalid character ' ' in host 'ho st'"),
        ("ho\nst", "control character in ssh target 'ho\\nst'"),
    ],
)
def test_parse_ssh_target_errors(text: str, message: str) -> None:
    with pytest.raises(UriError) as info:
        parse_ssh_target(text)
    assert str(info.value) == message


def test_ssh_target_validates_on_construction() -> None:
    with pytest.raises(UriError, match=r"^host '-x' may not begin with '-'$"):
        SshTarget(host="-x")


# ---------------------------------------------------------------- round trip property

_NO_NUL = st.characters(exclude_characters="\0", exclude_categories=("Cs",))
_PRINTABLE = st.characters(exclude_categories=("Cs", "Cc"))

_hostnames = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)
_ipv6_zone = st.tuples(_ipv6, st.from_regex(r"[A-Za-z0-9._~-]{1,8}", fullmatch=True)).map("%".join)
_hosts = st.one_of(_hostnames, _ipv4, _ipv6, _ipv6_zone)
_ports = st.none() | st.integers(1, 65535)
_users = st.none() | st.text(_PRINTABLE, min_size=1, max_size=12).filter(
    lambda u: not u.startswith("-")
)
_exports = st.one_of(
    st.text(_NO_NUL, max_size=40),
    st.sampled_from(["", "/", "//", "/disk", "//disk", "%", "%25", "a b", "?#&=+", "é/ü", "."]),
    st.text(st.sampled_from("/%?#&=+ :@aé\t~"), max_size=12),
)
_paths = st.text(_NO_NUL, min_size=1, max_size=30)
_tls_value = st.text(_PRINTABLE, min_size=1, max_size=20)
_tls_params = st.fixed_dictionaries(
    {},
    optional={
        "tls-type": st.sampled_from(TLS_TYPES),
        "tls-hostname": _tls_value,
        "tls-verify-peer": st.sampled_from([*BOOLEANS, "TRUE", "Off"]),
        "tls-certificates": _tls_value,
        "tls-psk-file": _tls_value,
    },
).map(lambda d: tuple(d.items()))
_extra = st.dictionaries(
    st.text(_NO_NUL, max_size=8).map(lambda k: "x-" + k),
    st.text(_NO_NUL, max_size=12),
    max_size=3,
).map(lambda d: tuple(d.items()))


@st.composite
def endpoints(draw: st.DrawFn) -> Endpoint:
    transport = draw(st.sampled_from(["tcp", "unix", "ssh", "vsock"]))
    common = {
        "tls": draw(st.booleans()),
        "export": draw(_exports),
        "user": draw(_users),
        "tls_params": draw(_tls_params),
        "extra": draw(_extra),
    }
    if transport == "tcp":
        return Endpoint(transport=transport, host=draw(_hosts), port=draw(_ports), **common)
    if transport == "unix":
        socket = draw(_paths)
        if draw(st.booleans()):
            socket = "\0" + socket  # abstract namespace
        return Endpoint(transport=transport, socket=socket, **common)
    if transport == "ssh":
        socket = draw(st.none() | _paths)
        return Endpoint(
            transport=transport, host=draw(_hosts), port=draw(_ports), socket=socket, **common
        )
    cid = str(draw(st.integers(0, 2**32 - 1)))
    port = draw(st.none() | st.integers(1, 2**32 - 1))
    return Endpoint(transport=transport, host=cid, port=port, **common)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(endpoints())
@example(Endpoint(transport="tcp", host="h", export="/"))
@example(Endpoint(transport="tcp", host="::ffff:1.2.3.4", export="%2F"))
@example(Endpoint(transport="unix", socket="/s ", export=" x "))
def test_round_trip(e: Endpoint) -> None:
    text = e.uri
    assert text.isascii()
    assert text == text.strip()
    assert parse(text) == e
    assert parse(text).uri == text


@settings(max_examples=150)
@given(
    host=st.one_of(_hostnames, _ipv4, _ipv6),
    port=st.integers(1, 65535),
    export=st.none() | st.text(_PRINTABLE, max_size=20).map(str.strip),
)
def test_legacy_tcp_matches_uri(host: str, port: int, export: str | None) -> None:
    shown = f"[{host}]" if ":" in host else host
    legacy = f"nbd:{shown}:{port}"
    if export is not None:
        legacy += f":exportname={export}"
    e = parse(legacy)
    assert e == Endpoint(transport="tcp", host=host, port=port, export=export or "")
    assert parse(e.uri) == e


@settings(max_examples=100)
@given(st.text(max_size=60))
def test_parse_never_raises_anything_but_uri_error(text: str) -> None:
    try:
        e = parse(text)
    except UriError:
        return
    assert parse(e.uri) == e


# ---------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # a password in the user part (the user name stays)
        ("nbd://bob:hunter2@h/e", "nbd://bob@h/e"),
        (
            "nbds+ssh://alice:pw@host:2222/disk?socket=/run/nbd.sock",
            "nbds+ssh://alice@host:2222/disk?socket=/run/nbd.sock",
        ),
        ("nbd://:pw@h/e", "nbd://h/e"),
        # the PSK file: removed (see without_secrets)
        (
            "nbds://alice@h/e?tls-psk-file=/home/alice/keys.psk&tls-type=psk",
            "nbds://alice@h/e?tls-type=psk",
        ),
        ("nbds+unix:///e?socket=/s&tls-psk-file=/k", "nbds+unix:///e?socket=/s"),
        # x- parameters whose name says secret, in any case or percent-encoded
        ("nbd://h/e?x-api-token=abc&x-note=ok", "nbd://h/e"),
        ("nbd://h/e?x-ssh-identity=/k&x-password=p", "nbd://h/e"),
        ("nbd://h/e?x-passwd=p&x-passphrase=q&x-Secret=s&x-private-key=k", "nbd://h/e"),
        ("nbd://h/e?x-%70assword=p&x-ok=1", "nbd://h/e"),
        # every x- parameter, in any case or percent-encoded: nbdtui cannot know them
        ("nbd://h/e?X-Note=ok&%78-y=1&tls-type=x509", "nbd://h/e?tls-type=x509"),
        # paths to key material
        (
            "nbds://h/e?tls-certificates=/etc/pki/nbd&tls-verify-peer=1",
            "nbds://h/e?tls-verify-peer=1",
        ),
        ("nbds://h/e?TLS-PSK-FILE=/k&tls-%63ertificates=/c", "nbds://h/e"),
        # the fragment
        ("nbd://h/e#secret", "nbd://h/e"),
        # what is not secret stays exactly as typed
        ("nbd+unix:///?socket=/run/a%2Bb.sock", "nbd+unix:///?socket=/run/a%2Bb.sock"),
        (
            "nbds://h:10810/e?tls-certificates=/etc/pki/nbd&tls-hostname=h.example"
            "&tls-verify-peer=0&tls-type=x509",
            "nbds://h:10810/e?tls-hostname=h.example&tls-verify-peer=0&tls-type=x509",
        ),
        ("nbd://h/e", "nbd://h/e"),
        # strings the parser refuses lose their secrets too
        ("nbd:h:10809:exportname=x?tls-psk-file=/k", "nbd:h:10809:exportname=x"),
        ("not a uri?tls-psk-file=/k", "not a uri"),
        ("  nbd://u:p@h/e?&&x-token=t&  ", "nbd://u@h/e"),
        ("", ""),
    ],
)
def test_without_secrets(uri: str, expected: str) -> None:
    assert without_secrets(uri) == expected
    assert without_secrets(expected) == expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("tls-psk-file", True),
        ("x-token", True),
        ("X-API-KEY", True),
        ("x-identity", True),
        ("socket", False),
        ("tls-certificates", False),
        ("tls-hostname", False),
        ("tls-type", False),
        ("tls-verify-peer", False),
        ("x-note", False),
    ],
)
def test_is_secret_param(name: str, secret: bool) -> None:
    assert is_secret_param(name) is secret


def test_canonical_uri_without_secrets_still_parses() -> None:
    e = parse("nbds://alice@h/e?tls-psk-file=/k&tls-type=psk&x-token=t&x-note=n")
    safe = without_secrets(e.uri)
    assert "/k" not in safe and "x-token" not in safe
    assert parse(safe) == Endpoint(
        transport="tcp",
        tls=True,
        host="h",
        export="e",
        user="alice",
        tls_params=(("tls-type", "psk"),),
    )


# ---------------------------------------------------------------- bytes that are not UTF-8

# A command line's bytes that are not UTF-8 reach Python as lone surrogates
# ("surrogateescape"): b"\xff" is "\udcff".


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nbd://localhost/%41\udcff", "export name is not valid UTF-8"),
        ("nbd://localhost/\udcff", "export name is not valid UTF-8"),
        ("nbd+unix:///\udcc3?socket=/s", "export name is not valid UTF-8"),
        ("nbd+ssh://h/?socket=/a\udcff", "query parameter 'socket' is not valid UTF-8"),
        ("nbd://h\udcff/", "invalid character '\\udcff' in host"),
        ("nbd://u\udcff@h/", "user name is not valid UTF-8"),
        ("nbd://h/?x-a=\udcff", "query parameter 'x-a' is not valid UTF-8"),
        ("nbd://h/?tls-hostname=\udcff", "query parameter 'tls-hostname' is not valid UTF-8"),
        ("nbd:h:1:exportname=\udcff", "export name is not valid UTF-8"),
    ],
)
def test_bytes_that_are_not_utf8_are_refused_where_the_wire_needs_utf8(
    text: str, message: str
) -> None:
    with pytest.raises(UriError, match=re.escape(message)):
        parse(text)


@pytest.mark.parametrize(
    ("text", "socket", "uri"),
    [
        ("nbd+unix:///x?socket=/tmp/a\udcff", "/tmp/a\udcff", "nbd+unix:///x?socket=/tmp/a%FF"),
        ("nbd+unix:///x?socket=/tmp/a%FF", "/tmp/a\udcff", "nbd+unix:///x?socket=/tmp/a%FF"),
        ("nbd:unix:/tmp/b\udcfe", "/tmp/b\udcfe", "nbd+unix:///?socket=/tmp/b%FE"),
        ("nbd+unix:///?socket=/%C3%A9", "/é", "nbd+unix:///?socket=/%C3%A9"),
    ],
)
def test_a_local_socket_path_is_bytes(text: str, socket: str, uri: str) -> None:
    e = parse(text)
    assert e.socket == socket
    assert os.fsencode(e.socket) == os.fsencode(socket)
    assert e.uri == uri
    assert parse(e.uri) == e


@pytest.mark.parametrize("socket", ["/a\udcc3\udca9", "/a\ud800", "/a\udc00"])
def test_a_socket_path_must_be_the_bytes_fsdecode_gives(socket: str) -> None:
    with pytest.raises(UriError, match="socket path is neither UTF-8 nor the bytes"):
        Endpoint(transport="unix", socket=socket)
    with pytest.raises(UriError, match="remote socket path is not valid UTF-8"):
        Endpoint(transport="ssh", host="h", socket="/a\udcff")


@settings(max_examples=100)
@given(st.binary(max_size=40))
def test_parse_never_raises_anything_but_uri_error_on_command_line_bytes(raw: bytes) -> None:
    text = os.fsdecode(b"nbd+unix:///" + raw + b"?socket=/s" + raw)
    try:
        e = parse(text)
    except UriError:
        return
    assert parse(e.uri) == e
