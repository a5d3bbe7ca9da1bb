"""TLS (``nbds://``, ``nbds+unix://``) against real nbdkit and qemu-nbd servers.

libnbd's ``nbdinfo`` / ``nbdcopy`` over TLS are the oracles; the certificates come from
the ``tls_certs`` fixture (CA, server cert for localhost/127.0.0.1/::1, client cert, and
the expired / wrong-CA variants).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import struct
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

import nbdtui
from nbdtui.client import Pool, list_exports, probe
from nbdtui.client.transport import tls as nbdtls
from nbdtui.client.transport.stream import StreamProtocol
from nbdtui.errors import TLSError, TLSRequiredError, UriError
from nbdtui.proto.constants import IHAVEOPT, NBDMAGIC, OPTION_REPLY_MAGIC, Option, OptionReply
from nbdtui.uri import parse
from tests.support.cli_helpers import assert_one_line_error
from tests.support.cli_helpers import nbdtui as run_nbdtui
from tests.support.oracles import SHARED_KEYS, oracle

ROOT = Path(__file__).resolve().parents[2]  # the checkout: tests/integration/ is two below
MiB = 1024 * 1024
HAVE_PSK = hasattr(ssl.SSLContext, "set_psk_client_callback")


def with_params(uri: str, **params: str | Path) -> str:
    """``uri`` plus TLS query parameters (``tls_hostname=`` -> ``tls-hostname=``)."""
    for key, value in params.items():
        sep = "&" if "?" in uri else "?"
        uri += f"{sep}{key.replace('_', '-')}={quote(str(value), safe='/')}"
    return uri


@pytest.fixture(params=["nbdkit-tcp", "nbdkit-unix", "qemu-tcp", "qemu-unix"])
def tls_server(request, nbdkit, qemu_nbd, make_image, tmp_path, tls_certs):
    """A TLS-only server (x509, certificates of ``tls_certs.dir``) of each kind."""
    kind, where = request.param.split("-")
    unix = where == "unix"
    if kind == "nbdkit":
        return nbdkit("memory", "4M", unix=unix, tls=tls_certs)
    return qemu_nbd(make_image(tmp_path, 4 * MiB), export="disk", unix=unix, tls=tls_certs)


# ---- info, reads and writes agree with libnbd ---------------------------------------


def test_info_json_over_tls_agrees_with_nbdinfo(tls_server):
    uri = tls_server.tls_uri_for()
    assert uri.startswith("nbds")
    ours = run_nbdtui("info", "--json", uri)
    assert ours.returncode == 0, ours.stderr
    doc = ours.json()
    theirs = json.loads(oracle("nbdinfo", "--json", uri))
    assert doc["TLS"] is True and theirs["TLS"] is True
    for key in ("protocol", "structured"):
        assert doc[key] == theirs[key], key
    (mine,), (ref,) = doc["exports"], theirs["exports"]
    for key in SHARED_KEYS:
        assert mine.get(key) == ref.get(key), (key, mine.get(key), ref.get(key))
    assert mine["export-size"] == 4 * MiB


async def test_reads_and_writes_over_tls_agree_with_nbdcopy(tls_server, tmp_path):
    uri = tls_server.tls_uri_for()
    ours = os.urandom(4 * MiB)
    async with nbdtui.open(uri, pool=Pool()) as export:
        assert export.negotiated.tls and export.negotiated.tls_verified
        await export.write(0, ours)
        await export.flush()
    copied = tmp_path / "copied.raw"
    oracle("nbdcopy", uri, str(copied))
    assert copied.read_bytes() == ours

    theirs = tmp_path / "theirs.raw"
    theirs.write_bytes(os.urandom(4 * MiB))
    oracle("nbdcopy", str(theirs), uri)
    async with nbdtui.open(uri, pool=Pool()) as export:
        assert await export.read(0, 4 * MiB) == theirs.read_bytes()
        assert await export.read(12345, 777) == theirs.read_bytes()[12345 : 12345 + 777]


async def test_tls_keeps_the_buffered_receive_path(nbdkit, tls_certs, monkeypatch):
    """asyncio's TLS layer decrypts straight into StreamProtocol.get_buffer()'s buffers
    (the caller's buffer for READ payload); data_received is never used."""
    server = nbdkit("pattern", "16M", tls=tls_certs)
    handed_out: list[memoryview | bytearray] = []
    get_buffer = StreamProtocol.get_buffer

    def recording_get_buffer(self, sizehint):
        buf = get_buffer(self, sizehint)
        handed_out.append(buf)
        return buf

    def no_data_received(self, data):  # pragma: no cover - the failure being tested
        raise AssertionError("TLS delivered bytes through data_received")

    monkeypatch.setattr(StreamProtocol, "get_buffer", recording_get_buffer)
    monkeypatch.setattr(StreamProtocol, "data_received", no_data_received)
    buffer = bytearray(8 * MiB)
    async with nbdtui.open(server.tls_uri_for(), pool=Pool()) as export:
        assert export.negotiated.tls and export.negotiated.tls_verified
        await export.read_into(MiB, buffer)
    expected = b"".join(struct.pack(">Q", o) for o in range(MiB, 9 * MiB, 8))
    assert buffer == expected
    straight_in = [b for b in handed_out if isinstance(b, memoryview) and b.obj is buffer]
    assert sum(len(b) for b in straight_in) >= 8 * MiB


async def test_list_exports_over_tls(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", unix=True, tls=tls_certs)
    listed = await list_exports(server.tls_uri_for())
    assert listed.tls and listed.tls_verified
    assert [e.name for e in listed.exports] == [""]


# ---- verification failures ----------------------------------------------------------


def test_wrong_ca_is_refused(nbdkit, qemu_nbd, make_image, tmp_path, tls_certs):
    for server in (
        nbdkit("memory", "1M", tls=tls_certs.wrong_ca_dir),
        qemu_nbd(make_image(tmp_path, MiB), tls=tls_certs.wrong_ca_dir),
    ):
        uri = with_params(server.uri, tls_certificates=tls_certs.dir)
        result = run_nbdtui("info", "--json", uri)
        assert_one_line_error(
            result, 1, "TLS certificate verify failed", "unknown CA", str(tls_certs.ca_cert)
        )
        assert result.stdout == b""


def test_no_certificates_dir_means_the_system_store(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs)
    result = run_nbdtui("info", server.uri)
    assert_one_line_error(result, 1, "unknown CA", "system CA store", "tls-certificates=DIR")


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_wrong_hostname_is_refused(nbdkit, tls_certs, unix):
    server = nbdkit("memory", "1M", unix=unix, tls=tls_certs)
    uri = with_params(server.tls_uri_for(), tls_hostname="wrong.example")
    result = run_nbdtui("info", "--json", uri)
    assert_one_line_error(
        result, 1, "TLS certificate verify failed", "hostname mismatch", "'wrong.example'"
    )


async def test_tls_hostname_overrides_the_host(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs)
    # The certificate names localhost and 127.0.0.1; checking "localhost" on 127.0.0.1 works.
    negotiated = await probe(with_params(server.tls_uri_for(), tls_hostname="localhost"))
    assert negotiated.tls and negotiated.tls_verified


def test_expired_certificate_is_refused(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs.expired_dir)
    uri = with_params(server.uri, tls_certificates=tls_certs.dir)
    result = run_nbdtui("info", "--json", uri)
    assert_one_line_error(result, 1, "TLS certificate verify failed", "expired")


async def test_verify_peer_false_connects_unverified(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs.wrong_ca_dir)
    uri = with_params(server.uri, tls_certificates=tls_certs.dir, tls_verify_peer="false")
    async with nbdtui.open(uri, pool=Pool()) as export:
        assert export.negotiated.tls is True
        assert export.negotiated.tls_verified is False
        await export.write(0, b"unverified but encrypted")
        assert await export.read(0, 24) == b"unverified but encrypted"
    result = run_nbdtui("info", "--json", uri)
    assert result.returncode == 0, result.stderr
    assert result.json()["TLS"] is True
    human = run_nbdtui("info", uri)
    assert "newstyle-fixed, TLS (unverified), structured replies" in human.stdout.decode()
    verified = run_nbdtui("info", nbdkit("memory", "1M", tls=tls_certs).tls_uri_for())
    assert "newstyle-fixed, TLS (verified), structured replies" in verified.stdout.decode()
    # Written out as 0 too; anything else (or nothing) keeps verification on.
    negotiated = await probe(uri.replace("tls-verify-peer=false", "tls-verify-peer=0"))
    assert negotiated.tls and not negotiated.tls_verified
    with pytest.raises(TLSError, match="unknown CA"):
        await probe(uri.replace("tls-verify-peer=false", "tls-verify-peer=yes"))


async def test_plaintext_connection_is_neither_tls_nor_verified(nbdkit):
    negotiated = await probe(nbdkit("memory", "1M").uri)
    assert (negotiated.tls, negotiated.tls_verified) == (False, False)


async def test_foreign_upgrader_is_judged_by_its_context(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs)

    async def unverified_tls(endpoint, transport, protocol):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        loop = asyncio.get_running_loop()
        return await loop.start_tls(transport, protocol, context)

    negotiated = await probe(server.uri, start_tls=unverified_tls)
    assert negotiated.tls and not negotiated.tls_verified


# ---- no downgrade ---------------------------------------------------------------------


def test_plaintext_uri_against_tls_only_server_says_use_nbds(nbdkit, tls_certs):
    server = nbdkit("memory", "1M", tls=tls_certs)
    plain = server.uri.replace("nbds://", "nbd://")
    result = run_nbdtui("info", "--json", plain)
    assert_one_line_error(result, 1, "server requires TLS: use nbds://")


async def test_plaintext_uri_against_tls_only_server_raises(
    qemu_nbd, make_image, tmp_path, tls_certs
):
    server = qemu_nbd(make_image(tmp_path, MiB), unix=True, tls=tls_certs)
    with pytest.raises(TLSRequiredError, match="use nbds://"):
        await probe(server.uri.replace("nbds+unix://", "nbd+unix://"))


def test_tls_against_plaintext_only_server_never_falls_back(nbdkit):
    server = nbdkit("memory", "1M", extra_options=("--tls=off", "-v"))
    result = run_nbdtui("info", "--json", server.uri.replace("nbd://", "nbds://"))
    assert_one_line_error(result, 1, "server does not support TLS")
    assert result.stdout == b""
    # The server saw STARTTLS (refused), then ABORT: no other option, no export opened.
    log = server.output()
    seen = re.findall(r"(?:replying to|client sent) (NBD_OPT_\w+)", log)
    assert seen and set(seen) == {"NBD_OPT_STARTTLS", "NBD_OPT_ABORT"}, log
    assert seen[0] == "NBD_OPT_STARTTLS"
    assert "memory: open" not in log


# ---- client certificates ------------------------------------------------------------


def _ca_only(tls_certs, tmp_path: Path) -> Path:
    directory = tmp_path / "ca-only"
    directory.mkdir()
    shutil.copy(tls_certs.ca_cert, directory / "ca-cert.pem")
    return directory


@pytest.mark.parametrize("kind", ["nbdkit", "qemu"])
async def test_client_certificate_is_presented(
    kind, nbdkit, qemu_nbd, make_image, tmp_path, tls_certs
):
    if kind == "nbdkit":
        server = nbdkit("memory", "1M", tls=tls_certs, tls_verify_peer=True)
    else:
        server = qemu_nbd(make_image(tmp_path, MiB), tls=tls_certs, tls_verify_peer=True)
    async with nbdtui.open(server.tls_uri_for(), pool=Pool()) as export:
        assert export.negotiated.tls_verified
        await export.write(512, b"client cert ok")
        assert await export.read(512, 14) == b"client cert ok"

    without = with_params(server.uri, tls_certificates=_ca_only(tls_certs, tmp_path))
    result = run_nbdtui("info", "--json", without)
    # A hang-up right after the TLS handshake (GnuTLS under TLS 1.3) or an alert.
    assert_one_line_error(result, 1, "TLS handshake", "client certificate", "client-cert.pem")

    untrusted = tmp_path / "untrusted-client"
    untrusted.mkdir()
    shutil.copy(tls_certs.ca_cert, untrusted / "ca-cert.pem")
    for name in ("client-cert.pem", "client-key.pem"):
        shutil.copy(tls_certs.wrong_ca_dir / name, untrusted / name)
    with pytest.raises(TLSError, match="nbdtui's client certificate"):
        await probe(with_params(server.uri, tls_certificates=untrusted))


# ---- unusable settings fail before connecting ---------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_missing_ca_cert_fails_before_connecting(tmp_path):
    # Nothing listens on the port: the TLS check must come first ("connection refused" not).
    uri = with_params(f"nbds://127.0.0.1:{_closed_port()}/", tls_certificates=tmp_path)
    assert_one_line_error(run_nbdtui("info", uri), 1, f"no ca-cert.pem in {tmp_path}")
    missing = tmp_path / "nope"
    assert_one_line_error(
        run_nbdtui("info", with_params(uri.split("?")[0], tls_certificates=missing)),
        1,
        f"no such directory: {missing}",
    )


def test_unusable_client_key_fails_clearly(tmp_path, tls_certs):
    directory = tmp_path / "bad-key"
    directory.mkdir()
    for name in ("ca-cert.pem", "client-cert.pem"):
        shutil.copy(tls_certs.dir / name, directory / name)
    uri = with_params(f"nbds://127.0.0.1:{_closed_port()}/", tls_certificates=directory)
    assert_one_line_error(
        run_nbdtui("info", uri), 1, "client-cert.pem without client-key.pem", str(directory)
    )
    (directory / "client-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n")
    assert_one_line_error(
        run_nbdtui("info", uri), 1, "cannot use client certificate", "client-key.pem"
    )
    # A key that belongs to another certificate.
    shutil.copy(tls_certs.dir / "ca-cert.pem", directory / "client-cert.pem")
    shutil.copy(tls_certs.dir / "client-key.pem", directory / "client-key.pem")
    assert_one_line_error(run_nbdtui("info", uri), 1, "cannot use client certificate")


def test_contradictory_tls_parameters_are_endpoint_errors(tmp_path):
    with pytest.raises(UriError, match="tls-type=psk needs tls-psk-file"):
        nbdtls.settings_for(parse("nbds://h/?tls-type=psk"))
    with pytest.raises(UriError, match="exclude each other"):
        nbdtls.settings_for(parse(f"nbds://h/?tls-psk-file={tmp_path}/k&tls-certificates=/x"))
    with pytest.raises(UriError, match="needs tls-type=psk"):
        nbdtls.settings_for(parse(f"nbds://h/?tls-psk-file={tmp_path}/k&tls-type=x509"))
    with pytest.raises(UriError, match="tls-type=anon uses no certificates"):
        nbdtls.settings_for(parse("nbds://h/?tls-type=anon&tls-certificates=/x"))
    # From the command line: a bad endpoint, exit status 2, before connecting.
    uri = f"nbds://127.0.0.1:{_closed_port()}/?tls-type=psk"
    assert_one_line_error(run_nbdtui("info", uri), 2, "tls-type=psk needs tls-psk-file")


def test_names_checked_by_default():
    assert nbdtls.settings_for(parse("nbds://example.com/")).hostname == "example.com"
    assert nbdtls.settings_for(parse("nbds://[fe80::1%25eth0]/")).hostname == "fe80::1"
    assert nbdtls.settings_for(parse("nbds+unix:///?socket=/s")).hostname == "localhost"
    unix = parse("nbds+unix:///?socket=/s&tls-hostname=nas.example")
    assert nbdtls.settings_for(unix).hostname == "nas.example"
    assert nbdtls.settings_for(parse("nbds+ssh://me@jump/")).hostname == "jump"


# ---- the TLS handshake itself fails ------------------------------------------------


async def test_server_closing_during_tls_handshake(tls_certs):
    """No real server hangs up in the middle of the TLS handshake: a socket server that
    accepts NBD_OPT_STARTTLS, reads the ClientHello and closes stands in for one."""
    got_hello = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3))  # fixed newstyle, no zeroes
        await reader.readexactly(4)
        magic, option, length = struct.unpack(">QII", await reader.readexactly(16))
        assert (magic, option, length) == (IHAVEOPT, Option.STARTTLS, 0)
        writer.write(struct.pack(">QIII", OPTION_REPLY_MAGIC, option, OptionReply.ACK, 0))
        hello = await reader.read(5)
        assert hello[:1] == b"\x16"  # a TLS handshake record: nothing plaintext after ACK
        got_hello.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        uri = with_params(f"nbds://127.0.0.1:{port}/", tls_certificates=tls_certs.dir)
        with pytest.raises(TLSError, match="closed the connection during the TLS handshake"):
            await probe(uri)
        assert got_hello.is_set()
    finally:
        server.close()
        await server.wait_closed()


