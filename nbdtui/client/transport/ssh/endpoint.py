"""What an ``nbd+ssh`` endpoint asks for, and ``--ssh`` tunnels; no asyncssh here.

``nbd+ssh://[user@]host[:sshport]/export[?socket=REMOTE_PATH]`` reaches an NBD server
through an SSH connection to ``host``: with ``socket=`` the channel goes to that Unix
socket *on the SSH host*; without it, to a TCP port as the SSH host sees it, by default
``localhost:10809``. ``x-`` query parameters (kept verbatim by :mod:`nbdtui.uri`) tune
it:

``x-nbd-host=HOST``
    the NBD server's host as seen from the SSH host (default ``localhost``; ignored
    with ``socket=``);
``x-nbd-port=PORT``
    its port (default 10809; ignored with ``socket=``);
``x-accept-new-host-key=yes``
    trust and save the SSH host's key when ``known_hosts`` has no key for that host
    (OpenSSH's ``StrictHostKeyChecking=accept-new``); a *different* key is still
    refused.

:func:`tunnel_endpoint` turns any ``nbd://`` or ``nbd+unix://`` endpoint into the
``nbd+ssh`` endpoint that reaches the same server from an SSH host (what ``--ssh``
does). Nothing taken from a URI is ever passed to a shell; user names with shell
metacharacters are refused anyway (as OpenSSH 9.6 does for command-line names) because
an ``ssh_config`` ``ProxyCommand`` may substitute them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbdtui.errors import ConnectError, UriError
from nbdtui.proto.constants import DEFAULT_PORT
from nbdtui.uri import BOOLEANS, Endpoint, SshTarget, parse_ssh_target

__all__ = [
    "ACCEPT_NEW_PARAM",
    "NBD_HOST_PARAM",
    "NBD_PORT_PARAM",
    "SshRoute",
    "host_key_mismatch",
    "ssh_route",
    "tunnel_endpoint",
]

NBD_HOST_PARAM = "x-nbd-host"
NBD_PORT_PARAM = "x-nbd-port"
ACCEPT_NEW_PARAM = "x-accept-new-host-key"
DEFAULT_NBD_HOST = "localhost"

_TRUE = frozenset({"1", "true", "yes", "on"})
# Characters a shell would interpret; OpenSSH >= 9.6 refuses them in user names.
_SHELL_META = re.compile(r"[\s'\"`$\\;&<>|(){}\[\]*?~#!]")
_HOST_RE = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._~-]+)?")


@dataclass(frozen=True)
class SshRoute:
    """Where one ``nbd+ssh`` endpoint leads: the SSH login and the channel's far end."""

    host: str  # as given: a host name, an address or an ssh_config alias
    port: int | None  # None: ssh_config's Port, else 22
    user: str | None  # None: ssh_config's User, else the local user
    socket: str | None  # remote Unix socket, or None for TCP
    nbd_host: str  # TCP: host as seen from the SSH host
    nbd_port: int  # TCP: port
    accept_new_host_key: bool

    @property
    def target(self) -> str:
        """The far end of the channel, for messages."""
        if self.socket is not None:
            return f"remote socket {self.socket}"
        host = f"[{self.nbd_host}]" if ":" in self.nbd_host else self.nbd_host
        return f"{host}:{self.nbd_port}"


def _extra(endpoint: Endpoint, key: str) -> str | None:
    for k, v in endpoint.extra:
        if k == key:
            return v
    return None


def check_ssh_user(user: str) -> None:
    """Refuse a user name that a ProxyCommand would hand to a shell unquoted."""
    if _SHELL_META.search(user) or user.startswith("-"):
        raise UriError(f"ssh user name {user!r} contains characters a shell would interpret")


