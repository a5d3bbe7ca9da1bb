"""An ``nbd+ssh`` endpoint's NBD server forwarded to a local Unix socket by OpenSSH's client.

For a bulk transfer the system ``ssh`` is faster than asyncssh: its encryption runs in
its own process (off the event loop and the GIL), and nbdtui skips importing asyncssh.
:func:`open_forward` runs::

    ssh -N -o BatchMode=yes -o ExitOnForwardFailure=yes ... -L LOCAL:REMOTE -- HOST

with LOCAL a socket in a fresh 0700 directory, REMOTE the endpoint's remote socket (or
``HOST:PORT`` as the SSH host sees it) and the endpoint's user, port and host (an
``ssh_config`` alias too: OpenSSH reads the same ``~/.ssh/config``, identities and
``known_hosts`` as the asyncssh transport). It waits for LOCAL to appear and returns a
:class:`Forward` whose :attr:`~Forward.endpoint` is the ``nbd+unix`` endpoint of LOCAL;
:meth:`Forward.close` kills ``ssh`` and removes the directory (``ssh`` also gets SIGKILL
if nbdtui dies first: ``setpriv --pdeathsig``).

``None`` means "use the asyncssh transport" (logged at debug level): no ``ssh``, a login
that needs a prompt (``BatchMode``: passwords, passphrases), a host key that
``known_hosts`` does not have yet (asyncssh asks, or accepts it with
``--ssh-accept-new``), an ``ssh`` that exits before its forward is up. A host key that
*differs* from the one in ``known_hosts`` is a :class:`~nbdtui.errors.ConnectError`
(``StrictHostKeyChecking=yes``), the same one-line error as asyncssh's, never a
fallback; so is a login slower than the connect timeout (asyncssh would wait as long).

No asyncssh here: this module costs nothing to import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nbdtui.client.transport.ssh.endpoint import host_key_mismatch, ssh_route
from nbdtui.errors import ConnectError
from nbdtui.uri import Endpoint

if TYPE_CHECKING:
    import logging

__all__ = [
    "Forward",
    "forward_argv",
    "open_forward",
    "preferred_ciphers",
    "ready_forward",
    "start_forward",
]

_FILES = ("nbd.sock", "ssh.err")  # what the private directory holds

_POLL = 0.002
CLOSE_TIMEOUT = 2.0  # for ssh to go on SIGTERM, before SIGKILL
LOST_WAIT = 0.5  # for ssh to exit once the NBD connections through it broke
# OpenSSH's own cipher list (9.x). When ssh_config leaves it as it is, AES-GCM goes
# first: with AES-NI it moves about 1.5x the bytes per second of chacha20-poly1305.
OPENSSH_DEFAULT_CIPHERS = (
    "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com"
)
GCM_FIRST_CIPHERS = (
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
    "aes128-ctr,aes192-ctr,aes256-ctr"
)
# What OpenSSH prints when the host key differs from the one known_hosts has for it.
_MISMATCH = ("REMOTE HOST IDENTIFICATION HAS CHANGED", "POSSIBLE DNS SPOOFING DETECTED")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


@dataclass
class Forward:
    """A running ``ssh -N -L``: :attr:`endpoint` reaches the NBD server through it."""

    endpoint: Endpoint  # nbd+unix: the local socket
    process: subprocess.Popen[bytes]
    directory: str  # private (0700): the socket and ssh's stderr
    source: Endpoint  # the nbd+ssh endpoint forwarded
    login: tuple[str, int]  # the SSH host and port, as ssh_config makes them
    started: float = dataclasses.field(default_factory=time.monotonic)

    def close(self) -> None:
        """Stop ``ssh`` (if it still runs), reap it and remove the socket's directory."""
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _remove(self.directory)

    def ended(self, wait: float = LOST_WAIT) -> ConnectError | None:
        """If ``ssh`` has exited (or does within ``wait`` seconds): the error to report
        instead of what the NBD connections saw (a lost connection, a refused socket)."""
        try:
            code = self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None
        last = _last_line(self.directory) or _exit_reason(code)
        return ConnectError(f"ssh: the connection to {_where(self.login)} ended ({last})")

    def __enter__(self) -> Endpoint:
        return self.endpoint

    def __exit__(self, *exc: object) -> None:
        self.close()


