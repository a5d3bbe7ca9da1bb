"""`nbdtui doctor URI [--json] [--quick]`: which step of a connection fails, and why.

Walks resolve, connect, ssh, greeting, tls, export, info, features, read and throughput
(see :mod:`nbdtui.client.diagnosis`), printing each step's status, detail and, for a
warning or a failure, a hint. Exit 0 when no step failed, 1 when one did.
"""

from __future__ import annotations

import argparse
import json

from nbdtui.cli.parser import (
    EXIT_FAILURE,
    EXIT_OK,
    _positive_float,
    _ssh_target,
    target_endpoint,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", metavar="URI", help="NBD endpoint (see 'nbdtui --help')")
    p.add_argument("--json", action="store_true", help='print {"uri", "steps": [...]} as JSON')
    p.add_argument("--quick", action="store_true", help="skip the 5-second throughput test")
    p.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up each step after this long (default 10)",
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


async def run(args: argparse.Namespace) -> int:
    from nbdtui.client.diagnosis import diagnose

    endpoint = target_endpoint(args)
    diagnosis = await diagnose(endpoint, quick=args.quick, connect_timeout=args.connect_timeout)
    if args.json:
        print(json.dumps(diagnosis.as_dict(), indent=2, ensure_ascii=False))
    else:
        from nbdtui.present.diagnosis_report import doctor_lines

        print("\n".join(doctor_lines(diagnosis)))
    return EXIT_OK if diagnosis.ok else EXIT_FAILURE
