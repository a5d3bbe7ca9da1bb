"""What the doctor says about an export and its failures: the NBD_REP_INFO replies of INFO
or GO folded into an :class:`~nbdtui.proto.types.ExportInfo`, the commands its flags allow,
sizes for people, and the hints for SSH and TLS failures (from their error messages)."""

from __future__ import annotations

from nbdtui.proto.constants import TransmissionFlag as TF
from nbdtui.proto.types import ExportInfo

__all__ = ["commands", "human_size", "ssh_hint", "tls_hint"]


def human_size(n: int) -> str:
    """``1.0 MiB``; ``present.sizes.format_size`` is a layer above ``client/``."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} bytes"


def commands(info: ExportInfo) -> str:
    names = ["read"]
    if not info.read_only:
        names.append("write")
    for flag, name in (
        (TF.SEND_FLUSH, "flush"),
        (TF.SEND_FUA, "fua"),
        (TF.SEND_TRIM, "trim"),
        (TF.SEND_WRITE_ZEROES, "zero"),
        (TF.SEND_FAST_ZERO, "fast-zero"),
        (TF.SEND_CACHE, "cache"),
        (TF.SEND_DF, "df"),
        (TF.SEND_RESIZE, "resize"),
    ):
        if info.flags & TF.HAS_FLAGS and info.flags & flag:
            names.append(name)
    return " ".join(names)


def ssh_hint(message: str) -> str:
    if "does not match known_hosts" in message:
        return (
            "the SSH host key changed: unless you know why (a reinstalled host), do not "
            "connect; if it did change on purpose, remove the old key as the message says"
        )
    if "not in known_hosts" in message:
        return "trust the host's key once: pass --ssh-accept-new (or ssh to it once)"
    if "authentication failed" in message:
        return "check the user name, your keys and ssh-agent (try: ssh -v HOST)"
    if "connection refused" in message:
        return "no SSH server listens there: check the host and port (ssh_config Port)"
    if "timed out" in message:
        return "the SSH host does not answer: is it up, is the port filtered?"
    if "cannot resolve" in message:
        return "check the host name, or its Host alias in ~/.ssh/config"
    if "remote socket" in message or "as seen from" in message:
        return "is the NBD server running on the SSH host, at this socket path or port?"
    return "try the same login with ssh -v to see where it stops"


def tls_hint(message: str) -> str:
    if "unknown CA" in message or "not signed by the CA" in message:
        return (
            "the server's certificate is not signed by a CA nbdtui trusts: point "
            "tls-certificates=DIR at the directory holding its CA (ca-cert.pem)"
        )
    if "hostname mismatch" in message:
        return "connect with a name the certificate carries, or set tls-hostname=NAME"
    if "expired" in message:
        return "the server's certificate has expired: renew it"
    if "client certificate" in message:
        return "the server wants a client certificate it trusts in the tls-certificates directory"
    return "check the server's TLS setup and the URI's tls- parameters"
