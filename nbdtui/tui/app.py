"""The nbdtui App: screens, one mode per open export, and ``run_app`` for the CLI.

Modes: ``main`` holds the connect screen (and the server screen on top of it); every
open export gets a mode of its own (``export-N``) whose base is its ExportScreen, so
each keeps its own stack (the editor on top) when you switch among them (F3).

Every network call runs in a worker on the app's event loop; failures become
notifications (and a line on the connect screen), never a traceback.

A screen reports unsaved work through ``has_pending_edits()`` (or a ``pending_edits``
count); quitting or closing an export asks first when any screen has some.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from nbdtui.errors import (
    ExportNotFoundError,
    HandshakeError,
    NbdError,
    TLSRequiredError,
    UriError,
)
from nbdtui.present.terminal_text import terminal_text
from nbdtui.tui import collector
from nbdtui.tui.dialogs.confirm import ConfirmDialog
from nbdtui.tui.dialogs.login_prompts import PromptHooks, for_the_tui
from nbdtui.tui.dialogs.switcher import SwitcherScreen
from nbdtui.tui.markup import shown_name
from nbdtui.tui.screens.connect import ConnectScreen
from nbdtui.tui.screens.export_info import ExportScreen
from nbdtui.tui.screens.fleet import FleetScreen
from nbdtui.tui.screens.help import HelpScreen, class_bindings
from nbdtui.tui.screens.pool_monitor import PoolScreen
from nbdtui.tui.screens.remote_exports import ServerScreen
from nbdtui.tui.session import Session
from nbdtui.uri import Endpoint, parse

if TYPE_CHECKING:
    from nbdtui.client.export import Export
    from nbdtui.editor.bookmarks import Bookmarks
    from nbdtui.editor.journal import Journal
    from nbdtui.proto.client_events import ExportsListed
    from nbdtui.server.demo_exports import DemoThread
    from nbdtui.tui.history import History

MAIN = "main"


# An interactive session rides out a dropped connection: it reconnects for this long and
# sends the unanswered requests again (the pool screen shows "reconnecting").
RECONNECT_DELAY = 30.0


# Screen[Any]: a mode's stack holds screens of any result type (Textual's own typing).
def pending_edits_of(screen: Screen[Any]) -> int:
    """How many pending edits ``screen`` reports (0 when it has none or cannot tell): its
    ``pending_edits`` count when it has one, else 1 when ``has_pending_edits()``."""
    value = getattr(screen, "pending_edits", None)
    probe = getattr(screen, "has_pending_edits", None)
    if value is None and callable(probe):
        return 1 if probe() else 0
    if callable(value):
        value = value()
    if value is None or isinstance(value, bool):
        return int(bool(value))
    try:
        return len(value) if hasattr(value, "__len__") else int(value)
    except (TypeError, ValueError):
        return 0


def _message(exc: BaseException) -> str:
    if isinstance(exc, NbdError):
        return for_the_tui(str(exc))
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"unexpected error: {exc!r}"


class NbdtuiApp(App[int]):
    """The terminal UI. Build it with :func:`create_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "nbdtui"
    DEFAULT_MODE = MAIN

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("f2", "pool", "Connections"),
        Binding("f3", "exports", "Exports"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        uri: str | None = None,
        *,
        demo_uris: dict[str, str] | None = None,
        history: History | None = None,
        connect_timeout: float = 10.0,
        window: int = 16,
        journal: Journal | None = None,
        ssh: str | None = None,
        ssh_accept_new: bool = False,
        reconnect_delay: float = RECONNECT_DELAY,
        inventory: str | None = None,
    ) -> None:
        super().__init__()
        self.start_uri = uri
        self.inventory = inventory  # --inventory FILE: the fleet screen opens first
        self.start_ssh = ssh  # "[user@]host[:port]" to reach start_uri through (--ssh)
        # --ssh-accept-new: unknown SSH host keys are trusted and saved without asking
        self.ssh_accept_new = ssh_accept_new
        self._prompts: PromptHooks | None = None
        self._ssh_logins: dict[tuple[object, ...], contextlib.AsyncExitStack] = {}
        self.demo_uris = dict(demo_uris or {})
        self.connect_timeout = connect_timeout
        self.window = window
        self.reconnect_delay = reconnect_delay
        self.journal: Journal | Literal[False] | None = journal  # False: cannot open one
        self.sessions: dict[str, Session] = {}
        self._history: History | Literal[False] | None = history  # False: none possible
        self._bookmarks: Bookmarks | Literal[False] | None = None  # False: none possible
        self._modes_made = itertools.count(1)
        self._demo: DemoThread | None = None
        self.add_mode(MAIN, self._make_connect_screen)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification is plain text: its message often quotes a server (an export
        name, an error message), so neither markup nor control characters act."""
        super().notify(
            terminal_text(message, backslash=False),
            title=terminal_text(title, backslash=False),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    # ---- history (recent endpoints)

    @property
    def history(self) -> History | None:
        if self._history is None:
            try:
                from nbdtui.tui.history import History

                self._history = History()
            except Exception as exc:  # a read-only home must not stop the app
                self._history = False
                self.notify(f"recent endpoints are not remembered: {exc}", severity="warning")
        if self._history and self._history.warning:  # a file of another layout, set aside
            self.notify(self._history.warning, severity="warning", timeout=10)
            self._history.warning = None
        return self._history or None

    def recent_uris(self) -> list[str]:
        history = self.history
        return [entry.uri for entry in history.recent()] if history else []

    def _is_demo(self, uri: str) -> bool:
        """Whether ``uri`` is served by the demo server (its socket does not outlive us)."""
        try:
            where = parse(uri).with_export("")
            return any(parse(u).with_export("") == where for u in self.demo_uris.values())
        except UriError:
            return False

    def _remember(self, uri: str) -> None:
        history = self.history
        if history is None or self._is_demo(uri):
            return
        try:
            history.remember(uri)
        except Exception as exc:
            self.notify(f"could not remember {uri}: {exc}", severity="warning")
            return
        self.connect_screen.set_recent(self.recent_uris())

    # ---- screens

    def _make_connect_screen(self) -> ConnectScreen:
        return ConnectScreen(
            uri=self.start_uri,
            recent=self.recent_uris(),
            demo_uris=self.demo_uris,
            via=self.start_ssh,
        )

    @property
    def connect_screen(self) -> ConnectScreen:
        return self.get_screen_stack(MAIN)[0]  # type: ignore[return-value]

    def on_mount(self) -> None:
        # SSH passwords, passphrases and unknown host keys are asked in modals.
        self._prompts = PromptHooks(self).install()
        collector.freeze()  # no full collection walks the imports again (a 35-80 ms frame)
        if self.inventory:
            self.show_fleet(self.inventory)
        if self.start_uri:
            self.open_target(self.start_uri, self.start_ssh)

    async def on_unmount(self) -> None:
        collector.thaw()
        if self._prompts is not None:
            self._prompts.restore()
        await self.close_all()
        for login in self._ssh_logins.values():
            with contextlib.suppress(Exception):
                await login.aclose()
        if self._demo is not None:
            await asyncio.to_thread(self._demo.stop)
        for store in (self._history, self.journal, self._bookmarks):
            if store:
                with contextlib.suppress(Exception):
                    store.close()

    def _fail(self, text: str, *, title: str = "Connection failed") -> None:
        self.notify(text, title=title, severity="error", timeout=8)
        if self.current_mode == MAIN:
            self.connect_screen.show_status(text, error=True)

    # ---- the fleet screen

    def show_fleet(self, path: str) -> None:
        from nbdtui.client.diagnosis.inventory import read_inventory, without_duplicates

        try:
            targets, problems = read_inventory(path)
        except OSError as exc:
            self._fail(f"{path}: {exc.strerror or exc}", title="Inventory")
            return
        targets, repeated = without_duplicates(targets)
        problems += repeated
        self.push_screen(
            FleetScreen(targets, problems, name=path, connect_timeout=self.connect_timeout)
        )

    def on_fleet_screen_open_requested(self, event: FleetScreen.OpenRequested) -> None:
        self.open_exports(event.endpoint, [event.endpoint.export])

    # ---- connecting

    def on_connect_screen_open_requested(self, event: ConnectScreen.OpenRequested) -> None:
        self.open_target(event.uri, event.via)

    def on_connect_screen_forget_requested(self, event: ConnectScreen.ForgetRequested) -> None:
        if self.history:
            self.history.forget(event.uri)
            self.connect_screen.set_recent(self.recent_uris())

    def on_connect_screen_cancel_requested(self) -> None:
        running = [w for w in self.workers if w.group in ("connect", "demo") and w.is_running]
        if running:
            for worker in running:
                worker.cancel()
            self.connect_screen.show_status("Cancelled.")

    def on_connect_screen_demo_requested(self) -> None:
        self.open_demo()

    @work(group="connect", exclusive=True, exit_on_error=False)
    async def open_target(self, text: str, via: str | None = None) -> None:
        """Open what ``text`` names: the editor on an export, or the server's exports.

        ``via`` (``[user@]host[:port]``) reaches it through that SSH host; the
        ``nbd+ssh://`` URI that does so is what is remembered."""
        try:
            endpoint = parse(text)
            if via:
                from nbdtui.client.transport.ssh.endpoint import tunnel_endpoint

                endpoint = tunnel_endpoint(endpoint, via)
                text = endpoint.uri
        except UriError as exc:
            self._fail(str(exc), title="Invalid endpoint")
            return
        self.connect_screen.show_status(f"Connecting to {endpoint.display} …")
        try:
            await self._hold_ssh_login(endpoint)
            if not endpoint.export:
                listed = await self._list_or_none(endpoint)
                if listed is not None and len(listed.exports) > 1:
                    self._remember(text)
                    self.connect_screen.show_status("")
                    await self.show_server(endpoint, listed)
                    return
                if listed is not None and len(listed.exports) == 1:
                    endpoint = endpoint.with_export(listed.exports[0].name)
            try:
                session = await self.open_session(endpoint)
            except ExportNotFoundError as exc:
                if not await self._offer_the_list(endpoint, exc):
                    raise
                return
            self._remember(text)
            negotiated = session.export.negotiated
            self.connect_screen.show_opened(shown_name(session.export.name), endpoint, negotiated)
            await self.switch_mode(session.mode)
            await self.open_editor(session, 0)
        except Exception as exc:
            self._fail(_message(exc))

    async def _offer_the_list(self, endpoint: Endpoint, error: ExportNotFoundError) -> bool:
        """The export does not exist: show the server's exports instead, when it lists
        them (whether it did)."""
        try:
            listed = await self._list_or_none(endpoint.with_export(""))
        except NbdError:  # the listing failed too: the missing export is what to say
            return False
        if listed is None or not listed.exports:
            return False
        self._remember(endpoint.with_export("").uri)
        self.connect_screen.show_status("")
        await self.show_server(endpoint.with_export(""), listed)
        count = len(listed.exports)
        self.notify(
            f"{for_the_tui(str(error))}: the server has {count} export{'s' if count != 1 else ''}"
            ", listed here.",
            title="No such export",
            severity="warning",
            timeout=8,
        )
        return True

    def open_exports_of(self, endpoint: Endpoint) -> dict[str, int]:
        """The exports of ``endpoint``'s server open here: name → pending edit count."""
        server = endpoint.with_export("")
        return {
            session.endpoint.export: self.pending_edits([session.mode])
            for session in self.sessions.values()
            if session.endpoint.with_export("") == server
        }

    async def _hold_ssh_login(self, endpoint: Endpoint) -> None:
        """Log in to the SSH host of an nbd+ssh endpoint and keep that connection until
        the app exits (like ssh's ControlPersist): listing, opening and reopening exports
        there then ask for a password or passphrase once, not at every step."""
        if endpoint.transport != "ssh":
            return
        from nbdtui.client.transport.ssh.tunnel import ssh_login

        login = contextlib.AsyncExitStack()
        await login.enter_async_context(ssh_login(endpoint, self.connect_timeout))
        key = (endpoint.user, endpoint.host, endpoint.port)
        old, self._ssh_logins[key] = self._ssh_logins.get(key), login
        if old is not None:  # the same connection when it still works, else a dead one
            await old.aclose()

    async def _list_or_none(self, endpoint: Endpoint) -> ExportsListed | None:
        """The server's exports, or None when it will not list them (open the default)."""
        from nbdtui.client.api import list_exports

        try:
            return await list_exports(endpoint, connect_timeout=self.connect_timeout)
        except TLSRequiredError:
            raise
        except HandshakeError:
            return None

    async def show_server(self, endpoint: Endpoint, listed: ExportsListed) -> None:
        if self.current_mode != MAIN:
            await self.switch_mode(MAIN)
        for screen in self.stack_of(MAIN):
            if isinstance(screen, ServerScreen) and screen.endpoint == endpoint:
                screen.set_listed(listed)
                while self.screen is not screen:
                    await self.pop_screen()
                return
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        await self.push_screen(ServerScreen(endpoint, listed, self.open_exports_of))

    def on_server_screen_refresh_requested(self, event: ServerScreen.RefreshRequested) -> None:
        self.refresh_server(event.screen)

    @work(group="connect", exclusive=True, exit_on_error=False)
    async def refresh_server(self, screen: ServerScreen) -> None:
        from nbdtui.client.api import list_exports

        try:
            listed = await list_exports(screen.endpoint, connect_timeout=self.connect_timeout)
        except Exception as exc:
            self._fail(_message(exc), title="Listing failed")
            return
        screen.set_listed(listed)
        self.notify(f"{len(listed.exports)} exports on {screen.endpoint.display}", timeout=2)

    def on_server_screen_open_requested(self, event: ServerScreen.OpenRequested) -> None:
        self.open_exports(event.endpoint, event.names)

    @work(group="open", exclusive=False, exit_on_error=False)
    async def open_exports(self, endpoint: Endpoint, names: list[str]) -> None:
        """Open each named export (concurrently); show the first that opened."""
        results = await asyncio.gather(
            *(self.open_session(endpoint.with_export(n)) for n in names), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, Session)]
        for name, result in zip(names, results, strict=True):
            if not isinstance(result, Session):
                self._fail(f"{shown_name(name)}: {_message(result)}", title="Open failed")
        if opened:
            await self.switch_mode(opened[0].mode)
            if len(opened) > 1:
                self.notify(f"{len(opened)} exports open: F3 switches among them", timeout=4)

    async def open_session(self, endpoint: Endpoint) -> Session:
        """The open session for ``endpoint``, opening the export if needed."""
        existing = self.sessions.get(endpoint.uri)
        if existing is not None:
            return existing
        from nbdtui.client.api import open as open_export

        stack = contextlib.AsyncExitStack()
        try:
            export = await stack.enter_async_context(
                open_export(
                    endpoint,
                    connect_timeout=self.connect_timeout,
                    window=self.window,
                    reconnect_delay=self.reconnect_delay,
                )
            )
        except BaseException:
            await stack.aclose()
            raise
        existing = self.sessions.get(endpoint.uri)  # opened meanwhile by another worker
        if existing is not None:
            await stack.aclose()
            return existing
        return self.add_session(endpoint, export, stack)

    def add_session(
        self, endpoint: Endpoint, export: Export, stack: contextlib.AsyncExitStack | None = None
    ) -> Session:
        """Adopt an open export: it gets a mode whose base is its ExportScreen.

        ``stack`` closes the export when the session ends (default: ``export.close()``).
        """
        if stack is None:
            stack = contextlib.AsyncExitStack()
            stack.push_async_callback(export.close)
        session = Session(f"export-{next(self._modes_made)}", endpoint, export, stack)
        self.sessions[endpoint.uri] = session
        self.add_mode(session.mode, lambda: ExportScreen(session))
        return session

    # ---- the demo

    @work(group="demo", exclusive=True, exit_on_error=False)
    async def open_demo(self) -> None:
        if not self.demo_uris:
            self.connect_screen.show_status("Starting the demo server …")
            try:
                from nbdtui.server.demo_exports import DemoThread

                self._demo = await asyncio.to_thread(DemoThread(unix=True).start)
            except Exception as exc:
                self._fail(_message(exc), title="Demo")
                return
            self.demo_uris = dict(self._demo.uris)
            self.connect_screen.set_demo(self.demo_uris)
        server = parse(next(iter(self.demo_uris.values()))).with_export("")
        self.open_target(server.uri)

    # ---- export screens and the editor

    def on_export_screen_edit_requested(self, event: ExportScreen.EditRequested) -> None:
        self.edit(event.screen.session, event.offset)

    @work(group="editor", exclusive=True, exit_on_error=False)
    async def edit(self, session: Session, offset: int) -> None:
        try:
            await self.open_editor(session, offset)
        except Exception as exc:
            self.notify(_message(exc), title="Editor", severity="error", timeout=8)

    def on_export_screen_back_requested(self) -> None:
        self.switch_mode(MAIN)

    def on_export_screen_close_requested(self, event: ExportScreen.CloseRequested) -> None:
        self.close_session(event.screen.session)

    async def open_editor(self, session: Session, offset: int) -> None:
        """Show the editor of ``session`` (one per export) at ``offset``."""
        from nbdtui.tui.screens.sector_editor import EditorScreen

        stack = self.stack_of(session.mode)
        editor = next((s for s in stack if isinstance(s, EditorScreen)), None)
        if self.current_mode != session.mode:
            await self.switch_mode(session.mode)
        if editor is None:
            editor = EditorScreen(
                session.export,
                journal=self._journal(),
                sector_size=512,
                bookmarks=self.bookmarks(),
            )
            await self.push_screen(editor)
        else:
            while self.screen is not editor:
                await self.pop_screen()
        editor.goto(offset)

    def _journal(self) -> Journal | None:
        """The undo journal shared by every editor (opened on first use)."""
        if self.journal is None:
            try:
                from nbdtui.editor.journal import Journal

                self.journal = Journal()
            except Exception as exc:
                self.journal = False
                self.notify(f"no undo journal: {_message(exc)}", severity="warning", timeout=8)
        return self.journal or None

    def bookmarks(self) -> Bookmarks | None:
        """The editor's bookmarks, in the database of the recent endpoints (a table of
        their own), opened on first use."""
        if self._bookmarks is None:
            try:
                from nbdtui.editor.bookmarks import Bookmarks
                from nbdtui.tui.history import default_path

                history = self.history
                self._bookmarks = Bookmarks(history.path if history else default_path())
            except Exception as exc:
                self._bookmarks = False
                self.notify(f"bookmarks are not kept: {exc}", severity="warning", timeout=8)
        return self._bookmarks or None

    def stack_of(self, mode: str) -> list[Screen[Any]]:
        """The screens of ``mode`` (none when the mode was never shown or is gone)."""
        try:
            return self.get_screen_stack(mode)
        except KeyError:
            return []

    def pending_edits(self, modes: list[str] | None = None) -> int:
        modes = modes if modes is not None else [MAIN, *(s.mode for s in self.sessions.values())]
        return sum(pending_edits_of(s) for m in modes for s in self.stack_of(m))

    def close_session(self, session: Session) -> None:
        pending = self.pending_edits([session.mode])
        if not pending:
            self._close_session(session)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._close_session(session)

        self.push_screen(
            ConfirmDialog(
                "Close with pending edits?",
                f"{shown_name(session.export.name)} has pending edits that were not written. "
                "Close it and drop them?",
                yes="Drop and close",
                no="Keep",
            ),
            answered,
        )

    @work(group="close", exit_on_error=False)
    async def _close_session(self, session: Session) -> None:
        if self.current_mode == session.mode:
            await self.switch_mode(MAIN)
        self.sessions.pop(session.endpoint.uri, None)
        await self.remove_mode(session.mode)
        try:
            await session.stack.aclose()
        except Exception as exc:
            self.notify(f"closing {session.endpoint.uri}: {_message(exc)}", severity="warning")

    async def close_all(self) -> None:
        sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.stack.aclose(), 5)

    def action_switch_export(self, mode: str) -> None:
        if mode == MAIN or any(s.mode == mode for s in self.sessions.values()):
            self.switch_mode(mode)

    # ---- app-wide keys

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_pool(self) -> None:
        if not isinstance(self.screen, PoolScreen):
            self.push_screen(PoolScreen(self.connection_stats))

    def connection_stats(self) -> list[tuple[str, Any]]:
        """(key, stats) of every connection of the shared pool, then of any open export
        that is not in it."""
        rows: list[tuple[str, Any]] = []
        pooled: set[Endpoint] = set()
        try:
            from nbdtui.client.pool import default_pool

            groups = default_pool().stats()
        except ImportError:
            groups = {}
        for endpoint, stats in groups.items():
            pooled.add(endpoint)
            rows += [(f"{endpoint.uri}#{i}", stat) for i, stat in enumerate(stats)]
        for session in self.sessions.values():
            if session.endpoint not in pooled and hasattr(session.export, "connection_stats"):
                stats = session.export.connection_stats()
                rows += [(f"{session.mode}#{i}", stat) for i, stat in enumerate(stats)]
        return rows

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # The editor binds F3 itself (find next): then the palette does not say F3.
        f3 = "" if any(b.key == "f3" for b in class_bindings(screen)) else " (F3)"
        ours = [
            SystemCommand("Connections", "Every connection, live (F2)", self.action_pool),
            SystemCommand("Switch export", f"Go to another open export{f3}", self.action_exports),
            SystemCommand("Keys", "Every key of this screen and of the app (F1)", self.action_help),
            SystemCommand("Demo", "Start the embedded demo server and open it", self.open_demo),
        ]
        # Each command once: ours replaces Textual's of the same name (its "Keys" panel).
        titles = {command.title for command in ours}
        yield from (c for c in super().get_system_commands(screen) if c.title not in titles)
        yield from ours

    def action_exports(self) -> None:
        if isinstance(self.screen, SwitcherScreen):
            return
        entries = [(MAIN, "Connect / server")]
        for session in self.sessions.values():
            pending = self.pending_edits([session.mode])
            note = f"  ·  {pending} pending edit{'s' if pending != 1 else ''}" if pending else ""
            entries.append((session.mode, session.label + note))

        def chosen(mode: str | None) -> None:
            if mode:
                self.action_switch_export(mode)

        self.push_screen(SwitcherScreen(entries, self.current_mode), chosen)

    async def action_quit(self) -> None:
        pending = self.pending_edits()
        if not pending:
            self.exit(0)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit(0)

        self.push_screen(
            ConfirmDialog(
                "Quit with pending edits?",
                "There are pending edits that were not written. Quit and drop them?",
                yes="Quit",
                no="Stay",
            ),
            answered,
        )


def create_app(
    uri: str | None = None,
    demo_uris: dict[str, str] | None = None,
    **options: Any,
) -> NbdtuiApp:
    """The app, configured but not running (tests drive it with ``run_test``).

    ``options``: ``history`` (a :class:`nbdtui.tui.history.History`; default: the one in
    the user's config dir), ``connect_timeout``, ``window``, ``journal``, ``ssh`` (the
    SSH host to reach ``uri`` through), ``ssh_accept_new`` (trust unknown host keys
    without asking), ``reconnect_delay`` (seconds to keep reconnecting after a drop;
    default 30), ``inventory`` (a file of endpoints: the fleet screen opens first).
    """
    return NbdtuiApp(uri, demo_uris=demo_uris, **options)


def run_app(uri: str | None = None, demo_uris: dict[str, str] | None = None, **options: Any) -> int:
    """Run the terminal UI until the user quits; returns the exit status. ``options``
    as for :func:`create_app`."""
    app = create_app(uri, demo_uris, **options)
    app.run()
    return app.return_code or 0
