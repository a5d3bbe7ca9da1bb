"""What the SSH transport asks the person at the keyboard, and how; no asyncssh here.

Three process-wide hooks, replaceable by a UI (the TUI installs modals):

``password prompt``
    ``async (prompt: str, echo: bool) -> str | None`` (a plain function works too).
    Asked for SSH passwords, keyboard-interactive answers and key passphrases;
    ``None`` means "cancel". It may raise :class:`PromptUnavailable` to say it cannot
    ask at all (the connection then fails with that reason). The default,
    :func:`terminal_password_prompt`, reads from the terminal without echo, and only when
    standard input is a terminal.
``host key prompt``
    ``async (key: UnknownHostKey) -> bool``: trust (and save to ``known_hosts``) a host
    key when ``known_hosts`` has *no* key for that host. Default: none, every unknown
    key is refused. ``--ssh-accept-new`` installs one that always says yes (OpenSSH's
    ``StrictHostKeyChecking=accept-new``). A key that differs from a known one is
    refused whatever the hook would say.
``notice``
    ``(message: str) -> None``: things the user must be told although nothing failed
    ("added … to known_hosts"). Default: one line on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import sys
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nbdtui.errors import PromptUnavailable

__all__ = [
    "HostKeyPrompt",
    "PasswordPrompt",
    "PromptUnavailable",
    "UnknownHostKey",
    "accept_new_host_keys",
    "ask_host_key",
    "ask_password",
    "notify",
    "set_host_key_prompt",
    "set_notice",
    "set_password_prompt",
    "terminal_password_prompt",
]


@dataclass(frozen=True)
class UnknownHostKey:
    """A host key that ``known_hosts`` has nothing about."""

    host: str
    port: int
    key_type: str  # "ED25519", "RSA", ...
    fingerprint: str  # "SHA256:..."
    known_hosts: str | None  # the file it would be saved to (None: nowhere)


PasswordPrompt = Callable[[str, bool], "Awaitable[str | None] | str | None"]
HostKeyPrompt = Callable[[UnknownHostKey], "Awaitable[bool] | bool"]
Notice = Callable[[str], None]


def _stderr_notice(message: str) -> None:
    print(f"nbdtui: {message}", file=sys.stderr, flush=True)


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def terminal_password_prompt(prompt: str, echo: bool = False) -> str | None:
    """Read one line from the terminal (``/dev/tty``, else stdin), without echo unless
    ``echo``. Raises PromptUnavailable when stdin is not a terminal. Cancellation (Ctrl+C)
    restores the terminal."""
    if not sys.stdin or not sys.stdin.isatty():
        raise PromptUnavailable("stdin is not a terminal")
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    async with lock:  # one question at a time
        return await _read_tty_line(prompt, echo)


async def _read_tty_line(prompt: str, echo: bool) -> str | None:
    import termios

    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        owned = True
    except OSError:
        fd, owned = sys.stdin.fileno(), False
    out = fd if owned else sys.stderr.fileno()
    loop = asyncio.get_running_loop()
    old = termios.tcgetattr(fd)
    try:
        if not echo:
            new = list(old)
            new[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSAFLUSH, new)
        os.write(out, prompt.encode())
        line = bytearray()
        done: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                chunk = os.read(fd, 1024)
            except OSError as exc:
                if not done.done():
                    done.set_exception(exc)
                return
            line.extend(chunk)
            if (not chunk or b"\n" in chunk) and not done.done():
                done.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await done
        finally:
            loop.remove_reader(fd)
        if not line.endswith(b"\n"):
            return None  # end of input (Ctrl+D)
        return line.rstrip(b"\r\n").decode(errors="replace")
    finally:
        with contextlib.suppress(OSError):
            termios.tcsetattr(fd, termios.TCSAFLUSH, old)
            if not echo:
                os.write(out, b"\n")
        if owned:
            os.close(fd)


_password_prompt: PasswordPrompt | None = terminal_password_prompt
_host_key_prompt: HostKeyPrompt | None = None
_notice: Notice = _stderr_notice


def set_password_prompt(hook: PasswordPrompt | None) -> None:
    """Install the password/passphrase prompt (``None``: never ask, authentication fails)."""
    global _password_prompt
    _password_prompt = hook


def set_host_key_prompt(hook: HostKeyPrompt | None) -> None:
    """Install the prompt that may trust an unknown host key (``None``: refuse them all)."""
    global _host_key_prompt
    _host_key_prompt = hook


def accept_new_host_keys(enabled: bool = True) -> None:
    """Trust and save keys of hosts that ``known_hosts`` does not know (``--ssh-accept-new``)."""
    set_host_key_prompt(_always if enabled else None)


def _always(key: UnknownHostKey) -> bool:
    return True


def set_notice(hook: Notice | None) -> None:
    """Install where notices go (``None``: back to stderr)."""
    global _notice
    _notice = hook or _stderr_notice


async def ask_password(prompt: str, echo: bool = False) -> str | None:
    """Ask through the installed hook; raises PromptUnavailable if none can ask."""
    hook = _password_prompt
    if hook is None:
        raise PromptUnavailable("no password prompt is available")
    answer = hook(prompt, echo)
    if inspect.isawaitable(answer):
        answer = await answer
    return answer


async def ask_host_key(key: UnknownHostKey) -> bool:
    """True when the installed hook trusts ``key`` (False when there is none)."""
    hook = _host_key_prompt
    if hook is None:
        return False
    answer = hook(key)
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)


def notify(message: str) -> None:
    _notice(message)