def test_x509_client_against_anonymous_tls_server(qemu_nbd, make_image, tmp_path):
    image = make_image(tmp_path, MiB, content=b"anonymous")
    server = qemu_nbd(
        image,
        extra=("--object", "tls-creds-anon,id=tls0,endpoint=server", "--tls-creds=tls0"),
    )
    uri = server.uri.replace("nbd://", "nbds://")
    # GnuTLS hangs up, or first sends a handshake-failure alert: either way, a hint.
    assert_one_line_error(run_nbdtui("info", uri), 1, "TLS handshake", "check tls-type")
    result = run_nbdtui("dump", "--length", "9", with_params(uri, tls_type="anon"))
    assert result.returncode == 0, result.stderr
    assert b"|anonymous|" in result.stdout


async def test_anonymous_tls_is_unverified(qemu_nbd, make_image, tmp_path):
    server = qemu_nbd(
        make_image(tmp_path, MiB),
        unix=True,
        extra=("--object", "tls-creds-anon,id=tls0,endpoint=server", "--tls-creds=tls0"),
    )
    uri = with_params(server.uri.replace("nbd+unix://", "nbds+unix://"), tls_type="anon")
    negotiated = await probe(uri)
    assert negotiated.tls and not negotiated.tls_verified


# ---- PSK ------------------------------------------------------------------------------


