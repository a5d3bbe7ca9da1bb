"""Logging in to an SSH host the way OpenSSH does, with asyncssh.

:func:`resolve_login` reads what ``~/.ssh/config`` makes of a route (HostName, Port,
User, known_hosts files); :class:`SshClient` is the asyncssh client that checks the host
key against them (recording *why* a key was refused: unknown or different) and asks for
passwords, keyboard-interactive answers and key passphrases through
:mod:`nbdtui.client.transport.ssh.prompts`; :func:`trust_new_key` asks whether to trust
a host key that ``known_hosts`` does not know and saves it (:func:`save_host_key`);
:func:`connect_error` turns asyncssh's failures into one-line
:class:`~nbdtui.errors.ConnectError` messages starting ``ssh:``. Used by
:mod:`nbdtui.client.transport.ssh.tunnel` (imported lazily: this module imports asyncssh).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket as socketlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from nbdtui.client.transport.ssh.endpoint import SshRoute, host_key_mismatch
from nbdtui.client.transport.ssh.prompts import (
    UnknownHostKey,
    ask_host_key,
    ask_password,
    notify,
)
from nbdtui.errors import ConnectError, NbdError, PromptUnavailable

__all__ = [
    "Login",
    "SshClient",
    "connect_error",
    "hostport",
    "key_type",
    "resolve_login",
    "save_host_key",
    "trust_new_key",
]

PASSWORD_ATTEMPTS = 3


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def key_type(key: asyncssh.SSHKey) -> str:
    name = key.get_algorithm()
    name = name.removeprefix("ssh-").split("-")[0]
    return name.upper()


# ---- login: what ssh_config makes of the route ----------------------------------------


@dataclass
class Login:
    """An SSH route resolved through ssh_config: for known_hosts and for messages."""

    host: str  # HostName
    port: int
    user: str
    known_hosts_files: list[str]  # readable files to check against
    save_to: str | None  # where a newly trusted key goes
    ciphers: Sequence[str] = ()  # () = ssh_config's Ciphers, else our preference

    @property
    def where(self) -> str:
        return hostport(self.host, self.port)

    def known_hosts(self) -> asyncssh.SSHKnownHosts:
        """Every entry of the known_hosts files; like OpenSSH, a bad line is skipped."""
        known = asyncssh.SSHKnownHosts()
        for path in self.known_hosts_files:
            try:
                text = Path(path).read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                with contextlib.suppress(ValueError, asyncssh.KeyImportError):
                    known.load(line)
        return known


async def resolve_login(route: SshRoute, config: str | None) -> Login:
    options = await asyncssh.SSHClientConnectionOptions.construct(
        host=route.host,
        port=route.port if route.port is not None else (),
        username=route.user if route.user is not None else (),
        config=[config] if config else None,
        client_keys=None,
        agent_path=None,
    )
    # OpenSSH's defaults; "none" (an empty list) means no file at all.
    user_files = options.config.get("UserKnownHostsFile", ["~/.ssh/known_hosts"])
    global_files = options.config.get("GlobalKnownHostsFile", ["/etc/ssh/ssh_known_hosts"])
    user_files = [os.path.expanduser(str(p)) for p in user_files]
    files = user_files + [os.path.expanduser(str(p)) for p in global_files]
    save_to = user_files[0] if user_files else None
    readable = [f for f in files if os.path.isfile(f) and os.access(f, os.R_OK)]
    return Login(
        host=options.host,
        port=options.port,
        user=options.username,
        known_hosts_files=readable,
        save_to=save_to,
        ciphers=() if options.config.get("Ciphers") else _cipher_preference(),
    )


def _cipher_preference() -> Sequence[str]:
    """asyncssh's default ciphers with AES-GCM first: its ChaCha20-Poly1305 runs three
    cipher contexts per packet in Python and moves half as many bytes per second."""
    try:
        from asyncssh.encryption import get_default_encryption_algs

        algs = [alg.decode() for alg in get_default_encryption_algs()]
    except Exception:  # pragma: no cover - a future asyncssh without it
        return ()
    gcm = [alg for alg in algs if "-gcm@" in alg]
    return gcm + [alg for alg in algs if alg not in gcm]


def save_host_key(login: Login, host: str, port: int, key: asyncssh.SSHKey) -> str:
    assert login.save_to is not None
    path = Path(login.save_to)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pattern = host if port == 22 else f"[{host}]:{port}"
    alg, data = key.export_public_key("openssh").split()[:2]
    line = f"{pattern} {alg.decode()} {data.decode()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        if f.tell() > 0:
            with path.open("rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    f.write("\n")
        f.write(line)
    return str(path)


# ---- the asyncssh client: host keys and prompts ---------------------------------------


class SshClient(asyncssh.SSHClient):
    """Records why a host key was refused and asks for secrets through the prompt hook."""

    def __init__(self, login: Login, loop: asyncio.AbstractEventLoop) -> None:
        self.login = login
        self.loop = loop
        self.known = login.known_hosts()
        self.refused: str | None = None  # "mismatch" | "unknown"
        self.refused_key: asyncssh.SSHKey | None = None
        self.refused_at: tuple[str, int] = (login.host, login.port)
        self.prompt_problem: str | None = None
        self.passwords_asked = 0
        self.on_lost: Callable[[], None] | None = None
        self.on_prompt: Callable[[bool], None] | None = None  # a prompt opens / closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost()

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # Called only for a key that known_hosts does not list for this host.
        trusted = self.known.match(host, addr, None if port == 22 else port)[0]
        self.refused = "mismatch" if trusted else "unknown"
        self.refused_key = key
        self.refused_at = (host, port)
        return False

    async def _ask(self, prompt: str, echo: bool) -> str | None:
        if self.on_prompt is not None:
            self.on_prompt(True)
        try:
            return await ask_password(prompt, echo)
        except PromptUnavailable as exc:
            self.prompt_problem = str(exc)
            return None
        finally:
            if self.on_prompt is not None:
                self.on_prompt(False)

    async def password_auth_requested(self) -> str | None:
        if self.prompt_problem or self.passwords_asked >= PASSWORD_ATTEMPTS:
            return None
        self.passwords_asked += 1
        if self.passwords_asked > 1:
            notify("permission denied, please try again")
        return await self._ask(f"{self.login.user}@{self.login.host}'s password: ", False)

    def kbdint_auth_requested(self) -> str | None:
        return None if self.prompt_problem else ""

    async def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Sequence[tuple[str, bool]]
    ) -> list[str] | None:
        if not prompts:
            return []
        if instructions:
            notify(instructions.strip())
        answers: list[str] = []
        for prompt, echo in prompts:
            answer = await self._ask(prompt, echo)
            if answer is None:
                return None
            answers.append(answer)
        return answers

    def passphrase(self, filename: str) -> str | None:
        """asyncssh's passphrase callback; runs in a worker thread (key loading, signing).

        Asks up to three times (checking each answer) and returns the passphrase, or None
        after recording why in ``prompt_problem`` (the key is then skipped)."""
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            return None  # called on the loop's own thread: it cannot wait for the prompt
        if _needs_bcrypt(filename):
            self.prompt_problem = (
                f"key {filename} is encrypted and decrypting it needs the Python package "
                "bcrypt (or add the key to ssh-agent)"
            )
            return None
        for attempt in range(PASSWORD_ATTEMPTS):
            prompt = "Bad passphrase, try again" if attempt else "Enter passphrase"
            future = asyncio.run_coroutine_threadsafe(
                self._ask(f"{prompt} for key '{filename}': ", False), self.loop
            )
            answer = future.result()
            if answer is None:
                if self.prompt_problem:
                    self.prompt_problem = f"key {filename} is encrypted and {self.prompt_problem}"
                return None
            try:
                asyncssh.read_private_key(filename, answer)
            except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
                text = str(exc)
                if (
                    "ncorrect passphrase" in text
                    or "Unable to decrypt" in text
                    or _wrong_passphrase_looks_corrupt(filename)
                ):
                    continue
                self.prompt_problem = f"cannot decrypt key {filename}: {text}"
                return None
            except OSError:
                pass  # asyncssh read it a moment ago; let it report the problem
            return answer
        self.prompt_problem = f"wrong passphrase for key {filename}"
        return None


def _wrong_passphrase_looks_corrupt(filename: str) -> bool:
    """True for PEM and PKCS#8 keys encrypted with a passphrase: their ciphers carry no
    check, so a wrong passphrase now and then gets past the padding and then fails to
    decode ("Invalid PEM private key") instead of saying "Incorrect passphrase"."""
    try:
        with open(filename, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"Proc-Type: 4,ENCRYPTED" in head or b"BEGIN ENCRYPTED PRIVATE KEY" in head


def _needs_bcrypt(filename: str) -> bool:
    """An OpenSSH-format key (encrypted, or asyncssh would not ask) without bcrypt."""
    import importlib.util

    if importlib.util.find_spec("bcrypt") is not None:
        return False
    try:
        with open(filename, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")


# ---- trusting a new host key ----------------------------------------------------------


async def trust_new_key(client: SshClient, route: SshRoute) -> bool:
    """After ``client`` refused a host key that known_hosts has nothing about: ask whether
    to trust it (unless the route accepts new keys) and save it if so. True when it is in
    known_hosts now (log in again); ConnectError when it cannot be saved."""
    key = client.refused_key
    if client.refused != "unknown" or key is None:
        return False
    host, port = client.refused_at
    login = client.login
    unknown = UnknownHostKey(
        host=host,
        port=port,
        key_type=key_type(key),
        fingerprint=key.get_fingerprint(),
        known_hosts=login.save_to,
    )
    if not route.accept_new_host_key:
        # Like a password prompt, time spent reading the fingerprint does not count
        # against the connect timeout.
        if client.on_prompt is not None:
            client.on_prompt(True)
        try:
            trusted = await ask_host_key(unknown)
        finally:
            if client.on_prompt is not None:
                client.on_prompt(False)
        if not trusted:
            return False
    if login.save_to is None:
        return False  # UserKnownHostsFile none: nowhere to remember it
    try:
        path = save_host_key(login, host, port, key)
    except OSError as exc:
        raise ConnectError(
            f"ssh: cannot add the host key of {hostport(host, port)} to "
            f"{login.save_to}: {exc.strerror or exc}"
        ) from None
    login.known_hosts_files = list(dict.fromkeys([*login.known_hosts_files, path]))
    notify(f"added {hostport(host, port)} ({unknown.key_type} {unknown.fingerprint}) to {path}")
    return True


# ---- errors ----------------------------------------------------------------------------


def connect_error(exc: BaseException, login: Login, client: SshClient | None) -> NbdError:
    where = login.where
    if isinstance(exc, NbdError):
        return exc
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        if client is not None and client.refused is not None:
            host, port = client.refused_at
            shown = hostport(host, port)
            if client.refused == "mismatch":
                return host_key_mismatch(host, port)
            key = client.refused_key
            fingerprint = f" ({key_type(key)} {key.get_fingerprint()})" if key else ""
            return ConnectError(
                f"ssh: host key for {shown}{fingerprint} is not in known_hosts; "
                "pass --ssh-accept-new to trust it"
            )
        return ConnectError(f"ssh: host key for {where} is not trusted: {exc.reason}")
    if isinstance(exc, asyncssh.PermissionDenied):
        why = f" ({client.prompt_problem})" if client and client.prompt_problem else ""
        return ConnectError(f"ssh: authentication failed for {login.user}@{login.host}{why}")
    if isinstance(exc, asyncssh.KeyImportError | asyncssh.KeyExportError):
        why = client.prompt_problem if client and client.prompt_problem else str(exc)
        return ConnectError(f"ssh: cannot use a key for {login.user}@{login.host}: {why}")
    if isinstance(exc, asyncssh.KeyExchangeFailed):
        return ConnectError(f"ssh: key exchange with {where} failed: {exc.reason}")
    if isinstance(exc, asyncssh.ChannelOpenError):  # ProxyJump could not reach the host
        return ConnectError(f"ssh: jump host could not reach {where}: {exc.reason}")
    if isinstance(exc, asyncssh.DisconnectError):
        return ConnectError(f"ssh: {where} closed the connection: {exc.reason}")
    if isinstance(exc, asyncssh.ConfigParseError):
        return ConnectError(f"ssh: bad ssh config: {exc}")
    if isinstance(exc, TimeoutError):
        return ConnectError(f"ssh: timed out connecting to {where}")
    if isinstance(exc, socketlib.gaierror):
        return ConnectError(f"ssh: cannot resolve host '{login.host}': {exc.strerror}")
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError) and "[Errno 111]" in str(exc)
    ):
        return ConnectError(f"ssh: connection refused by {where}")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return ConnectError(f"ssh: cannot connect to {where}: {reason}")
    return ConnectError(f"ssh: cannot connect to {where}: {exc}")
