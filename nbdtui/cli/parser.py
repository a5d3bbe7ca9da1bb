"""The command line's parser: every subcommand's arguments, argument types, and the
endpoint a command works on."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from nbdtui import __version__
from nbdtui.errors import UriError

if TYPE_CHECKING:
    from nbdtui.uri import Endpoint, SshTarget

_N = TypeVar("_N", int, float)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with our one-line ``nbdtui: …`` error format."""

    def error(self, message: str) -> NoReturn:
        from nbdtui.present.terminal_text import terminal_text

        message = terminal_text(message, backslash=False)  # it may quote the command line
        self.exit(EXIT_USAGE, f"nbdtui: {message} (see '{self.prog} --help')\n")


def _size(text: str) -> int:
    from nbdtui.present.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(text: str, parse: Callable[[str], _N], ok: Callable[[_N], bool], must: str) -> _N:
    """``text`` read by ``parse``; an argparse error unless ``ok(value)`` (``must`` says
    what the value must be)."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} {must}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "must be greater than 0")


def _non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "must not be negative")


def _positive_int(text: str) -> int:
    return _number(text, lambda t: int(t, 0), lambda v: v > 0, "must be greater than 0")


def _non_negative_int(text: str) -> int:
    return _number(text, lambda t: int(t, 0), lambda v: v >= 0, "must not be negative")


def _ssh_target(text: str) -> SshTarget:
    from nbdtui.uri import parse_ssh_target

    try:
        return parse_ssh_target(text)
    except UriError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def ssh_text(text: str) -> str:
    """An SSH host for the UI, checked here and passed on as written."""
    _ssh_target(text)
    return text


def target_endpoint(args: argparse.Namespace) -> Endpoint:
    """The endpoint a command works on: its URI, reached through ``--ssh`` if given."""
    from nbdtui.uri import parse

    endpoint = parse(args.uri)
    if getattr(args, "ssh_accept_new", False):
        from nbdtui.client.transport.ssh.prompts import accept_new_host_keys

        accept_new_host_keys()
    if getattr(args, "ssh", None) is not None:
        from nbdtui.client.transport.ssh.endpoint import tunnel_endpoint

        endpoint = tunnel_endpoint(endpoint, args.ssh)
    if endpoint.transport == "ssh":
        from nbdtui.cli import ssh_prompts

        ssh_prompts.install()  # what the SSH server says is shown escaped
    return endpoint


COMMANDS: dict[str, str] = {
    "info": "show an export's size, flags, block sizes and meta contexts",
    "list": "list every export of a server",
    "map": "show allocation extents (data, holes, zeros) like nbdinfo --map",
    "dump": "hex dump a range, byte for byte like hexdump -C",
    "read": "copy raw bytes out of an export to a file or stdout",
    "write": "copy raw bytes from a file or stdin into an export",
    "flush": "ask the server to flush its cache to stable storage",
    "trim": "discard a range (the server may then read back anything)",
    "zero": "write zeros over a range",
    "demo": "serve a demo disk from an embedded NBD server and open it",
    "journal": "list, show and revert the hex editor's journaled writes",
    "copy": "copy between exports and files, holes as holes; --rescue keeps a ddrescue map",
    "inspect": "show filesystem and volume structures, their checks and backups",
    "repair": "restore a structure from its backup or fix its checksums (journaled)",
    "doctor": "walk a connection step by step and say which step fails and why",
    "check": "check many exports at once (up/down, size, latency) for cron, Nagios, Prometheus",
    "scan": "find filesystem and volume signatures anywhere on an export",
    "diff": "list every run of bytes where two exports or images differ",
}

#: Commands whose arguments and code live in a module of their own, cli/<module>.py,
#: with ``add_arguments(parser)`` and ``run(args)`` (an int, or a coroutine of one).
#: One line each; the name must also be in COMMANDS.
MODULE_COMMANDS: dict[str, str] = {
    "journal": "journal_command",
    "copy": "copy_command",
    "inspect": "inspect_command",
    "repair": "repair_command",
    "doctor": "doctor_command",
    "check": "check_command",
    "scan": "scan_command",
    "diff": "diff_command",
}


class _Arguments(Protocol):
    """What the options of a command are added to: its parser, or a _Skipped."""

    # Any: argparse's own keyword arguments (action, type, default, …) have many types.
    def add_argument(self, *names: str, **options: Any) -> object: ...


# The options that several commands share; the module commands (MODULE_COMMANDS) call
# these too, so that an option means and reads the same everywhere.


def uri_argument(p: _Arguments) -> None:
    """The endpoint a command works on (read back by :func:`target_endpoint`)."""
    p.add_argument("uri", metavar="URI", help="NBD endpoint (see 'nbdtui --help')")


def connect_timeout_option(p: _Arguments, *, what: str = "connecting") -> None:
    """``--connect-timeout SECONDS``; ``what`` is what it bounds ("each step")."""
    p.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help=f"give up {what} after this long (default 10)",
    )


def ssh_options(p: _Arguments, *, via: bool = True) -> None:
    """``--ssh HOST`` (unless not ``via``) and ``--ssh-accept-new``."""
    if via:
        p.add_argument(
            "--ssh",
            type=_ssh_target,
            default=None,
            metavar="[USER@]HOST[:PORT]",
            help="reach the endpoint through this SSH host (Unix socket paths are on it)",
        )
    p.add_argument(
        "--ssh-accept-new",
        action="store_true",
        help="trust and save the key of an SSH host that known_hosts does not list",
    )


def connection_options(p: _Arguments, *, uri: bool = True) -> None:
    """The endpoint (with ``uri``), ``--connect-timeout`` and the SSH options."""
    if uri:
        uri_argument(p)
    connect_timeout_option(p)
    ssh_options(p)


def io_options(p: _Arguments, *, window: str = "--window") -> None:
    """Requests in flight (``window``: the option's name) and ``--connections``."""
    p.add_argument(
        window,
        type=_positive_int,
        default=16,
        metavar="N",
        help="requests in flight per connection (default 16)",
    )
    connections_option(p)


def connections_option(p: _Arguments) -> None:
    """``--connections N`` (``None`` when not given: the export's default)."""
    p.add_argument(
        "--connections",
        type=_positive_int,
        default=None,
        metavar="N",
        help="connections per export when the server allows multi-conn (default 4)",
    )


def range_options(
    p: _Arguments,
    *,
    required: bool,
    offset_help: str = "start (default 0)",
    length_help: str | None = None,
) -> None:
    """``--offset N`` and ``--length N`` (sizes such as 4K, 1M)."""
    p.add_argument("--offset", type=_size, default=0, metavar="N", help=offset_help)
    if length_help is None:
        length_help = "number of bytes" + ("" if required else " (default: to the end)")
    p.add_argument(
        "--length", type=_size, default=None, required=required, metavar="N", help=length_help
    )


def timeout_options(p: _Arguments) -> None:
    """``--timeout`` and ``--reconnect-delay``: a request without a reply, a lost
    connection."""
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="fail a request without a reply after this long, then reconnect (default: no limit)",
    )
    p.add_argument(
        "--reconnect-delay",
        type=_non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="after a lost connection, keep reconnecting this long and send the "
        "unanswered requests again (default 0: fail at once)",
    )


