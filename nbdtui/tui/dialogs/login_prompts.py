"""What the SSH transport asks the person at the keyboard, asked in modals.

:class:`PromptHooks` installs the three hooks of :mod:`nbdtui.client.transport.ssh.prompts` for the
lifetime of the app (``install()`` on mount, ``restore()`` on unmount puts the previous
ones back, so that the CLI and tests are unaffected):

- passwords, keyboard-interactive answers and key passphrases: :class:`PasswordScreen`
  (the answer is never echoed unless the server asks for it; Enter submits, Escape
  cancels and the connection then fails with "… prompt was cancelled");
- an unknown host key: :class:`HostKeyScreen` (host, port, key type, fingerprint and the
  known_hosts file it would go to; No unless the user explicitly says Yes);
- notices ("added … to known_hosts"): notifications.

One modal at a time: concurrent connections that need an answer wait their turn. The
terminal itself is never read (Textual owns it).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, ClassVar, Generic, TypeVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from nbdtui.client.transport.ssh import prompts as ssh_prompts
from nbdtui.client.transport.ssh.prompts import (
    HostKeyPrompt,
    Notice,
    PasswordPrompt,
    UnknownHostKey,
)
from nbdtui.errors import PromptUnavailable
from nbdtui.tui.markup import escape_markup

__all__ = ["HostKeyScreen", "PasswordScreen", "PromptHooks", "for_the_tui"]

_CLI_HINT = "; pass --ssh-accept-new to trust it"

_BOX_CSS = """
    align: center middle;

    #prompt-box {
        width: 76;
        max-width: 95%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    #prompt-title {
        text-style: bold;
        margin: 0 0 1 0;
    }
    #prompt-buttons {
        height: auto;
        align: center middle;
        margin: 1 0 0 0;
    }
    #prompt-buttons Button {
        margin: 0 1;
    }
    .hint {
        color: $text-muted;
    }
"""


def for_the_tui(message: str) -> str:
    """An error message worded for the TUI: the CLI's ``--ssh-accept-new`` hint does not
    apply where the host-key modal asked (and the user refused)."""
    return message.replace(_CLI_HINT, " and was not trusted")


_Answer = TypeVar("_Answer")


class _AnswerScreen(ModalScreen[_Answer], Generic[_Answer]):
    """A modal whose answer also resolves ``answer`` (a Future the hook awaits)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: asyncio.Future[_Answer] | None = None

    def finish(self, value: _Answer) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(value)
        if self.is_attached and self.app.screen is self:
            self.dismiss(value)


