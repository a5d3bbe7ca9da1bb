"""A one-line title: ``nbdtui — <what this screen shows>`` (the screen's sub_title)."""

from __future__ import annotations

from textual.widgets import Static

from nbdtui.tui.markup import escape_markup


class TitleBar(Static):
    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        width: 100%;
        height: 1;
        background: $panel;
        color: $foreground;
        content-align: center middle;
        text-style: bold;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.screen, "sub_title", self._show, init=True)

    def _show(self) -> None:
        sub_title = self.screen.sub_title
        # The sub_title often holds an export name or a path: never markup.
        title = escape_markup(self.app.title)
        self.update(f"{title} — {escape_markup(sub_title)}" if sub_title else title)
