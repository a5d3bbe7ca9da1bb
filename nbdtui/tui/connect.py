"""The connect screen: type an endpoint (checked as you type), pick a recent one, or the demo."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from nbdtui.errors import UriError
from nbdtui.proto.constants import DEFAULT_PORT
from nbdtui.tui.widgets.confirm import escape_markup
from nbdtui.tui.widgets.titlebar import TitleBar
from nbdtui.uri import Endpoint, parse

PLACEHOLDER = "nbd://HOST[:PORT]/EXPORT   or   nbd+unix:///EXPORT?socket=PATH"


def describe_endpoint(endpoint: Endpoint) -> list[tuple[str, str]]:
    """The parts of a parsed endpoint, as (label, value) rows for a person."""
    rows = [("transport", endpoint.transport)]
    if endpoint.user is not None:
        rows.append(("user", endpoint.user))
    if endpoint.host is not None:
        rows.append(("host", endpoint.host))
    if endpoint.transport in ("tcp", "vsock"):
        default = " (default)" if endpoint.port is None else ""
        rows.append(("port", f"{endpoint.tcp_port}{default}"))
    elif endpoint.transport == "ssh":
        rows.append(("ssh port", str(endpoint.port) if endpoint.port else "22 (default)"))
    if endpoint.socket is not None:
        rows.append(("socket", endpoint.socket))
    elif endpoint.transport == "ssh":
        rows.append(("remote", f"port {DEFAULT_PORT}"))
    rows.append(("export", repr(endpoint.export) if endpoint.export else "(none: list exports)"))
    tls = "required" if endpoint.tls else "off"
    details = [f"{k}={v}" for k, v in endpoint.tls_params]
    rows.append(("TLS", tls + (f" ({', '.join(details)})" if details else "")))
    return rows


def parsed_markup(text: str) -> tuple[str, bool]:
    """What the field holds, as markup, and whether it parses."""
    if not text.strip():
        return "[dim]Type an NBD URI; Enter connects.[/]", False
    try:
        endpoint = parse(text)
    except UriError as exc:
        return f"[b $error]✗[/] {escape_markup(str(exc))}", False
    parts = "   ".join(
        f"[dim]{label}[/] [b]{escape_markup(value)}[/]"
        for label, value in describe_endpoint(endpoint)
    )
    return f"[b $success]✓[/] {parts}\n[dim]Enter connects.[/]", True


class ConnectScreen(Screen[None]):
    """Where nbdtui starts when it is given no endpoint."""

    SUB_TITLE = "Connect"
    AUTO_FOCUS = "#uri"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "connect", "Connect", show=False),
        Binding("ctrl+o", "demo", "Demo"),
        Binding("ctrl+r", "focus_recent", "Recent"),
        Binding("delete", "forget", "Forget recent"),
        Binding("escape", "cancel", "Cancel / edit URI", show=False),
    ]

    class OpenRequested(Message):
        """The user asked to connect to ``uri``."""

        def __init__(self, uri: str) -> None:
            super().__init__()
            self.uri = uri

    class DemoRequested(Message):
        """The user asked for the demo server (started on demand)."""

    class CancelRequested(Message):
        """The user pressed Escape: stop connecting, if a connection is under way."""

    class ForgetRequested(Message):
        def __init__(self, uri: str) -> None:
            super().__init__()
            self.uri = uri

    def __init__(
        self,
        *,
        uri: str | None = None,
        recent: list[str] | None = None,
        demo_uris: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.initial_uri = uri or ""
        self.recent = list(recent or [])
        self.demo_uris = dict(demo_uris or {})

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with Vertical(id="connect-form") as form:
            form.border_title = "NBD endpoint"
            yield Input(self.initial_uri, placeholder=PLACEHOLDER, id="uri")
            yield Static(parsed_markup(self.initial_uri)[0], id="parsed")
            yield Static("", id="status")
        recent = OptionList(id="recent")
        recent.border_title = "Recent endpoints"
        yield recent
        demo = OptionList(id="demo")
        demo.border_title = "Demo (Ctrl+O)"
        yield demo
        yield Footer()

    def on_mount(self) -> None:
        self.set_recent(self.recent)
        self.set_demo(self.demo_uris)

    # ---- attributes going down

    def set_recent(self, uris: list[str]) -> None:
        self.recent = list(uris)
        options = self.query_one("#recent", OptionList)
        options.clear_options()
        if uris:
            options.add_options(Option(escape_markup(u), id=u) for u in uris)
        else:
            options.add_option(Option("[dim]none yet[/]", id="", disabled=True))

    def set_demo(self, uris: dict[str, str]) -> None:
        self.demo_uris = dict(uris)
        options = self.query_one("#demo", OptionList)
        options.clear_options()
        if not uris:
            options.add_option(
                Option("Start the embedded demo server and open it", id="start-demo")
            )
            return
        labels = {uri: name or "(default)" for name, uri in uris.items()}
        width = max(len(label) for label in labels.values())
        options.add_options(
            Option(f"[b]{escape_markup(label.ljust(width))}[/]  {escape_markup(uri)}", id=uri)
            for uri, label in labels.items()
        )

    def show_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.set_class(error, "error")
        status.update(escape_markup(text))

    @property
    def uri_text(self) -> str:
        return self.query_one("#uri", Input).value

    # ---- events

    def on_input_changed(self, event: Input.Changed) -> None:
        markup, ok = parsed_markup(event.value)
        parsed = self.query_one("#parsed", Static)
        parsed.update(markup)
        parsed.set_class(not ok and bool(event.value.strip()), "error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_connect()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        ident = event.option.id or ""
        if ident == "start-demo":
            self.action_demo()
        elif ident:
            self.query_one("#uri", Input).value = ident
            self.post_message(self.OpenRequested(ident))

    # ---- actions

    def action_connect(self) -> None:
        text = self.uri_text.strip()
        _, ok = parsed_markup(text)
        if not ok:
            self.show_status("Not a valid endpoint: fix the URI first.", error=True)
            self.query_one("#uri", Input).focus()
            return
        self.post_message(self.OpenRequested(text))

    def action_demo(self) -> None:
        self.post_message(self.DemoRequested())

    def action_focus_recent(self) -> None:
        recent = self.query_one("#recent", OptionList)
        recent.focus()
        if recent.highlighted is None and self.recent:
            recent.highlighted = 0

    def action_cancel(self) -> None:
        self.post_message(self.CancelRequested())
        self.query_one("#uri", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "forget":
            focused = self.focused
            return focused is not None and focused.id == "recent" and bool(self.recent)
        return True

    def action_forget(self) -> None:
        options = self.query_one("#recent", OptionList)
        index = options.highlighted
        if index is None:
            return
        uri = options.get_option_at_index(index).id
        if uri:
            self.post_message(self.ForgetRequested(uri))