def json_option(p: _Arguments, *, help: str = "print JSON") -> None:
    p.add_argument("--json", action="store_true", help=help)


class _Skipped:
    """Stands for the parser of a command that is not being run (see build_parser)."""

    def add_argument(self, *names: str, **options: Any) -> _Skipped:
        return self


def build_parser(only: str | None = None) -> ArgumentParser:
    """The command-line parser; with ``only``, just that command's arguments are built
    (the parser of every command took about 10 ms of a 4 KiB read's start-up)."""
    parser = ArgumentParser(
        prog="nbdtui",
        description="Work with remote block devices over NBD. "
        "Run 'nbdtui' alone for the terminal UI, 'nbdtui URI' to open an export in it "
        "('nbdtui --ssh [USER@]HOST URI' through an SSH host).",
        epilog="Endpoints: nbd://host[:port]/export, nbds://…, nbd+unix:///export?socket=PATH, "
        "nbd+ssh://[user@]host/export?socket=PATH, nbd:host:port:exportname=NAME.",
    )
    parser.add_argument("--version", action="version", version=f"nbdtui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def add_command(name: str) -> ArgumentParser:
        return sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])

    def command(name: str) -> _Arguments:
        if only is not None and name != only:
            return _Skipped()
        return add_command(name)

    p = command("info")
    connection_options(p)
    json_option(p, help="print nbdinfo-compatible JSON")

    p = command("list")
    connection_options(p)
    json_option(p, help="print nbdinfo-compatible JSON")

    p = command("map")
    connection_options(p)
    range_options(p, required=False)
    json_option(p, help="print JSON like nbdinfo --map --json")
    p.add_argument(
        "--context",
        action="append",
        default=None,
        metavar="CTX",
        help="the extents of this meta context (qemu:dirty-bitmap:NAME, "
        "qemu:allocation-depth...), like nbdinfo --map=CTX; several side by side",
    )

    p = command("dump")
    connection_options(p)
    io_options(p)
    p.add_argument("--offset", "-s", type=_size, default=0, metavar="N", help="start")
    p.add_argument(
        "--length", "-n", type=_size, default=None, metavar="N", help="bytes (default 512)"
    )

    p = command("read")
    connection_options(p)
    io_options(p)
    range_options(p, required=False)
    p.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="output file, - for stdout (default)"
    )

    p = command("write")
    connection_options(p)
    io_options(p)
    p.add_argument("input", metavar="FILE", help="input file, - for stdin")
    p.add_argument("--offset", type=_size, default=0, metavar="N", help="start (default 0)")
    p.add_argument("--fua", action="store_true", help="force unit access on every write")
    p.add_argument(
        "--flush",
        action="store_true",
        help="flush once every write is acknowledged (the data is then persistent)",
    )

    p = command("flush")
    connection_options(p)

    for name in ("trim", "zero"):
        p = command(name)
        connection_options(p)
        range_options(p, required=True)
        p.add_argument("--fua", action="store_true", help="force unit access")
        if name == "zero":
            p.add_argument(
                "--fast", action="store_true", help="fail rather than write zeros slowly"
            )
            p.add_argument("--no-hole", action="store_true", help="allocate: do not punch a hole")

    for name in ("map", "dump", "read", "write", "flush", "trim", "zero"):
        p = sub.choices[name] if name in sub.choices else _Skipped()
        timeout_options(p)

    for name, module in MODULE_COMMANDS.items():
        if only in (None, name):
            import_module(f"nbdtui.cli.{module}").add_arguments(add_command(name))

    p = command("demo")
    p.add_argument(
        "--serve",
        action="store_true",
        help="only serve the demo exports and print their URIs (no UI) until Ctrl+C",
    )
    p.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1 instead of a socket")
    return parser
