"""Inventories of endpoints for a fleet check: one endpoint a line.

::

    # comments start with '#'
    nbd://db1.example.com/disk
    nbd+unix:///vm1?socket=/run/nbd/vm1.sock   via=hypervisor1

``via=HOST`` reaches the endpoint through that SSH host (``[user@]host[:port]``, an
alias of ``~/.ssh/config`` as well): the URI is then as the SSH host sees it. A line that
does not parse is a :class:`Problem` naming the file and line; the others still count.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbdtui.errors import UriError
from nbdtui.uri import Endpoint, parse, without_secrets

__all__ = [
    "FIELDS",
    "Problem",
    "Target",
    "parse_inventory",
    "read_inventory",
    "target",
    "without_duplicates",
]

FIELDS = ("via",)


@dataclass(frozen=True)
class Target:
    """One endpoint to check: ``label`` names it in reports (the URI without secrets,
    and ``via`` when there is one), ``source`` says where it came from."""

    label: str
    endpoint: Endpoint
    via: str | None = None
    source: str = "argument"


@dataclass(frozen=True)
class Problem:
    """A line that could not be read: ``where`` is ``FILE:LINE``."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def target(uri: str, via: str | None = None, source: str = "argument") -> Target:
    """The target ``uri`` names (reached through ``via``); raises UriError."""
    endpoint = parse(uri)
    label = without_secrets(uri)
    if via is not None:
        from nbdtui.client.transport.ssh.endpoint import tunnel_endpoint

        endpoint = tunnel_endpoint(endpoint, via)
        label = f"{label} via {via}"
    return Target(label, endpoint, via, source)


def parse_inventory(text: str, name: str) -> tuple[list[Target], list[Problem]]:
    """The targets of an inventory's ``text`` (``name`` is its file, for messages)."""
    targets: list[Target] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        words = []
        for word in line.split():
            if word.startswith("#"):
                break
            words.append(word)
        if not words:
            continue
        uri, fields = words[0], words[1:]
        values: dict[str, str] = {}
        problem = None
        for item in fields:
            key, sep, value = item.partition("=")
            if not sep or key not in FIELDS:
                problem = f"unknown field {item!r} (fields: {', '.join(f + '=' for f in FIELDS)})"
                break
            if not value:
                problem = f"{key}= needs a value"
                break
            values[key] = value
        if problem is None:
            try:
                targets.append(target(uri, values.get("via"), where))
            except UriError as exc:
                problem = str(exc)
        if problem is not None:
            problems.append(Problem(where, problem))
    return targets, problems


def read_inventory(path: str) -> tuple[list[Target], list[Problem]]:
    """:func:`parse_inventory` of a file; raises OSError when it cannot be read."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return parse_inventory(text, path)


def without_duplicates(targets: list[Target]) -> tuple[list[Target], list[Problem]]:
    """The first of targets that share a label (a report, a Prometheus series, has one row
    per endpoint); each repeat is a :class:`Problem` naming the first."""
    first: dict[str, Target] = {}
    problems = []
    for item in targets:
        seen = first.setdefault(item.label, item)
        if seen is not item:
            problems.append(Problem(item.source, f"{item.label} again (first: {seen.source})"))
    return list(first.values()), problems