def forward_argv(
    ssh: str,
    endpoint: Endpoint,
    local: str,
    *,
    ciphers: str | None = None,
    files: Sequence[str] = (),
) -> list[str]:
    """The ``ssh`` command line forwarding ``local`` to ``endpoint``'s NBD server."""
    route = ssh_route(endpoint)
    if route.socket is not None:
        remote = route.socket
    else:
        host = f"[{route.nbd_host}]" if ":" in route.nbd_host else route.nbd_host
        remote = f"{host}:{route.nbd_port}"
    argv = [ssh, *_login_options(endpoint), *files, "-N"]
    for option in (
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "StreamLocalBindUnlink=yes",
        "StreamLocalBindMask=0177",
        "StrictHostKeyChecking=yes",
        "ControlMaster=no",
        "ControlPath=none",
        "UpdateHostKeys=no",  # known_hosts is changed only on the user's say (asyncssh)
        "ForwardAgent=no",
        "ForwardX11=no",
        "LogLevel=ERROR",
    ):
        argv += ["-o", option]
    if ciphers is not None:
        argv += ["-o", f"Ciphers={ciphers}"]
    return [*argv, "-L", f"{local}:{remote}", "--", route.host]


def _login_options(endpoint: Endpoint) -> list[str]:
    options = _home_options()
    if endpoint.port is not None:
        options += ["-p", str(endpoint.port)]
    if endpoint.user is not None:
        options += ["-l", endpoint.user]
    return options


def _pw_home() -> str | None:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return None


def _home_options() -> list[str]:
    """OpenSSH finds ``~/.ssh`` through the password database, asyncssh through $HOME:
    when the two differ (``sudo -E``, the tests), OpenSSH is pointed at $HOME's."""
    home = os.path.expanduser("~")
    pw_home = _pw_home()
    if pw_home is not None and os.path.realpath(home) == os.path.realpath(pw_home):
        return []
    config = os.path.join(home, ".ssh", "config")
    return ["-F", config if os.path.isfile(config) else "/dev/null"]


def _home_files(config: dict[str, list[str]]) -> list[str]:
    """``-o`` options putting the identities and known_hosts that OpenSSH would look for
    under the password database's home under $HOME instead (see :func:`_home_options`)."""
    if not _home_options():
        return []
    home = os.path.expanduser("~")
    prefixes = ["~/", *([f"{pw}/"] if (pw := _pw_home()) and pw != "/" else [])]

    def moved(path: str) -> str:
        for prefix in prefixes:
            if path.startswith(prefix):
                return os.path.join(home, path[len(prefix) :])
        return path

    options = [f"IdentityFile={moved(path)}" for path in config.get("identityfile", [])]
    known = config.get("userknownhostsfile", [])
    if known:
        options.append("UserKnownHostsFile=" + " ".join(moved(p) for p in known[0].split()))
    return [item for option in options for item in ("-o", option)]


def _ssh_config(ssh: str, endpoint: Endpoint) -> dict[str, list[str]]:
    """What ``ssh -G`` makes of the endpoint's host: hostname, port, ciphers…"""
    assert endpoint.host is not None
    try:
        proc = subprocess.run(
            [ssh, "-G", *_login_options(endpoint), "--", endpoint.host],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0:
        return {}
    config: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        config.setdefault(key.lower(), []).append(value)
    return config


def _local_endpoint(endpoint: Endpoint, local: str) -> Endpoint:
    tls_params = list(endpoint.tls_params)
    if endpoint.tls and endpoint.tls_param("tls-hostname") is None:
        assert endpoint.host is not None  # the certificate names the SSH host, not "localhost"
        tls_params.append(("tls-hostname", endpoint.host.partition("%")[0]))
    return endpoint.replace(
        transport="unix",
        host=None,
        port=None,
        user=endpoint.user if endpoint.tls else None,  # (the TLS PSK user, if any)
        socket=local,
        tls_params=tuple(tls_params),
        extra=(),
    )


def _private_directory() -> str | None:
    """A new 0700 directory for the socket (``$TMPDIR``, else ``/tmp``), with a path short
    enough for ``sun_path`` and no ``:`` (the ``-L`` separator)."""
    for parent in dict.fromkeys((os.environ.get("TMPDIR") or "/tmp", "/tmp")):
        directory = os.path.join(parent, "nbdtui-ssh-" + os.urandom(6).hex())
        if len(directory) + len("/nbd.sock") > _SOCKET_PATH_MAX or ":" in directory:
            continue
        try:
            os.mkdir(directory, 0o700)
        except OSError:
            continue
        return directory
    return None


def _remove(directory: str) -> None:
    for name in _FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def _which(program: str) -> str | None:
    """``shutil.which`` without importing shutil (start-up time)."""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("nbdtui.client.transport")


def _pdeathsig() -> list[str]:
    setpriv = _which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def preferred_ciphers(config: dict[str, list[str]]) -> str | None:
    """AES-GCM first when ``ssh -G`` shows OpenSSH's own cipher list; ``None`` (leave
    ``ssh_config`` alone) when the user chose the ciphers."""
    return GCM_FIRST_CIPHERS if config.get("ciphers") == [OPENSSH_DEFAULT_CIPHERS] else None


def start_forward(endpoint: Endpoint) -> Forward | None:
    """Start ``ssh`` forwarding ``endpoint``'s NBD server to a local socket, without
    waiting for it (:func:`ready_forward` does); ``None``: use the asyncssh transport."""
    ssh = _which("ssh")
    if ssh is None:
        _log().debug("system ssh: not installed; using asyncssh")
        return None
    route = ssh_route(endpoint)
    if route.socket is not None and (":" in route.socket or route.socket.startswith("\0")):
        _log().debug("system ssh: cannot forward %r with -L; using asyncssh", route.socket)
        return None
    config = _ssh_config(ssh, endpoint)
    ciphers = preferred_ciphers(config)
    directory = _private_directory()
    if directory is None:
        _log().debug("system ssh: no short private directory for the socket; using asyncssh")
        return None
    local = os.path.join(directory, "nbd.sock")
    argv = [
        *_pdeathsig(),
        *forward_argv(ssh, endpoint, local, ciphers=ciphers, files=_home_files(config)),
    ]
    try:
        with open(os.path.join(directory, "ssh.err"), "wb") as stderr:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # no terminal: Ctrl+C is ours to handle
            )
    except OSError as exc:
        _remove(directory)
        _log().debug("system ssh: cannot run %s (%s); using asyncssh", ssh, exc)
        return None
    _log().debug("system ssh: started (pid %d)", process.pid)
    host = config.get("hostname", [route.host])[0]
    port = int(config.get("port", [str(route.port or 22)])[0])
    return Forward(_local_endpoint(endpoint, local), process, directory, endpoint, (host, port))


