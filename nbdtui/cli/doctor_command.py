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
    connect_timeout_option,
    json_option,
    ssh_options,
    target_endpoint,
    uri_argument,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    uri_argument(p)
    json_option(p, help='print {"uri", "steps": [...]} as JSON')
    p.add_argument("--quick", action="store_true", help="skip the 5-second throughput test")
    connect_timeout_option(p, what="each step")
    ssh_options(p)


async def run(args: argparse.Namespace) -> int:
    from nbdtui.client.diagnosis import diagnose

    endpoint = target_endpoint(args)
    if args.json:
        diagnosis = await diagnose(endpoint, quick=args.quick, connect_timeout=args.connect_timeout)
        print(json.dumps(diagnosis.as_dict(), indent=2, ensure_ascii=False))
        return EXIT_OK if diagnosis.ok else EXIT_FAILURE

    from nbdtui.client.diagnosis import Step
    from nbdtui.present import diagnosis_report as report
    from nbdtui.uri import without_secrets

    print(report.doctor_header(without_secrets(endpoint.uri)), flush=True)
    shown: list[Step] = []

    def show(step: Step) -> None:  # each step as it ends (throughput takes seconds)
        shown.append(step)
        print("\n".join(report.step_lines(step)), flush=True)

    diagnosis = await diagnose(
        endpoint, quick=args.quick, connect_timeout=args.connect_timeout, on_step=show
    )
    for step in diagnosis.steps:
        if step not in shown:
            print("\n".join(report.step_lines(step)))
    print(report.doctor_footer(diagnosis))
    return EXIT_OK if diagnosis.ok else EXIT_FAILURE