def test_read_psk_file(tmp_path):
    keys = tmp_path / "keys.psk"
    keys.write_text("alice:00ff10\r\nbob:zz\nnbdtui:0a0b\n")
    assert nbdtls.read_psk(keys, "alice") == b"\x00\xff\x10"
    assert nbdtls.read_psk(keys, "nbdtui") == b"\x0a\x0b"
    with pytest.raises(TLSError, match="line 2: the key of 'bob' is not hex"):
        nbdtls.read_psk(keys, "bob")
    with pytest.raises(TLSError, match="user 'carol' not found in PSK file"):
        nbdtls.read_psk(keys, "carol")
    with pytest.raises(TLSError, match="cannot read PSK file"):
        nbdtls.read_psk(tmp_path / "missing", "alice")


def _psk_server(nbdkit, tls_certs, *, unix: bool = False):
    server = nbdkit(
        "memory",
        "1M",
        unix=unix,
        extra_options=("--tls=require", f"--tls-psk={tls_certs.psk_file}"),
    )
    user = tls_certs.psk_user
    if unix:
        uri = f"nbds+unix://{user}@/?socket={server.socket}"
    else:
        uri = f"nbds://{user}@127.0.0.1:{server.port}/"
    return server, with_params(uri, tls_psk_file=tls_certs.psk_file)


