"""An export the UI holds open, and the mode that shows it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nbdtui.present.terminal_text import terminal_text
from nbdtui.tui.markup import shown_name
from nbdtui.uri import Endpoint

if TYPE_CHECKING:
    from nbdtui.client.export import Export


@dataclass
class Session:
    """One export held open (through the shared pool) with the mode that shows it."""

    mode: str
    endpoint: Endpoint
    export: Export
    stack: contextlib.AsyncExitStack = field(repr=False)

    @property
    def label(self) -> str:
        return f"{shown_name(self.export.name)}  —  {terminal_text(self.endpoint.display)}"
