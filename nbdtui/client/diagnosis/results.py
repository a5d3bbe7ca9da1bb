"""What a diagnosis finds: one :class:`Step` per stage of a connection, and the
:class:`Diagnosis` of one endpoint (the steps, and the facts a fleet check reports)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The stable step names, in the order the walk takes them (``nbdtui doctor --json``).
STEP_NAMES = (
    "resolve",
    "connect",
    "ssh",
    "greeting",
    "tls",
    "export",
    "info",
    "features",
    "read",
    "throughput",
)

OK = "ok"
WARN = "warn"
FAIL = "fail"
SKIPPED = "skipped"
STATUSES = (OK, WARN, FAIL, SKIPPED)


def printable(text: str) -> str:
    """Server-supplied free text for a terminal: control characters escaped (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(name: str) -> str:
    """A server-supplied name for a terminal: quoted, control characters escaped."""
    if name.isprintable():
        return f"'{name}'"
    return repr(name)


@dataclass(frozen=True)
class Step:
    """One stage: ``status`` is ok, warn, fail or skipped; ``hint`` says what to do
    about a warn or a fail ("" otherwise)."""

    name: str
    status: str
    detail: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}


@dataclass
class Diagnosis:
    """Every step of one endpoint, and what they learnt."""

    uri: str
    steps: list[Step] = field(default_factory=list)
    size: int | None = None
    read_only: bool | None = None
    latency: float | None = None  # seconds for one 4 KiB read
    throughput: float | None = None  # bytes per second

    @property
    def failed(self) -> Step | None:
        """The first step that failed, or None."""
        return next((s for s in self.steps if s.status == FAIL), None)

    @property
    def ok(self) -> bool:
        return self.failed is None

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def as_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "steps": [s.as_dict() for s in self.steps]}
