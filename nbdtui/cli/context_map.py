"""`nbdtui map --context CTX [--context CTX...]`: the extents of any meta context
(``qemu:dirty-bitmap:NAME``, ``qemu:allocation-depth``, ``base:allocation``).

One context prints exactly as ``nbdinfo --map=CTX`` does (``--json`` too). Several are
printed side by side: the range is cut wherever any of them changes, and each line
gives the offset, the length, then the type and description of each context in the
order given; in JSON each row is ``{"offset", "length", "contexts": {CTX: {"type",
"description"}}}``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING

from nbdtui.client.export import Extent

if TYPE_CHECKING:
    from nbdtui.client.export import Export

DIRTY_BITMAP = "qemu:dirty-bitmap:"
LIMIT = 4096  # rows whose words set the widths of the text columns
Row = tuple[int, int, list[int]]  # offset, length, the flags of each context


def describe(context: str, flags: int) -> str:
    """The words ``nbdinfo --map=CTX`` prints for ``flags`` of ``context``."""
    if context == "base:allocation":
        return Extent(0, 0, flags).description
    if context.startswith(DIRTY_BITMAP):
        return {0: "clean", 1: "dirty"}.get(flags, f"unknown ({flags:#x})")
    if context == "qemu:allocation-depth":
        return {0: "absent", 1: "local"}.get(flags, f"backing depth {flags}")
    return ""


def side_by_side(columns: list[list[Extent]]) -> list[Row]:
    """``(offset, length, flags of each column)``, cut wherever any column changes
    (every column covers the same range)."""
    rows: list[Row] = []
    index = [0] * len(columns)
    if not columns or not columns[0]:
        return rows
    pos, end = columns[0][0].offset, columns[0][-1].end
    while pos < end:
        flags, stop = [], end
        for c, extents in enumerate(columns):
            while extents[index[c]].end <= pos:
                index[c] += 1
            extent = extents[index[c]]
            flags.append(extent.flags)
            stop = min(stop, extent.end)
        rows.append((pos, stop - pos, flags))
        pos = stop
    return rows


async def print_map(
    export: Export, contexts: list[str], offset: int, length: int, as_json: bool
) -> int:
    """Print the rows as they come: the extents of each context are taken as the
    server reports them (1-byte extents, say), and nothing but the current extent of
    each context and the row being built is kept."""
    contexts = list(dict.fromkeys(contexts))
    for ctx in contexts:  # (NotSupportedError for a context the server did not agree to)
        await export.context_extents(ctx, offset, 0)
    rows: _Rows = _JsonRows(contexts) if as_json else _TextRows(contexts)
    async with contextlib.AsyncExitStack() as stack:
        columns = [
            await stack.enter_async_context(
                contextlib.aclosing(export.iter_context_extents(ctx, offset, length))
            )
            for ctx in contexts
        ]
        current: list[Extent | None] = [None] * len(columns)
        held: Row | None = None  # the last row: the next may go on with it
        pos, end = offset, offset + length
        while pos < end:
            flags, stop = [], end
            for c, column in enumerate(columns):
                extent = current[c]
                while extent is None or extent.end <= pos:
                    extent = current[c] = await anext(column)
                flags.append(extent.flags)
                stop = min(stop, extent.end)
            if held is not None and held[2] == flags:
                held = (held[0], held[1] + stop - pos, flags)
            else:
                if held is not None:
                    rows.add(held)
                held = (pos, stop - pos, flags)
            pos = stop
        if held is not None:
            rows.add(held)
    rows.close()
    return 0


class _Rows:
    def __init__(self, contexts: list[str]) -> None:
        self.contexts = contexts
        self.out = sys.stdout

    def add(self, row: Row) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _JsonRows(_Rows):
    """A JSON array written an element at a time (as ``json.dump(indent=2)`` would)."""

    count = 0

    def add(self, row: Row) -> None:
        o, n, f = row
        doc: dict[str, object]
        if len(self.contexts) == 1:
            ctx = self.contexts[0]
            doc = {"offset": o, "length": n, "type": f[0], "description": describe(ctx, f[0])}
        else:
            doc = {
                "offset": o,
                "length": n,
                "contexts": {
                    ctx: {"type": t, "description": describe(ctx, t)}
                    for ctx, t in zip(self.contexts, f, strict=True)
                },
            }
        self.out.write(("[\n" if not self.count else ",\n") + _indent(json.dumps(doc, indent=2)))
        self.count += 1

    def close(self) -> None:
        self.out.write("\n]\n" if self.count else "[]\n")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))


class _TextRows(_Rows):
    """Aligned columns: the widths of the first ``LIMIT`` rows (all of them, usually;
    later rows with longer words just shift the columns after them)."""

    def __init__(self, contexts: list[str]) -> None:
        super().__init__(contexts)
        self.first: list[Row] | None = []
        self.widths: list[int] = []

    def add(self, row: Row) -> None:
        if self.first is None:
            self._write(row)
            return
        self.first.append(row)
        if len(self.first) >= LIMIT:
            self._flush()

    def _flush(self) -> None:
        first, self.first = self.first or [], None
        self.widths = [
            max((len(describe(ctx, f[c])) for _, _, f in first), default=0)
            for c, ctx in enumerate(self.contexts)
        ]
        for row in first:
            self._write(row)

    def _write(self, row: Row) -> None:
        o, n, f = row
        cells = [
            f"{t:3d}  {describe(ctx, t):<{w}}"
            for t, ctx, w in zip(f, self.contexts, self.widths, strict=True)
        ]
        self.out.write(f"{o:10d}  {n:10d}  " + "  ".join(cells).rstrip() + "\n")

    def close(self) -> None:
        if self.first is not None:
            self._flush()
