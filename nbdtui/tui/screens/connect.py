"""The connect screen: type an endpoint (checked as you type), pick a recent one, or the demo.

An optional "via SSH" field (``[user@]host[:port]``, what ``--ssh`` is on the command
line) reaches an ``nbd://`` or ``nbd+unix://`` endpoint through that SSH host; the
summary then shows the SSH hop and the ``nbd+ssh://`` URI that is opened (and
remembered)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from nbdtui.client.transport.ssh.endpoint import ssh_route, tunnel_endpoint
from nbdtui.errors import UriError
from nbdtui.present.describe import tls_state
from nbdtui.proto.client_events import Negotiated
from nbdtui.tui.markup import escape_markup
from nbdtui.tui.widgets.titlebar import TitleBar
from nbdtui.uri import Endpoint, parse, parse_ssh_target

PLACEHOLDER = "nbd://HOST[:PORT]/EXPORT   or   nbd+unix:///EXPORT?socket=PATH"
SSH_PLACEHOLDER = "via SSH (optional): [USER@]HOST[:PORT]   tunnels nbd:// and nbd+unix://"
_FALSE = frozenset({"0", "false", "no", "off"})


def tls_unverified(endpoint: Endpoint) -> bool:
    """Whether the URI turns certificate verification off (``tls-verify-peer=false``)."""
    value = endpoint.tls_param("tls-verify-peer")
    return endpoint.tls and value is not None and value.lower() in _FALSE


def effective_endpoint(text: str, via: str = "") -> Endpoint:
    """What ``text`` names, reached through the SSH host ``via`` when one is given
    (then an ``nbd+ssh`` endpoint). Raises UriError."""
    endpoint = parse(text)
    if not via.strip():
        return endpoint
    try:
        target = parse_ssh_target(via)
    except UriError as exc:
        raise UriError(f"via SSH: {exc}") from None
    try:
        return tunnel_endpoint(endpoint, target)
    except UriError as exc:
        raise UriError(str(exc).replace("--ssh", "'via SSH'")) from None


def describe_endpoint(endpoint: Endpoint) -> list[tuple[str, str]]:
    """The parts of a parsed endpoint, as (label, value) rows for a person."""
    rows = [("transport", endpoint.transport)]
    if endpoint.transport == "ssh":
        rows += _ssh_rows(endpoint)
    else:
        if endpoint.user is not None:
            rows.append(("user", endpoint.user))
        if endpoint.host is not None:
            rows.append(("host", endpoint.host))
        if endpoint.transport in ("tcp", "vsock"):
            default = " (default)" if endpoint.port is None else ""
            rows.append(("port", f"{endpoint.tcp_port}{default}"))
        if endpoint.socket is not None:
            rows.append(("socket", endpoint.socket))
    rows.append(("export", repr(endpoint.export) if endpoint.export else "(none: list exports)"))
    tls = "required" if endpoint.tls else "off"
    if tls_unverified(endpoint):
        tls += ", server NOT verified"
    details = [f"{k}={v}" for k, v in endpoint.tls_params]
    rows.append(("TLS", tls + (f" ({', '.join(details)})" if details else "")))
    return rows


def _ssh_rows(endpoint: Endpoint) -> list[tuple[str, str]]:
    """The SSH hop of an nbd+ssh endpoint; raises UriError for a bad ``x-`` parameter."""
    route = ssh_route(endpoint)
    rows = [
        ("ssh host", route.host),
        ("ssh port", str(route.port) if route.port else "ssh_config or 22"),
        ("ssh user", route.user if route.user is not None else "ssh_config or login name"),
    ]
    if route.socket is not None:
        rows.append(("remote socket", route.socket))
    else:
        rows.append(("remote", f"{route.target} (as the SSH host sees it)"))
    if route.accept_new_host_key:
        rows.append(("host key", "a new one is trusted and saved"))
    return rows


def parsed_markup(text: str, via: str = "") -> tuple[str, bool]:
    """What the fields hold (the URI, and the optional SSH host to go through), as
    markup, and whether they parse."""
    if not text.strip():
        if via.strip():
            try:
                parse_ssh_target(via)
            except UriError as exc:
                return f"[b $error]✗[/] via SSH: {escape_markup(str(exc))}", False
        return "[dim]Type an NBD URI; Enter connects.[/]", False
    try:
        endpoint = effective_endpoint(text, via)
        rows = describe_endpoint(endpoint)
    except UriError as exc:
        return f"[b $error]✗[/] {escape_markup(str(exc))}", False
    unverified = tls_unverified(endpoint)
    parts = "   ".join(
        f"[dim]{label}[/] "
        + ("[b $warning]" if label == "TLS" and unverified else "[b]")
        + f"{escape_markup(value)}[/]"
        for label, value in rows
    )
    tunnel = ""
    if via.strip():
        tunnel = f"\n[dim]opens[/] {escape_markup(endpoint.uri)}"
    return f"[b $success]✓[/] {parts}{tunnel}\n[dim]Enter connects.[/]", True


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
        """The user asked to connect to ``uri`` (through the SSH host ``via``, if any)."""

        def __init__(self, uri: str, via: str | None = None) -> None:
            super().__init__()
            self.uri = uri
            self.via = via

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
        via: str | None = None,
    ) -> None:
        super().__init__()
        self.initial_uri = uri or ""
        self.initial_via = via or ""
        self.recent = list(recent or [])
        self.demo_uris = dict(demo_uris or {})

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with Vertical(id="connect-form") as form:
            form.border_title = "NBD endpoint"
            yield Input(self.initial_uri, placeholder=PLACEHOLDER, id="uri")
            yield Input(self.initial_via, placeholder=SSH_PLACEHOLDER, id="ssh")
            yield Static(parsed_markup(self.initial_uri, self.initial_via)[0], id="parsed")
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

    def show_opened(self, name: str, endpoint: Endpoint, negotiated: Negotiated) -> None:
        """The status line after an export opened: where, and its TLS state in
        :func:`nbdtui.present.describe.tls_state`'s words (unverified TLS stands out)."""
        state = tls_state(negotiated.tls, negotiated.tls_verified)
        style = "$warning" if negotiated.tls and not negotiated.tls_verified else "$success"
        status = self.query_one("#status", Static)
        status.set_class(False, "error")
        status.update(
            f"Opened {escape_markup(name)} on {escape_markup(endpoint.display)}: "
            f"[b {style}]{state}[/]"
        )

    @property
    def uri_text(self) -> str:
        return self.query_one("#uri", Input).value

    @property
    def via_text(self) -> str:
        """The "via SSH" field: ``[user@]host[:port]``, or empty."""
        return self.query_one("#ssh", Input).value

    # ---- events

    def on_input_changed(self, event: Input.Changed) -> None:
        markup, ok = parsed_markup(self.uri_text, self.via_text)
        parsed = self.query_one("#parsed", Static)
        parsed.update(markup)
        parsed.set_class(not ok and markup.startswith("[b $error]"), "error")
        status = self.query_one("#status", Static)
        if ok and status.has_class("error"):  # the error was about what is typed no more
            self.show_status("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_connect()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        ident = event.option.id or ""
        if ident == "start-demo":
            self.action_demo()
        elif ident:  # a recent or demo URI is opened as it is (nbd+ssh:// if tunnelled)
            self.query_one("#ssh", Input).value = ""
            self.query_one("#uri", Input).value = ident
            self.post_message(self.OpenRequested(ident))

    # ---- actions

    def action_connect(self) -> None:
        text, via = self.uri_text.strip(), self.via_text.strip()
        _, ok = parsed_markup(text, via)
        if not ok:
            self.show_status("Not a valid endpoint: fix the URI first.", error=True)
            try:
                effective_endpoint(text)
            except UriError:
                self.query_one("#uri", Input).focus()
            else:
                self.query_one("#ssh", Input).focus()  # the URI is fine: the SSH host is not
            return
        self.post_message(self.OpenRequested(text, via or None))

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
