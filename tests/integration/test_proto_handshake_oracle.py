"""The client handshake machine against real servers over real sockets: nbdkit in its
many handshake modes (fixed and non-fixed newstyle, oldstyle, TLS refused, required and
real), compared with libnbd's nbdinfo where it is installed.

The machine is driven with blocking socket calls (no asyncio, no nbdtui client), so that
these tests check ``nbdtui.proto.client_handshake`` alone; tests/unit/
test_proto_handshake.py checks it against scripted bytes.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import subprocess
from collections.abc import Callable

import pytest

from nbdtui.errors import ExportNotFoundError, HandshakeError, TLSRequiredError
from nbdtui.proto.client_events import Negotiated, StartTLS
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.constants import TransmissionFlag
from tests.support.requirements import require


@pytest.fixture
def nbdkit_unix(servers) -> Callable[..., str]:
    """Start nbdkit on a Unix socket with the shared fixture; returns the socket path.

    Arguments starting with ``-`` are nbdkit options, the first other one the plugin.
    """

    def start(*args: str) -> str:
        options = [a for a in args if a.startswith("-")]
        plugin, *plugin_args = (a for a in args if not a.startswith("-"))
        return servers.nbdkit(plugin, *plugin_args, unix=True, extra_options=options).socket

    return start


def handshake_over_socket(path: str, hs: ClientHandshake) -> tuple[list[object], socket.socket]:
    """Drive ``hs`` with blocking socket calls; returns the events and the open socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    events: list[object] = []
    try:
        while not hs.done:
            out = hs.data_to_send()
            if out:
                sock.sendall(out)
            data = sock.recv(65536)
            if not data:
                raise hs.eof_error()
            events += hs.receive_data(data)
        sock.sendall(hs.data_to_send())
    except BaseException:
        sock.close()
        raise
    return events, sock


def read_first_sector(sock: socket.socket, trailing: bytes) -> bytes:
    """A simple NBD_CMD_READ (structured replies off) proves transmission really began."""
    assert trailing == b""
    sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 0xC0FFEE, 0, 512))
    data = b""
    while len(data) < 16 + 512:
        data += sock.recv(65536)
    magic, error, cookie = struct.unpack(">IIQ", data[:16])
    assert (magic, error, cookie) == (0x67446698, 0, 0xC0FFEE)
    return data[16:]


def test_nbdkit_go_and_transmission(nbdkit_unix):
    path = nbdkit_unix(
        "--filter=exportname", "pattern", "1M", "exportname=a", "exportdesc=fixed:hello"
    )
    hs = ClientHandshake(export_name="a", list_contexts=True, structured_replies=False)
    (event,), sock = handshake_over_socket(path, hs)
    with sock:
        assert event.protocol == "newstyle-fixed"
        assert event.info.size == 1 << 20
        assert event.info.description == "hello"
        assert event.info.flags & TransmissionFlag.HAS_FLAGS
        # the pattern plugin stores each 8-byte offset big-endian at that offset
        assert read_first_sector(sock, hs.trailing_data)[8:16] == struct.pack(">Q", 8)


