"""The `nbdtui` command line: subcommands, argument parsing and exit statuses.

Exit status 0 on success, 1 when the server or the network fails, 2 for a bad
command line or endpoint. Errors are one line on stderr starting ``nbdtui:``.
Heavy modules (textual, asyncssh, rich) are imported only by the commands that use
them, so that ``nbdtui info`` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Coroutine, Sequence
from importlib import import_module

from nbdtui.cli.parser import (
    COMMANDS,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    MODULE_COMMANDS,
    ArgumentParser,
    build_parser,
    ssh_text,
)
from nbdtui.errors import NbdError, UriError, UsageError
from nbdtui.present.terminal_text import terminal_text


def _run(coro: Coroutine[object, object, int | None]) -> int:
    import asyncio  # here: `nbdtui info` on the blocking driver never needs it

    return asyncio.run(coro) or EXIT_OK


def dispatch(args: argparse.Namespace) -> int:
    from nbdtui.cli.open_export import early_forwards  # (cheap: no asyncio)

    with early_forwards(args):  # nbd+ssh: ssh logs in while the command is imported
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("info", "dump", "read"):
        from nbdtui.cli import quick

        status = quick.run(args, _warning_line)  # without asyncio when it can
        if status is not None:
            return status
    _print_warnings()
    if args.command in ("info", "list"):
        from nbdtui.cli import report

        return _run(report.run(args))
    if args.command in ("map", "dump", "read", "write", "flush", "trim", "zero"):
        from nbdtui.cli import transfer

        return _run(transfer.run(args))
    if args.command == "demo":
        from nbdtui.cli import demo

        return demo.run(args)
    if args.command in MODULE_COMMANDS:
        result = import_module(f"nbdtui.cli.{MODULE_COMMANDS[args.command]}").run(args)
        # not inspect.iscoroutine: inspect costs 4 ms of every start-up to import
        return _run(result) if isinstance(result, Coroutine) else result or EXIT_OK
    raise AssertionError(args.command)


def _tui_parser() -> ArgumentParser:
    p = ArgumentParser(prog="nbdtui", description="The terminal UI.")
    p.add_argument("uri", metavar="URI", nargs="?", help="endpoint to open at once")
    p.add_argument(
        "--ssh",
        type=ssh_text,
        metavar="[USER@]HOST[:PORT]",
        help="reach URI (nbd:// or nbd+unix://) through this SSH host",
    )
    p.add_argument(
        "--ssh-accept-new",
        action="store_true",
        help="trust and remember SSH host keys not yet in known_hosts instead of asking",
    )
    p.add_argument(
        "--inventory",
        metavar="FILE",
        help="open the fleet screen: the status of every endpoint of FILE (see 'check')",
    )
    return p


def _is_tui(argv: list[str]) -> bool:
    """``nbdtui``, ``nbdtui URI``, ``nbdtui [--ssh HOST] [--ssh-accept-new] [URI]`` and
    ``nbdtui --inventory FILE`` (in any order) open the terminal UI; anything else is a
    subcommand."""
    if not argv:
        return True
    if argv[0].startswith(("--ssh", "--inventory")):
        return True
    return not argv[0].startswith("-") and argv[0] not in COMMANDS


def _run_tui(argv: list[str] | None) -> int:
    """``argv`` None: the process's own arguments (argparse reads ``sys.argv``)."""
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
            from nbdtui.client.transport.ssh.endpoint import tunnel_endpoint

            tunnel_endpoint(endpoint, args.ssh)
        if not args.uri.isprintable():
            # Bytes that are not UTF-8 (a socket path's): the UI shows and edits the
            # URI in its canonical spelling, where they are percent-escapes.
            args.uri = endpoint.uri
    options = {}
    if args.inventory is not None:
        from nbdtui.client.diagnosis.inventory import read_inventory

        read_inventory(args.inventory)  # an unreadable file is an error before the UI starts
        options["inventory"] = args.inventory
    from nbdtui.tui.app import run_app

    return (
        run_app(uri=args.uri, ssh=args.ssh, ssh_accept_new=args.ssh_accept_new, **options)
        or EXIT_OK
    )


_warned: set[str] = set()


def _warning_line(text: str) -> None:
    if text not in _warned:  # once, when the blocking path fell back to the usual one
        _warned.add(text)
        print(f"nbdtui: warning: {text}", file=sys.stderr)


_warnings_printed = False


def _print_warnings() -> None:
    """The client's warnings (a server that broke a rule nbdtui can live with) as
    ``nbdtui: warning: ...`` lines on stderr (whatever ``sys.stderr`` is then). Not
    for the blocking path of `info`, `dump` and `read`, which hands them to
    ``_warning_line`` itself: logging is imported here, only for the other paths."""
    global _warnings_printed
    if _warnings_printed:
        return
    import logging

    from nbdtui.client.handshake_faults import RULES_LOGGER

    class WarningLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            _warning_line(record.getMessage())

    logging.getLogger(RULES_LOGGER).addHandler(WarningLines(logging.WARNING))
    _warnings_printed = True


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if _is_tui(argv):
            return _run_tui(argv)
        args = build_parser(argv[0] if argv[0] in COMMANDS else None).parse_args(argv)
        if args.command is None:
            _print_warnings()
            return _run_tui(None)
        return dispatch(args)
    except (UriError, UsageError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except NbdError as exc:
        _error(str(exc))  # may quote the server: escaped
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
        _error(f"{where}{exc.strerror or exc}")
        return EXIT_FAILURE


def _error(message: str) -> None:
    """The one line ``nbdtui: message`` on stderr, every control character made visible."""
    print(f"nbdtui: {terminal_text(message, backslash=False)}", file=sys.stderr)
