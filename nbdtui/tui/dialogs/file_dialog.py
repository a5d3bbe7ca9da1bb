"""Ctrl+E and Ctrl+L in the hex editor: save a range to a local file, load a local file
into a range. The dialog runs the transfer itself, so that an error (a bad range, a
missing file, a read error) is one line in it, under the fields, and nothing is lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from nbdtui.errors import NbdError
from nbdtui.tui.dialogs.dialog_css import dialog_css
from nbdtui.tui.markup import escape_markup as escape

# Runs the transfer: (path, range text) -> the message to show once done; raises
# ValueError, OSError or NbdError with a message for the dialog.
Transfer = Callable[[str, str], Awaitable[str]]


class FileDialog(ModalScreen[str | None]):
    """A path and a range; Enter runs ``transfer``; dismisses with its message."""

    DEFAULT_CSS = dialog_css("FileDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, transfer: Transfer, *, path: str = "", range_text: str = "", hint: str
    ) -> None:
        super().__init__()
        self.title_text, self.transfer = title, transfer
        self.path, self.range_text, self.hint = path, range_text, hint
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(escape(self.title_text), classes="title")
            yield Label("File")
            yield Input(self.path, placeholder="/path/to/file.bin", id="file-path")
            yield Label("Range")
            yield Input(
                self.range_text, placeholder="s0+s1, 0x200..0x3ff, 0x1be+64", id="file-range"
            )
            yield Label("", id="file-error", classes="error")
            yield Label(escape(self.hint), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.running:
            self._run()

    def on_input_changed(self) -> None:
        self.query_one("#file-error", Label).update("")

    def action_cancel(self) -> None:
        self.workers.cancel_all()
        self.dismiss(None)

    @work(exclusive=True, exit_on_error=False)
    async def _run(self) -> None:
        path = self.query_one("#file-path", Input).value.strip()
        error = self.query_one("#file-error", Label)
        if not path:
            error.update("Type the path of a local file.")
            return
        self.running = True
        error.update("working…")
        try:
            message = await self.transfer(path, self.query_one("#file-range", Input).value)
        except (ValueError, OSError, NbdError) as exc:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, OSError) and exc.filename and exc.strerror:
                text = f"{exc.filename}: {exc.strerror}"
            error.update(escape(text))
            return
        finally:
            self.running = False
        self.dismiss(message)
