"""`nbdtui map --context CTX [--context CTX...]`: the extents of any meta context
(``qemu:dirty-bitmap:NAME``, ``qemu:allocation-depth``, ``base:allocation``).

One context prints exactly as ``nbdinfo --map=CTX`` does (``--json`` too). Several are
printed side by side: the range is cut wherever any of them changes, and each line
gives the offset, the length, then the type and description of each context in the
order given; in JSON each row is ``{"offset", "length", "contexts": {CTX: {"type",
"description"}}}``.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from nbdtui.client.export import Extent

if TYPE_CHECKING:
    from nbdtui.client.export import Export

DIRTY_BITMAP = "qemu:dirty-bitmap:"


def describe(context: str, flags: int) -> str:
    """The words ``nbdinfo --map=CTX`` prints for ``flags`` of ``context``."""
    if context == "base:allocation":
        return Extent(0, 0, flags).description
    if context.startswith(DIRTY_BITMAP):
        return {0: "clean", 1: "dirty"}.get(flags, f"unknown ({flags:#x})")
    if context == "qemu:allocation-depth":
        return {0: "absent", 1: "local"}.get(flags, f"backing depth {flags}")
    return ""


def side_by_side(columns: list[list[Extent]]) -> list[tuple[int, int, list[int]]]:
    """``(offset, length, flags of each column)``, cut wherever any column changes
    (every column covers the same range)."""
    rows: list[tuple[int, int, list[int]]] = []
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
    contexts = list(dict.fromkeys(contexts))
    columns = [await export.context_extents(ctx, offset, length) for ctx in contexts]
    rows = side_by_side(columns)
    out = sys.stdout
    if as_json:
        doc: list[dict[str, object]]
        if len(contexts) == 1:
            doc = [
                {"offset": o, "length": n, "type": f[0], "description": describe(contexts[0], f[0])}
                for o, n, f in rows
            ]
        else:
            doc = [
                {
                    "offset": o,
                    "length": n,
                    "contexts": {
                        ctx: {"type": t, "description": describe(ctx, t)}
                        for ctx, t in zip(contexts, f, strict=True)
                    },
                }
                for o, n, f in rows
            ]
        json.dump(doc, out, indent=2)
        out.write("\n")
        return 0
    texts = [[describe(ctx, f[c]) for _, _, f in rows] for c, ctx in enumerate(contexts)]
    widths = [max(map(len, column), default=0) for column in texts]
    for r, (o, n, f) in enumerate(rows):
        cells = [f"{t:3d}  {texts[c][r]:<{widths[c]}}" for c, t in enumerate(f)]
        out.write(f"{o:10d}  {n:10d}  " + "  ".join(cells).rstrip() + "\n")
    return 0
