"""`nbdtui check [URI...] [--inventory FILE] [--jobs N] [--json] [--prometheus FILE]`.

Each endpoint gets the doctor's quick steps (:mod:`nbdtui.client.diagnosis.check_many`), at
most ``--jobs`` at a time. Output: a table, or one JSON object a line (``--json``);
``--prometheus FILE`` also writes node_exporter's textfile format, replacing FILE
atomically. Exit 0 when every endpoint is up, 1 when one is down or an inventory line
could not be read (each such line is reported as ``nbdtui: FILE:LINE: …`` on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile

from nbdtui.cli.parser import (
    EXIT_FAILURE,
    EXIT_OK,
    _positive_int,
    connect_timeout_option,
    json_option,
    ssh_options,
)
from nbdtui.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("uris", metavar="URI", nargs="*", help="endpoints to check")
    p.add_argument(
        "--inventory",
        metavar="FILE",
        action="append",
        default=[],
        help="endpoints, one a line ('#' comments, optional via=SSH-HOST); repeatable",
    )
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=16,
        metavar="N",
        help="endpoints checked at once, one connection each (default 16)",
    )
    connect_timeout_option(p, what="each step of an endpoint")
    json_option(p, help="print one JSON object per endpoint")
    p.add_argument(
        "--prometheus",
        metavar="FILE",
        default=None,
        help="also write node_exporter's textfile format to FILE (replaced atomically)",
    )
    ssh_options(p, via=False)


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``
    (a reader such as node_exporter never sees half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".nbdtui-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


async def run(args: argparse.Namespace) -> int:
    from nbdtui.client.diagnosis.check_many import Checked, check_all
    from nbdtui.client.diagnosis.inventory import (
        Problem,
        Target,
        read_inventory,
        target,
        without_duplicates,
    )
    from nbdtui.present import diagnosis_report as report

    targets: list[Target] = [target(uri) for uri in args.uris]  # a bad URI: exit 2
    problems: list[Problem] = []
    for path in args.inventory:
        found, bad = read_inventory(path)
        targets += found
        problems += bad
    targets, repeated = without_duplicates(targets)
    problems += repeated
    if not targets and not problems:
        raise UsageError("no endpoints to check: give URIs or --inventory FILE")
    if args.ssh_accept_new:
        from nbdtui.client.transport.ssh.prompts import accept_new_host_keys

        accept_new_host_keys()
    for problem in problems:
        print(f"nbdtui: {problem}", file=sys.stderr)

    def show(checked: Checked) -> None:
        if args.json:
            print(report.check_json_line(checked), flush=True)

    results = await check_all(
        targets, jobs=args.jobs, connect_timeout=args.connect_timeout, on_result=show
    )
    if not args.json:
        print("\n".join(report.check_table(results)))
    if args.prometheus is not None:
        write_atomically(args.prometheus, report.prometheus_text(results, len(problems)))
    all_up = all(c.diagnosis.ok for c in results)
    return EXIT_OK if all_up and not problems else EXIT_FAILURE