async def ready_forward(forward: Forward, timeout: float | None = None) -> Forward | None:
    """Wait for ``forward``'s socket (``timeout`` counted from its start): ``forward``,
    or ``None`` (closed, the reason logged) to use the asyncssh transport. Raises
    ConnectError (and closes it) when the host key differs from ``known_hosts`` or the
    login takes longer than ``timeout``."""
    try:
        reason = await _wait(forward, timeout)
        if reason is None:  # asyncssh would wait as long again: say it as it would
            assert timeout is not None
            where = _where(forward.login)
            raise ConnectError(f"ssh: timed out logging in to {where} after {timeout:g} s")
        if not reason:
            _log().debug(
                "system ssh: %s forwarded to %s (pid %d)",
                ssh_route(forward.source).target,
                forward.endpoint.socket,
                forward.process.pid,
            )
            return forward
        if any(marker in _errors(forward.directory) for marker in _MISMATCH):
            raise host_key_mismatch(*forward.login)
        _log().debug("system ssh: %s (%s); using asyncssh", reason, _last_line(forward.directory))
    except BaseException:
        forward.close()
        raise
    forward.close()
    return None


async def open_forward(endpoint: Endpoint, timeout: float | None = None) -> Forward | None:
    """Forward ``endpoint``'s NBD server to a local socket with the system ``ssh``:
    :func:`start_forward` then :func:`ready_forward`."""
    forward = start_forward(endpoint)
    return None if forward is None else await ready_forward(forward, timeout)


async def _wait(forward: Forward, timeout: float | None) -> str | None:
    """Wait until the forward's socket accepts connections: ``""``; else why not (``None``:
    ``timeout`` seconds passed since ``ssh`` started)."""
    import asyncio

    local = forward.endpoint.socket
    assert local is not None
    deadline = None if timeout is None else forward.started + timeout
    while not _listening(local):
        code = forward.process.poll()
        if code is not None:
            return _exit_reason(code)
        if deadline is not None and time.monotonic() > deadline:
            return None
        await asyncio.sleep(_POLL)
    return ""


def _exit_reason(code: int) -> str:
    if code < 0:
        return f"ssh killed by {signal.Signals(-code).name}"
    return f"ssh exited with status {code}"


def _errors(directory: str) -> str:
    """What ``ssh`` wrote on stderr."""
    try:
        with open(os.path.join(directory, "ssh.err"), errors="replace") as err:
            return err.read()
    except OSError:
        return ""


def _last_line(directory: str) -> str:
    lines = [line.strip() for line in _errors(directory).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _where(login: tuple[str, int]) -> str:
    host, port = login
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listening(path: str) -> bool:
    """``path`` is a Unix socket that ``listen()`` was called on: ssh binds it a moment
    before, and a connection in between would be refused."""
    if not os.path.exists(path):
        return False
    try:
        with open("/proc/net/unix", "rb") as table:
            lines = table.read().splitlines()
    except OSError:  # not Linux: the path is the best sign there is
        return True
    suffix = b" " + os.fsencode(path)
    for line in lines:
        if line.endswith(suffix):
            fields = line.split()
            if len(fields) > 3 and fields[3] == b"00010000":  # __SO_ACCEPTCON: listening
                return True
    return False