class PasswordScreen(_AnswerScreen[str | None]):
    """Asks for a password or passphrase; dismisses with the text, or None (Escape)."""

    DEFAULT_CSS = f"PasswordScreen {{{_BOX_CSS}}}"
    AUTO_FOCUS = "#secret"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prompt: str, *, echo: bool = False) -> None:
        super().__init__()
        self.prompt = prompt
        self.echo = echo

    @property
    def kind(self) -> str:
        text = self.prompt.lower()
        return "passphrase" if "passphrase" in text else "password"

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Static(f"SSH {self.kind}", id="prompt-title")
            yield Static(escape_markup(self.prompt.strip()), id="prompt-text")
            yield Input(password=not self.echo, id="secret")
            yield Static("Enter submits · Esc cancels", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.finish(event.value)

    def action_cancel(self) -> None:
        self.finish(None)


class HostKeyScreen(_AnswerScreen[bool | None]):
    """Whether to trust (and save) a host key that known_hosts knows nothing about.

    Dismisses with True only for an explicit Yes (``y`` or the Trust button); No, Escape
    and Enter on the default button all refuse."""

    DEFAULT_CSS = f"HostKeyScreen {{{_BOX_CSS}}}"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Trust and save"),
        Binding("n", "answer(False)", "Refuse"),
        Binding("escape", "answer(False)", "Refuse"),
    ]

    def __init__(self, key: UnknownHostKey) -> None:
        super().__init__()
        self.key = key

    def compose(self) -> ComposeResult:
        key = self.key
        saved = key.known_hosts or "nowhere (UserKnownHostsFile is none): it cannot be saved"
        rows = [
            ("Host", key.host),
            ("Port", str(key.port)),
            ("Key type", key.key_type),
            ("Fingerprint", key.fingerprint),
            ("known_hosts", saved),
        ]
        width = max(len(label) for label, _ in rows)
        details = "\n".join(
            f"[dim]{label:<{width}}[/]  [b]{escape_markup(value)}[/]" for label, value in rows
        )
        with Vertical(id="prompt-box"):
            yield Static("[b $warning]Unknown SSH host key[/]", id="prompt-title")
            yield Static(details, id="host-key-details")
            yield Static(
                "\nknown_hosts has no key for this host. Check the fingerprint with the "
                "host's administrator: trust this key and save it?",
                id="prompt-text",
            )
            with Horizontal(id="prompt-buttons"):
                yield Button("Trust and save (y)", id="yes", variant="warning")
                yield Button("Refuse (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.finish(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.finish(yes)


class PromptHooks:
    """The app's answers to :mod:`nbdtui.client.transport.ssh.prompts`;
    ``install()`` returns self."""

    # App[Any]: the hooks work for any app (Textual types App.screen's app the same way).
    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self._saved: tuple[PasswordPrompt | None, HostKeyPrompt | None, Notice] | None = None
        # Any: the futures of every kind of question (a password, a host key decision).
        self._waiting: set[asyncio.Future[Any]] = set()
        self._lock = asyncio.Lock()
        self._closed = False

    def install(self) -> PromptHooks:
        # ssh_prompts has setters only; remember what was there to put it back.
        self._saved = (
            ssh_prompts._password_prompt,
            ssh_prompts._host_key_prompt,
            ssh_prompts._notice,
        )
        ssh_prompts.set_password_prompt(self.ask_password)
        ssh_prompts.set_host_key_prompt(self.ask_host_key)
        ssh_prompts.set_notice(self.notice)
        return self

    def restore(self) -> None:
        """Put the previous hooks back (unless someone replaced ours meanwhile) and fail
        every question still waiting for an answer."""
        self._closed = True
        for future in list(self._waiting):
            if not future.done():
                future.set_exception(PromptUnavailable("the terminal UI has closed"))
        if self._saved is None:
            return
        password, host_key, notice = self._saved
        self._saved = None
        if ssh_prompts._password_prompt == self.ask_password:
            ssh_prompts.set_password_prompt(password)
        if ssh_prompts._host_key_prompt == self.ask_host_key:
            ssh_prompts.set_host_key_prompt(host_key)
        if ssh_prompts._notice == self.notice:
            ssh_prompts.set_notice(notice)

    # ---- the hooks

    async def ask_password(self, prompt: str, echo: bool) -> str:
        screen = PasswordScreen(prompt, echo=echo)
        answer = await self._ask(screen)
        if answer is None:
            raise PromptUnavailable(f"the {screen.kind} prompt was cancelled")
        return answer

    async def ask_host_key(self, key: UnknownHostKey) -> bool:
        if getattr(self.app, "ssh_accept_new", False):
            return True  # --ssh-accept-new
        trusted = await self._ask(HostKeyScreen(key))
        return bool(trusted)

    def notice(self, message: str) -> None:
        if threading.get_ident() == getattr(self.app, "_thread_id", None):
            self.app.notify(message, title="SSH", timeout=6)
        else:
            self.app.call_from_thread(self.app.notify, message, title="SSH", timeout=6)

    # ---- one modal at a time

    async def _ask(self, screen: _AnswerScreen[_Answer | None]) -> _Answer | None:
        if self._closed or not self.app.is_running:
            raise PromptUnavailable("the terminal UI is not running")
        async with self._lock:
            if self._closed:
                raise PromptUnavailable("the terminal UI has closed")
            answer: asyncio.Future[_Answer | None] = asyncio.get_running_loop().create_future()
            screen.answer = answer
            self._waiting.add(answer)
            try:
                # Pushed from the app's own message loop: a hook may run in a task that
                # is not the app's (a passphrase is asked from asyncssh's key thread).
                self.app.call_later(self.app.push_screen, screen)
                return await answer
            finally:
                self._waiting.discard(answer)
                if answer.cancelled() or not answer.done():  # the connection gave up
                    answer.cancel()
                    self._take_down(screen)

    def _take_down(self, screen: _AnswerScreen[_Answer | None]) -> None:
        def dismiss() -> None:
            if screen.is_attached and self.app.screen is screen:
                screen.dismiss(None)

        with contextlib.suppress(Exception):
            self.app.call_later(dismiss)
