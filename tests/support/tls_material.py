"""X.509 material for the TLS tests, made with openssl in the layout nbdkit, qemu and
libnbd share."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from tests.support.requirements import require


@dataclass(frozen=True)
class TlsCerts:
    """X.509 material in the directory layout shared by nbdkit, qemu and libnbd.

    Each directory holds ``ca-cert.pem``, ``server-cert.pem``, ``server-key.pem``,
    ``client-cert.pem`` and ``client-key.pem``:

    - ``dir``: all signed by the test CA; the server cert is for ``localhost`` and
      ``127.0.0.1`` (subjectAltName). Pass it to ``nbdkit --tls-certificates``, qemu's
      ``tls-creds-x509,dir=`` and libnbd's ``?tls-certificates=``.
    - ``expired_dir``: same CA and client pair, but a server cert that expired in 2000.
    - ``wrong_ca_dir``: another CA (with its own ``ca-cert.pem``) signed the server and client
      certs; a server using it is rejected by a client trusting ``dir``, and vice versa.
    - ``psk_file``: ``psk_user:hexkey`` for ``nbdkit --tls-psk`` / libnbd ``?tls-psk-file=``.
    """

    dir: Path
    expired_dir: Path
    wrong_ca_dir: Path
    psk_file: Path
    psk_user: str = "nbdtui"

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca-cert.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server-cert.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client-cert.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client-key.pem"

    def copy_to(self, dest: Path) -> TlsCerts:
        """A copy of every file under ``dest`` (which must not exist yet)."""
        root = self.dir.parent
        shutil.copytree(root, dest, symlinks=True)
        return replace(
            self,
            dir=dest / self.dir.relative_to(root),
            expired_dir=dest / self.expired_dir.relative_to(root),
            wrong_ca_dir=dest / self.wrong_ca_dir.relative_to(root),
            psk_file=dest / self.psk_file.relative_to(root),
        )


# --------------------------------------------------------------------------- TLS material


def _openssl(cwd: Path, *args: str) -> None:
    openssl = require("openssl")
    proc = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {proc.stderr.strip()}")


_SERVER_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
"""

_CLIENT_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_CA_CONFIG = """\
[ca]
default_ca = test_ca
[test_ca]
database = {work}/index.txt
new_certs_dir = {work}/issued
serial = {work}/serial
default_md = sha256
policy = policy_any
unique_subject = no
[policy_any]
commonName = supplied
"""


def make_tls_certs(directory: Path) -> TlsCerts:
    """Generate CA, server and client certificates (plus the bad variants) with openssl."""
    work = directory / "ca-private"
    good, expired, wrong = directory / "pki", directory / "pki-expired", directory / "pki-wrong-ca"
    for d in (work, good, expired, wrong, work / "issued"):
        d.mkdir(parents=True, exist_ok=True)
    (work / "server.ext").write_text(_SERVER_EXT)
    (work / "client.ext").write_text(_CLIENT_EXT)
    (work / "index.txt").write_text("")
    (work / "serial").write_text(secrets.token_hex(8) + "\n")
    (work / "ca.cnf").write_text(_CA_CONFIG.format(work=work))

    def new_ca(name: str, cn: str) -> None:
        _openssl(
            work,
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650"),
            *("-keyout", f"{name}-key.pem", "-out", f"{name}-cert.pem", "-subj", f"/CN={cn}"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        )

    def new_key(name: str, cn: str) -> None:
        _openssl(
            work,
            *("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}"),
            *("-keyout", f"{name}-key.pem", "-out", f"{name}.csr"),
        )

    def sign(csr: str, ca: str, ext: str, out: Path) -> None:
        _openssl(
            work,
            *("x509", "-req", "-in", csr, "-CA", f"{ca}-cert.pem", "-CAkey", f"{ca}-key.pem"),
            *("-set_serial", str(int(secrets.token_hex(8), 16)), "-days", "3650", "-sha256"),
            *("-extfile", ext, "-out", str(out)),
        )

    new_ca("ca", "nbdtui test CA")
    new_ca("other-ca", "nbdtui wrong CA")
    new_key("server", "localhost")
    new_key("client", "nbdtui-client")

    sign("server.csr", "ca", "server.ext", good / "server-cert.pem")
    sign("client.csr", "ca", "client.ext", good / "client-cert.pem")
    sign("server.csr", "other-ca", "server.ext", wrong / "server-cert.pem")
    sign("client.csr", "other-ca", "client.ext", wrong / "client-cert.pem")
    # `openssl x509 -days` cannot backdate; `openssl ca` takes explicit validity dates.
    _openssl(
        work,
        *("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca-cert.pem"),
        *("-keyfile", "ca-key.pem", "-in", "server.csr", "-extfile", "server.ext"),
        *("-startdate", "20000101000000Z", "-enddate", "20000102000000Z"),
        *("-out", str(expired / "server-cert.pem")),
    )

    for d in (good, expired):
        shutil.copy(work / "ca-cert.pem", d / "ca-cert.pem")
    shutil.copy(work / "other-ca-cert.pem", wrong / "ca-cert.pem")
    for d in (good, expired, wrong):
        shutil.copy(work / "server-key.pem", d / "server-key.pem")
        shutil.copy(work / "client-key.pem", d / "client-key.pem")
        (d / "server-key.pem").chmod(0o600)
        (d / "client-key.pem").chmod(0o600)
    shutil.copy(good / "client-cert.pem", expired / "client-cert.pem")

    psk = directory / "psk.keys"
    psk.write_text(f"nbdtui:{secrets.token_hex(32)}\n")
    psk.chmod(0o600)
    return TlsCerts(dir=good, expired_dir=expired, wrong_ca_dir=wrong, psk_file=psk)


def tls_directory(tls: TlsCerts | Path | str) -> Path:
    return tls.dir if isinstance(tls, TlsCerts) else Path(tls)
