""" "Follow" in the inspector: the integers at the cursor read as places to jump to.

Each unsigned integer row of the inspector (u16, u32, u64, little- and big-endian) can
be a byte offset or a sector number (an LBA, in the editor's sector size). Only places
inside the export are offered, each value once per kind, in the inspector's order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nbdtui.disk.inspect import Field


@dataclass(frozen=True)
class Target:
    field: str  # the inspector row ("u32 LE")
    value: int
    kind: str  # "offset" or "sector"
    offset: int  # where it leads

    @property
    def label(self) -> str:
        if self.kind == "offset":
            return f"{self.field} {self.value} as offset → 0x{self.offset:x}"
        return f"{self.field} {self.value} as sector/LBA → 0x{self.offset:x}"


def targets(fields: Iterable[Field], size: int, sector_size: int) -> list[Target]:
    """The places the integer ``fields`` lead to inside an export of ``size`` bytes."""
    found: list[Target] = []
    seen: set[tuple[str, int]] = set()
    numbers = [f for f in fields if f.number is not None and f.size >= 2]
    for kind, scale in (("offset", 1), ("sector", sector_size)):
        for field in numbers:
            assert field.number is not None
            offset = field.number * scale
            if offset >= size or (kind, field.number) in seen:
                continue
            seen.add((kind, field.number))
            found.append(Target(field.name, field.number, kind, offset))
    return found