def test_nbdkit_structured_and_contexts_match_nbdinfo(nbdkit_unix):
    path = nbdkit_unix("memory", "1M")
    hs = ClientHandshake(list_contexts=True)
    (event,), sock = handshake_over_socket(path, hs)
    sock.close()
    assert event.structured is True
    assert event.context_id("base:allocation") is not None
    out = subprocess.run(
        [require("nbdinfo"), "--json", f"nbd+unix:///?socket={path}"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    oracle = json.loads(out)
    export = oracle["exports"][0]
    assert oracle["protocol"] == event.protocol
    assert export["export-size"] == event.info.size
    assert tuple(export["contexts"]) == event.available_contexts
    for key in (
        "read_only",
        "can_flush",
        "can_fua",
        "can_trim",
        "can_zero",
        "can_multi_conn",
        "can_cache",
        "can_df",
    ):
        oracle_key = "is_read_only" if key == "read_only" else key
        assert export[oracle_key] == getattr(event.info, key), key


def test_nbdkit_list_with_details_and_unknown_export(nbdkit_unix):
    path = nbdkit_unix(
        "--filter=exportname",
        "memory",
        "64K",
        "exportname=a",
        "exportname=b",
        "exportname-list=explicit",
        "exportname-strict=true",
        "exportdesc=fixed:d",
    )
    (listed,), sock = handshake_over_socket(
        path, ClientHandshake(list_exports=True, list_details=True)
    )
    sock.close()
    assert [e.name for e in listed.exports] == ["a", "b"]
    assert all(e.info is not None and e.info.size == 64 * 1024 for e in listed.exports)
    assert all(e.contexts == ("base:allocation",) for e in listed.exports)
    with pytest.raises(ExportNotFoundError, match="export 'zz' not found"):
        handshake_over_socket(path, ClientHandshake(export_name="zz"))


def test_nbdkit_oldstyle_and_non_fixed_newstyle(nbdkit_unix):
    (event,), sock = handshake_over_socket(nbdkit_unix("-o", "memory", "8K"), ClientHandshake())
    sock.close()
    assert (event.protocol, event.info.size, event.structured) == ("oldstyle", 8192, False)
    path = nbdkit_unix("--mask-handshake=0", "memory", "16K")
    (event,), sock = handshake_over_socket(path, ClientHandshake(export_name="q"))
    sock.close()
    assert (event.protocol, event.info.size, event.info.name) == ("newstyle", 16384, "q")


def test_nbdkit_tls_required_and_refused(nbdkit_unix, tmp_path):
    psk = tmp_path / "keys.psk"
    psk.write_text("alice:" + "0" * 64 + "\n")
    path = nbdkit_unix("--tls=require", f"--tls-psk={psk}", "memory", "1M")
    with pytest.raises(TLSRequiredError, match="use nbds://"):
        handshake_over_socket(path, ClientHandshake())
    path = nbdkit_unix("--tls=off", "memory", "1M")
    with pytest.raises(HandshakeError, match="server does not support TLS"):
        handshake_over_socket(path, ClientHandshake(tls=True))


def make_certificates(directory) -> None:
    """A throw-away CA and a server certificate for localhost, as nbdkit expects them."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req",
        "-x509",
        *key,
        "-days",
        "1",
        "-subj",
        "/CN=nbdtui test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca-cert.pem",
    )
    openssl(
        "req", *key, "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=localhost"
    )
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server-cert.pem",
    )  # fmt: skip


def test_nbdkit_real_tls_upgrade(nbdkit_unix, tmp_path):
    require("openssl")
    certs = tmp_path / "pki"
    certs.mkdir()
    make_certificates(certs)
    path = nbdkit_unix("--tls=require", f"--tls-certificates={certs}", "pattern", "1M")
    hs = ClientHandshake(tls=True, structured_replies=False)
    plain = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    plain.settimeout(10)
    plain.connect(path)
    events: list[object] = []
    while not events:
        plain.sendall(hs.data_to_send())
        events = hs.receive_data(plain.recv(4096))
    assert events == [StartTLS()]
    assert hs.data_to_send() == b""
    context = ssl.create_default_context(cafile=str(certs / "ca-cert.pem"))
    with context.wrap_socket(plain, server_hostname="localhost") as sock:
        hs.tls_established()
        while not hs.done:
            sock.sendall(hs.data_to_send())
            events += hs.receive_data(sock.recv(65536))
        negotiated = events[-1]
        assert isinstance(negotiated, Negotiated)
        assert (negotiated.tls, negotiated.info.size) == (True, 1 << 20)
        assert read_first_sector(sock, hs.trailing_data)[8:16] == struct.pack(">Q", 8)