def ssh_route(endpoint: Endpoint) -> SshRoute:
    """The :class:`SshRoute` of an ``nbd+ssh`` endpoint; raises UriError."""
    if endpoint.transport != "ssh":
        raise UriError(f"{endpoint.scheme}:// is not an SSH endpoint")
    assert endpoint.host is not None
    if endpoint.host.startswith("-"):  # uri.py refuses it already; never an ssh option
        raise UriError(f"host {endpoint.host!r} may not begin with '-'")
    if endpoint.user is not None:
        check_ssh_user(endpoint.user)
    nbd_host = _extra(endpoint, NBD_HOST_PARAM) or DEFAULT_NBD_HOST
    if nbd_host.startswith("-") or not _HOST_RE.fullmatch(nbd_host):
        raise UriError(f"{NBD_HOST_PARAM} {nbd_host!r} is not a host name or address")
    port_text = _extra(endpoint, NBD_PORT_PARAM)
    nbd_port = DEFAULT_PORT
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise UriError(f"{NBD_PORT_PARAM} {port_text!r} is not a port number (1-65535)")
        nbd_port = int(port_text)
    accept = _extra(endpoint, ACCEPT_NEW_PARAM)
    if accept is not None and accept.lower() not in BOOLEANS:
        raise UriError(f"{ACCEPT_NEW_PARAM} {accept!r} is not a boolean (yes or no)")
    return SshRoute(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        socket=endpoint.socket,
        nbd_host=nbd_host,
        nbd_port=nbd_port,
        accept_new_host_key=accept is not None and accept.lower() in _TRUE,
    )


def host_key_mismatch(host: str, port: int) -> ConnectError:
    """The error for a host key that differs from the one ``known_hosts`` has (both
    transports, asyncssh and the system ``ssh``, say it the same way)."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    pattern = host if port == 22 else f"[{host}]:{port}"
    return ConnectError(
        f"ssh: host key for {shown} does not match known_hosts (possible "
        f"man-in-the-middle; if the key changed on purpose: ssh-keygen -R '{pattern}')"
    )


def tunnel_endpoint(endpoint: Endpoint, via: SshTarget | str) -> Endpoint:
    """The ``nbd+ssh`` endpoint that reaches ``endpoint`` from the SSH host ``via``.

    ``nbd://HOST:PORT/x`` becomes ``nbd+ssh://via/x?x-nbd-host=HOST&x-nbd-port=PORT``
    (HOST as the SSH host resolves it), ``nbd+unix:///x?socket=P`` becomes
    ``nbd+ssh://via/x?socket=P`` (P is a path on the SSH host). TLS stays on (it runs
    inside the tunnel); a tunnelled ``nbds://HOST`` verifies the certificate against
    HOST (``tls-hostname``), not against the SSH host. Raises UriError.
    """
    target = via if isinstance(via, SshTarget) else parse_ssh_target(via)
    if target.user is not None:
        check_ssh_user(target.user)
    if endpoint.transport == "ssh":
        raise UriError("--ssh cannot tunnel an nbd+ssh:// endpoint (it has its own SSH host)")
    if endpoint.transport == "vsock":
        raise UriError("vsock endpoints cannot be reached through SSH")
    if endpoint.user is not None:
        raise UriError(
            f"cannot tunnel {endpoint.scheme}://{endpoint.user}@…: the user name would become "
            "the SSH user; give the SSH user as --ssh USER@HOST"
        )
    extra = [(k, v) for k, v in endpoint.extra if k not in (NBD_HOST_PARAM, NBD_PORT_PARAM)]
    tls_params = list(endpoint.tls_params)
    socket = None
    if endpoint.transport == "unix":
        assert endpoint.socket is not None
        if endpoint.socket.startswith("\0"):
            raise UriError("an abstract Unix socket cannot be reached through SSH")
        socket = endpoint.socket
    else:
        assert endpoint.host is not None
        extra.append((NBD_HOST_PARAM, endpoint.host))
        if endpoint.port is not None:
            extra.append((NBD_PORT_PARAM, str(endpoint.port)))
        if endpoint.tls and endpoint.tls_param("tls-hostname") is None:
            tls_params.append(("tls-hostname", endpoint.host))
    return endpoint.replace(
        transport="ssh",
        host=target.host,
        port=target.port,
        user=target.user,
        socket=socket,
        tls_params=tuple(tls_params),
        extra=tuple(extra),
    )
