"""Linux swap (blkid: swap): the version 1 header of a swap area.

The magic ``SWAPSPACE2`` ends the first page (4, 8, 16 or 64 KiB); the header at
1024 holds the version, the last page, the UUID and the label, in the byte order of
the machine that made it (a version of 1 read little- or big-endian tells which).
The old ``SWAP-SPACE`` (version 0) has no header. No checksum, no backup.
"""

from __future__ import annotations

import struct

from nbdtui.disk.structures.field_specs import decoded, table
from nbdtui.disk.structures.model import Check, ProbePlan, Structure

TYPES = ("swap",)
MAGICS = (b"SWAPSPACE2", b"SWAP-SPACE")
PAGE_SIZES = (4096, 8192, 16384, 65536)

_ROWS = (
    ("version", 1024, "I", "header version (1)"),
    ("last_page", 1028, "I", "last usable page"),
    ("nr_badpages", 1032, "I", "bad pages listed"),
    ("uuid", 1036, "uuid", "UUID"),
    ("volume_name", 1052, "16s", "label"),
)
#: The header's fields in either byte order (a version of 1 says which).
ROWS = {order: table(_ROWS, order) for order in "<>"}
MAGIC_ROW = table((("magic", 0, "10s", "magic 'SWAPSPACE2' at the end of the first page"),))


def probe(offset: int, size: int) -> ProbePlan:
    """The swap area that starts at ``offset``, or None."""
    if size < PAGE_SIZES[0]:
        return None
    first = yield (offset, PAGE_SIZES[0])
    page, magic = 0, b""
    for n in PAGE_SIZES:
        if n > size:
            break
        data = first if n == PAGE_SIZES[0] else (yield (offset + n - 10, 10))
        if bytes(data[-10:]) in MAGICS:
            page, magic = n, bytes(data[-10:])
            break
    if not page:
        return None
    magic_fields, _ = decoded(MAGIC_ROW, magic, offset + page - 10)
    if magic == b"SWAP-SPACE":
        return Structure(
            "swap",
            offset,
            offset,
            page,
            None,
            version="0",
            name="swap signature (version 0)",
            fields=magic_fields,
        )
    order = "<" if struct.unpack_from("<I", first, 1024)[0] == 1 else ">"
    fields, v = decoded(ROWS[order], bytes(first[:1068]), offset)
    last = int(v["last_page"])
    checks = (
        Check("version", v["version"] == 1, str(v["version"]), "1"),
        Check(
            "last_page",
            last > 0 and (last + 1) * page <= size,
            str(last),
            f"<= {size // page - 1}",
            "the swap area ends past the end of the device",
        ),
    )
    return Structure(
        type="swap",
        offset=offset,
        at=offset,
        length=page,
        size=(last + 1) * page,
        label=str(v["volume_name"]),
        uuid=str(v["uuid"]),
        version="1",
        name="swap header",
        fields=fields + magic_fields,
        checks=checks,
        problems=tuple(c.detail or c.name for c in checks if not c.ok),
    )
