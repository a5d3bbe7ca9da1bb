"""The `nbdtui` command line: subcommands, argument parsing and exit statuses.

Exit status 0 on success, 1 when the server or the network fails, 2 for a bad
command line or endpoint. Errors are one line on stderr starting ``nbdtui:``.
Heavy modules (textual, asyncssh, rich) are imported only by the commands that use
them, so that ``nbdtui info`` starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from nbdtui import __version__
from nbdtui.errors import NbdError, UriError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(NbdError):
    """The command line asks for something impossible (exit status 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with our one-line ``nbdtui: …`` error format."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"nbdtui: {message} (see '{self.prog} --help')\n")


def _size(text: str) -> int:
    from nbdtui.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _ssh_target(text: str):
    from nbdtui.uri import parse_ssh_target

    try:
        return parse_ssh_target(text)
    except UriError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ssh_text(text: str) -> str:
    """An SSH host for the UI, checked here and passed on as written."""
    _ssh_target(text)
    return text


def target_endpoint(args: argparse.Namespace):
    """The endpoint a command works on: its URI, reached through ``--ssh`` if given."""
    from nbdtui.uri import parse

    endpoint = parse(args.uri)
    if getattr(args, "ssh_accept_new", False):
        from nbdtui.ssh_prompts import accept_new_host_keys

        accept_new_host_keys()
    if getattr(args, "ssh", None) is not None:
        from nbdtui.ssh_endpoint import tunnel_endpoint

        endpoint = tunnel_endpoint(endpoint, args.ssh)
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
}


class _Skipped:
    """Stands for the parser of a command that is not being run (see build_parser)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self


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

    def command(name: str, **kwargs) -> ArgumentParser:
        if only is not None and name != only:
            return _Skipped()  # type: ignore[return-value]
        return sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name], **kwargs)

    def connection_options(p: ArgumentParser, *, uri: bool = True) -> None:
        if uri:
            p.add_argument("uri", metavar="URI", help="NBD endpoint (see 'nbdtui --help')")
        p.add_argument(
            "--connect-timeout",
            type=_positive_float,
            default=10.0,
            metavar="SECONDS",
            help="give up connecting after this long (default 10)",
        )
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

    def io_options(p: ArgumentParser) -> None:
        p.add_argument(
            "--window",
            type=_positive_int,
            default=16,
            metavar="N",
            help="requests in flight per connection (default 16)",
        )
        p.add_argument(
            "--connections",
            type=_positive_int,
            default=None,
            metavar="N",
            help="connections per export when the server allows multi-conn (default 4)",
        )

    def range_options(p: ArgumentParser, *, required: bool) -> None:
        p.add_argument("--offset", type=_size, default=0, metavar="N", help="start (default 0)")
        p.add_argument(
            "--length",
            type=_size,
            default=None,
            required=required,
            metavar="N",
            help="number of bytes" + ("" if required else " (default: to the end)"),
        )

    p = command("info")
    connection_options(p)
    p.add_argument("--json", action="store_true", help="print nbdinfo-compatible JSON")

    p = command("list")
    connection_options(p)
    p.add_argument("--json", action="store_true", help="print nbdinfo-compatible JSON")

    p = command("map")
    connection_options(p)
    range_options(p, required=False)
    p.add_argument("--json", action="store_true", help="print JSON like nbdinfo --map --json")

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
        p = sub.choices.get(name, _Skipped())
        p.add_argument(
            "--timeout",
            type=_positive_float,
            default=None,
            metavar="SECONDS",
            help="fail a request without a reply after this long, then reconnect "
            "(default: no limit)",
        )
        p.add_argument(
            "--reconnect-delay",
            type=_non_negative_float,
            default=0.0,
            metavar="SECONDS",
            help="after a lost connection, keep reconnecting this long and send the "
            "unanswered requests again (default 0: fail at once)",
        )

    if only in (None, "journal"):
        from nbdtui.cli import journal

        journal.add_arguments(command("journal"))

    p = command("demo")
    p.add_argument(
        "--serve",
        action="store_true",
        help="only serve the demo exports and print their URIs (no UI) until Ctrl+C",
    )
    p.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1 instead of a socket")
    return parser


def _run(coro) -> int:
    return asyncio.run(coro) or EXIT_OK


def dispatch(args: argparse.Namespace) -> int:
    if args.command in ("info", "list"):
        from nbdtui.cli import report

        return _run(report.run(args))
    if args.command in ("map", "dump", "read", "write", "flush", "trim", "zero"):
        from nbdtui.cli import transfer

        return _run(transfer.run(args))
    if args.command == "demo":
        from nbdtui.cli import demo

        return demo.run(args)
    if args.command == "journal":
        from nbdtui.cli import journal

        return _run(journal.run(args))
    raise AssertionError(args.command)


def _tui_parser() -> ArgumentParser:
    p = ArgumentParser(prog="nbdtui", description="The terminal UI.")
    p.add_argument("uri", metavar="URI", nargs="?", help="endpoint to open at once")
    p.add_argument(
        "--ssh",
        type=_ssh_text,
        metavar="[USER@]HOST[:PORT]",
        help="reach URI (nbd:// or nbd+unix://) through this SSH host",
    )
    p.add_argument(
        "--ssh-accept-new",
        action="store_true",
        help="trust and remember SSH host keys not yet in known_hosts instead of asking",
    )
    return p


def _is_tui(argv: list[str]) -> bool:
    """``nbdtui``, ``nbdtui URI`` and ``nbdtui [--ssh HOST] [--ssh-accept-new] [URI]``
    (in any order) open the terminal UI; anything else is a subcommand."""
    if not argv:
        return True
    if argv[0].startswith("--ssh"):
        return True
    return not argv[0].startswith("-") and argv[0] not in COMMANDS


def _run_tui(argv: list[str]) -> int:
    parser = _tui_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.uri is not None and argv and argv[0] == args.uri:
            build_parser().error(f"unknown command {args.uri!r}")
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.uri is not None:
        from nbdtui.uri import parse

        # A bad endpoint is a command-line error before any screen opens.
        endpoint = parse(args.uri)
        if args.ssh is not None:
            from nbdtui.ssh_endpoint import tunnel_endpoint

            tunnel_endpoint(endpoint, args.ssh)
    from nbdtui.tui.app import run_app

    return run_app(uri=args.uri, ssh=args.ssh, ssh_accept_new=args.ssh_accept_new) or EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if _is_tui(argv):
            return _run_tui(argv)
        args = build_parser(argv[0] if argv[0] in COMMANDS else None).parse_args(argv)
        if args.command is None:
            return _run_tui(None)
        return dispatch(args)
    except (UriError, UsageError) as exc:
        print(f"nbdtui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NbdError as exc:
        print(f"nbdtui: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("nbdtui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`nbdtui dump … | head`): not an error worth a message.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_FAILURE
    except OSError as exc:
        # Local files: an unreadable input, an unwritable output.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nbdtui: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