@pytest.mark.skipif(HAVE_PSK, reason="this Python has TLS-PSK")
def test_psk_needs_python_3_13(nbdkit, tls_certs):
    _, uri = _psk_server(nbdkit, tls_certs)
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert_one_line_error(
        run_nbdtui("info", uri), 1, f"TLS-PSK needs Python 3.13 or newer (this is {this})"
    )


@pytest.mark.skipif(not HAVE_PSK, reason="TLS-PSK needs Python 3.13 or newer")
@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
async def test_psk_in_process(nbdkit, tls_certs, unix):
    _, uri = _psk_server(nbdkit, tls_certs, unix=unix)
    async with nbdtui.open(uri, pool=Pool()) as export:
        assert export.negotiated.tls and export.negotiated.tls_verified
        await export.write(0, b"psk")
        assert await export.read(0, 3) == b"psk"
    with pytest.raises(TLSError, match="user 'nobody' not found"):
        await probe(uri.replace(f"{tls_certs.psk_user}@", "nobody@"))


def _python_with_psk() -> str | None:
    """A Python 3.13+ interpreter on this machine (PATH or pyenv), for the PSK path."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(13, 20)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        candidates += [str(p / "bin" / "python3") for p in sorted(pyenv.iterdir(), reverse=True)]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        probe_code = (
            "import ssl,sys; sys.exit(not hasattr(ssl.SSLContext,'set_psk_client_callback'))"
        )
        if subprocess.run([candidate, "-c", probe_code], capture_output=True).returncode == 0:
            return candidate
    return None


def test_psk_with_another_python(nbdkit, tls_certs, tmp_path):
    """Where the tests run on Python < 3.13, run the PSK path on a newer Python of this
    machine (the client needs nothing outside the standard library)."""
    if HAVE_PSK:
        pytest.skip("this Python has TLS-PSK: test_psk_in_process covers it")
    python = _python_with_psk()
    if python is None:
        pytest.skip("TLS-PSK needs Python 3.13+, and this machine has none")
    _, uri = _psk_server(nbdkit, tls_certs)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [python, "-m", "nbdtui", "info", "--json", uri],
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    ours, theirs = json.loads(proc.stdout), json.loads(oracle("nbdinfo", "--json", uri))
    assert ours["TLS"] is True and theirs["TLS"] is True
    assert ours["exports"][0]["export-size"] == theirs["exports"][0]["export-size"] == MiB
    wrong = tmp_path / "wrong.psk"
    wrong.write_text(f"{tls_certs.psk_user}:{'00' * 32}\n")
    bad = subprocess.run(
        [python, "-m", "nbdtui", "info", uri.replace(str(tls_certs.psk_file), str(wrong))],
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "TLS handshake" in bad.stderr.decode()
