"""`nbdtui info` and `nbdtui list`: what a server and its exports are.

``--json`` prints the keys that ``nbdinfo --json`` uses, so scripts written for
nbdinfo keep working.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nbdtui.cli.parser import target_endpoint
from nbdtui.errors import UriError
from nbdtui.present.describe import block_sizes, flag_words, protocol_line
from nbdtui.present.sizes import format_size
from nbdtui.present.terminal_text import terminal_text
from nbdtui.proto.client_events import Negotiated
from nbdtui.proto.types import ExportInfo
from nbdtui.uri import Endpoint

_CAPABILITIES = (
    ("is_rotational", "rotational"),
    ("is_read_only", "read_only"),
    ("can_cache", "can_cache"),
    ("can_df", "can_df"),
    ("can_fast_zero", "can_fast_zero"),
    ("can_flush", "can_flush"),
    ("can_fua", "can_fua"),
    ("can_multi_conn", "can_multi_conn"),
    ("can_trim", "can_trim"),
    ("can_zero", "can_zero"),
)


def export_json(
    endpoint: Endpoint,
    info: ExportInfo,
    *,
    contexts: tuple[str, ...] | None,
    description: str | None = None,
) -> dict[str, Any]:
    """One entry of ``exports[]``, keys and order as nbdinfo prints them."""
    out: dict[str, Any] = {"export-name": info.name}
    desc = info.description if info.description is not None else description
    if desc:
        out["description"] = desc
    uri = export_uri(endpoint, info.name)
    if uri is not None:
        out["uri"] = uri
    if contexts is not None:
        out["contexts"] = list(contexts)
    for key, attr in _CAPABILITIES:
        out[key] = getattr(info, attr)
    out["export-size"] = info.size
    if info.block_minimum is not None:
        out["block_size_minimum"] = info.block_minimum
    if info.block_preferred is not None:
        out["block_size_preferred"] = info.block_preferred
    if info.block_maximum is not None:
        out["block_size_maximum"] = info.block_maximum
    return out


def export_uri(endpoint: Endpoint, name: str) -> str | None:
    """The URI of a named export; None when a server sent a name no URI can carry."""
    try:
        return endpoint.with_export(name).uri
    except UriError:
        return None


def _print_json(doc: dict[str, Any]) -> None:
    import json  # here: 4% of the instructions of a plain `nbdtui info`

    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def describe_export(
    endpoint: Endpoint, info: ExportInfo, contexts: tuple[str, ...] | None
) -> list[str]:
    rows = [
        ("uri", export_uri(endpoint, info.name) or "(the server's name has no URI form)"),
        ("size", f"{info.size} ({format_size(info.size)})"),
        ("read-only", "yes" if info.read_only else "no"),
        ("supports", flag_words(info)),
        ("block sizes", block_sizes(info)),
    ]
    if info.description:
        rows.append(("description", terminal_text(info.description)))
    if contexts is not None:
        rows.append(("contexts", ", ".join(terminal_text(c) for c in contexts) or "none"))
    return [f"  {key + ':':<13} {value}" for key, value in rows]


async def _info(args: argparse.Namespace) -> int:
    from nbdtui.cli.open_export import through_ssh
    from nbdtui.client.api import probe

    endpoint = target_endpoint(args)  # the URI, tunnelled through --ssh if given
    timeout = args.connect_timeout
    negotiated = await through_ssh(
        endpoint, timeout, lambda target: probe(target, connect_timeout=timeout)
    )
    return print_info(args, endpoint, negotiated)


def print_info(args: argparse.Namespace, endpoint: Endpoint, negotiated: Negotiated) -> int:
    """What ``nbdtui info`` prints of a handshake (also used by :mod:`nbdtui.cli.quick`)."""
    info = negotiated.info
    if args.json:
        _print_json(
            {
                "protocol": negotiated.protocol,
                "TLS": negotiated.tls,
                "structured": negotiated.structured,
                "exports": [export_json(endpoint, info, contexts=negotiated.available_contexts)],
            }
        )
        return 0
    print(f"export '{terminal_text(info.name)}' on {terminal_text(endpoint.display)}")
    protocol = protocol_line(
        negotiated.protocol, negotiated.structured, negotiated.tls, negotiated.tls_verified
    )
    print(f"  {'protocol:':<13} {protocol}")
    print("\n".join(describe_export(endpoint, info, negotiated.available_contexts)))
    return 0


async def _list(args: argparse.Namespace) -> int:
    from nbdtui.cli.open_export import through_ssh
    from nbdtui.client.api import list_exports

    endpoint = target_endpoint(args)  # the URI, tunnelled through --ssh if given
    timeout = args.connect_timeout
    listed = await through_ssh(
        endpoint, timeout, lambda target: list_exports(target, connect_timeout=timeout)
    )
    if args.json:
        entries = []
        for item in listed.exports:
            if item.info is not None:
                entries.append(
                    export_json(
                        endpoint, item.info, contexts=item.contexts, description=item.description
                    )
                )
            else:
                entry: dict[str, Any] = {"export-name": item.name}
                if item.description:
                    entry["description"] = item.description
                if (uri := export_uri(endpoint, item.name)) is not None:
                    entry["uri"] = uri
                entries.append(entry)
        _print_json(
            {
                "protocol": listed.protocol,
                "TLS": listed.tls,
                "structured": listed.structured,
                "exports": entries,
            }
        )
        return 0
    if not listed.exports:
        print(f"{terminal_text(endpoint.display)}: the server lists no exports")
        return 0
    width = max(len(_shown_name(e.name)) for e in listed.exports)
    for item in listed.exports:
        size = format_size(item.info.size) if item.info else "?"
        ro = "ro" if item.info and item.info.read_only else "rw" if item.info else "  "
        desc = terminal_text(item.description or (item.info.description if item.info else "") or "")
        print(f"{_shown_name(item.name):<{width}}  {size:>10}  {ro}  {desc}".rstrip())
    return 0


def _shown_name(name: str) -> str:
    """A name from the server as it is safe to print; the default export is ``""``."""
    return terminal_text(name) if name else '""'


async def run(args: argparse.Namespace) -> int:
    if args.command == "info":
        return await _info(args)
    return await _list(args)
