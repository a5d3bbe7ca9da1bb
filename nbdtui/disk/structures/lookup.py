"""Which structure and field lie at an offset: for the editor's status line, sector
headers and partition list. Built once from a :class:`Survey`; a backup copy's bytes are
named like the primary's (``ext4 superblock (group 1)``)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, replace

from nbdtui.disk.structures.model import Field, Structure
from nbdtui.disk.structures.survey import Found, Survey

__all__ = ["Place", "StructureIndex"]


@dataclass(frozen=True)
class Place:
    """A field found at an offset, in the structure (or backup copy) that holds it."""

    structure: Structure
    field: Field
    at: int  # where this copy of the field lies (a backup's, or the field's own)
    copy: str = ""  # "" for the primary, else the backup's label

    def describe(self) -> str:
        """``ext4 superblock: s_magic = 0xef53 (0xEF53)``, one line for the status."""
        name = self.structure.name or self.structure.type
        where = f"{name} ({self.copy})" if self.copy else name
        meaning = f" ({self.field.meaning})" if self.field.meaning else ""
        if self.copy:  # the value shown is the primary's: a backup's may differ
            return f"{where}: {self.field.name}{meaning}"
        return f"{where}: {self.field.name} = {self.field.value}{meaning}"


class StructureIndex:
    """Every field of every structure of a survey (and of their backups), by offset."""

    def __init__(self, survey: Survey | None = None):
        self.survey = survey
        spans: list[tuple[int, int, Place]] = []
        for s in self._structures():
            for f in s.fields:
                spans.append((f.at, f.at + f.size, Place(s, f, f.at)))
                for b in s.backups:
                    shift = b.at - s.at
                    if 0 <= f.at - s.at < b.length:
                        copy = Place(s, f, f.at + shift, b.label or "backup")
                        spans.append((f.at + shift, f.at + shift + f.size, copy))
        spans.sort(key=lambda span: (span[0], span[1] - span[0]))
        self._spans = spans
        self._starts = [span[0] for span in spans]
        heads: list[tuple[int, str]] = []
        for s in self._structures():
            name = s.name or s.type
            heads.append((s.at, name))
            heads.extend((b.at, f"{name} ({b.label or 'backup'})") for b in s.backups)
        heads.sort()
        self._heads = heads
        self._head_starts = [at for at, _ in heads]

    def _structures(self) -> list[Structure]:
        if self.survey is None:
            return []
        out: list[Structure] = []
        roots = [self.survey.table] + [f.structure for f in self.survey.found]
        for s in roots:
            if s is not None:
                out.append(s)
                out.extend(s.parts)
        return out

    def with_found(self, structures: Iterable[Structure]) -> StructureIndex:
        """This index and the structures a scan found that the survey had not (one whose
        primary copy is gone, say, found from a backup): their fields get names, and
        ``R`` offers their repairs."""
        if self.survey is None:
            return self
        known = {(f.structure.type, f.structure.offset) for f in self.survey.found if f.structure}
        more = tuple(
            Found(s.offset, s.size or s.length, s)
            for s in structures
            if (s.type, s.offset) not in known
        )
        if not more:
            return self
        return StructureIndex(replace(self.survey, found=self.survey.found + more))

    def place_at(self, offset: int) -> Place | None:
        """The field that holds the byte at ``offset`` (the narrowest, when they nest)."""
        best: tuple[int, Place] | None = None
        index = bisect.bisect_right(self._starts, offset)
        # Fields are short (at most a few hundred bytes): look back a little.
        for start, end, place in reversed(self._spans[max(0, index - 64) : index]):
            if start <= offset < end and (best is None or end - start < best[0]):
                best = (end - start, place)
        return best[1] if best else None

    def names_in(self, low: int, high: int) -> list[str]:
        """The structures (and backup copies) whose bytes begin in ``[low, high)``: what a
        sector header says the sector holds."""
        first = bisect.bisect_left(self._head_starts, low)
        last = bisect.bisect_left(self._head_starts, high)
        return [name for _, name in self._heads[first:last]]

    def structure_at(self, offset: int) -> Structure | None:
        """The filesystem or volume whose space holds ``offset`` (its partition, or the
        whole export), else the partition table."""
        if self.survey is None:
            return None
        for found in self.survey.found:
            if found.structure is not None and found.offset <= offset < found.offset + found.size:
                return found.structure
        return self.survey.table

    def summary(self, start: int) -> str:
        """``ext4 'root'`` for the structure of the partition at ``start`` ("" if none)."""
        if self.survey is None:
            return ""
        for found in self.survey.found:
            if found.offset == start and found.structure is not None:
                s = found.structure
                kind = f"{s.type} {s.version}" if s.type == "vfat" else s.type
                return f"{kind} {s.label!r}" if s.label else kind
        return ""
