"""XFS: the primary superblock (sector 0), its CRC-32C on v5, and the secondary
superblocks at the start of each allocation group, compared with the primary.

Big-endian. The CRC (v5) covers the superblock's sector with ``sb_crc`` taken as
zero, and is stored little-endian. A secondary's free-space and inode counters are
not kept up to date by design, so only the geometry and identity are compared.
"""

from __future__ import annotations

import struct
from collections.abc import Generator

from nbdtui.disk.structures.crc32c import crc32c
from nbdtui.disk.structures.field_specs import (
    Values,
    decoded,
    differences,
    read_backup,
    restore_source,
    table,
    unreadable,
    with_targets,
)
from nbdtui.disk.structures.model import Backup, Check, Patch, ProbePlan, Request, Structure
from nbdtui.errors import RepairError

TYPES = ("xfs",)
MAGIC = b"XFSB"
AGF_MAGIC = b"XAGF"  # the AG free space header, in the sector after each superblock
MAX_BACKUPS = 64  # secondaries compared (a large filesystem has thousands of AGs)
_CRC_AT = 224

ROWS = table(
    (
        ("sb_magicnum", 0, "4s", "magic 'XFSB'"),
        ("sb_blocksize", 4, "I", "block size in bytes"),
        ("sb_dblocks", 8, "Q", "blocks in the data device"),
        ("sb_rblocks", 16, "Q", "blocks in the realtime device"),
        ("sb_rextents", 24, "Q", "realtime extents"),
        ("sb_uuid", 32, "uuid", "filesystem UUID"),
        ("sb_logstart", 48, "Q", "first block of an internal log"),
        ("sb_rootino", 56, "Q", "root directory inode"),
        ("sb_rbmino", 64, "Q", "realtime bitmap inode"),
        ("sb_rsumino", 72, "Q", "realtime summary inode"),
        ("sb_rextsize", 80, "I", "realtime extent size in blocks"),
        ("sb_agblocks", 84, "I", "blocks per allocation group"),
        ("sb_agcount", 88, "I", "allocation groups"),
        ("sb_rbmblocks", 92, "I", "realtime bitmap blocks"),
        ("sb_logblocks", 96, "I", "log blocks"),
        ("sb_versionnum", 100, "H", "version (low 4 bits) and feature bits"),
        ("sb_sectsize", 102, "H", "sector size in bytes"),
        ("sb_inodesize", 104, "H", "inode size in bytes"),
        ("sb_inopblock", 106, "H", "inodes per block"),
        ("sb_fname", 108, "12s", "label"),
        ("sb_blocklog", 120, "B", "log2 of the block size"),
        ("sb_sectlog", 121, "B", "log2 of the sector size"),
        ("sb_inodelog", 122, "B", "log2 of the inode size"),
        ("sb_agblklog", 124, "B", "log2 of blocks per AG, rounded up"),
        ("sb_inprogress", 126, "B", "mkfs in progress (not 0: unfinished)"),
        ("sb_icount", 128, "Q", "allocated inodes"),
        ("sb_ifree", 136, "Q", "free inodes"),
        ("sb_fdblocks", 144, "Q", "free data blocks"),
        ("sb_features2", 200, "I", "more feature bits"),
        ("sb_features_compat", 208, "I", "compatible features (v5)"),
        ("sb_features_ro_compat", 212, "I", "read-only compatible features (v5)"),
        ("sb_features_incompat", 216, "I", "incompatible features (v5)"),
        ("sb_features_log_incompat", 220, "I", "log incompatible features (v5)"),
        ("sb_crc", _CRC_AT, "4x", "CRC-32C of the sector (v5), little-endian"),
        ("sb_meta_uuid", 248, "uuid", "metadata UUID (v5, when it differs)"),
    ),
    ">",
)
#: What a secondary superblock must agree on with the primary (its inode numbers,
#: sb_rootino and the realtime ones, are not kept there: xfs_repair rewrites them).
COMPARED = (
    "sb_magicnum",
    "sb_blocksize",
    "sb_dblocks",
    "sb_rblocks",
    "sb_uuid",
    "sb_logstart",
    "sb_agblocks",
    "sb_agcount",
    "sb_versionnum",
    "sb_sectsize",
    "sb_inodesize",
    "sb_fname",
    "sb_features2",
    "sb_features_compat",
    "sb_features_ro_compat",
    "sb_features_incompat",
)


def _crc(sector: bytes) -> tuple[int, int]:
    """(stored, computed) CRC-32C of a v5 superblock sector."""
    stored = struct.unpack_from("<I", sector, _CRC_AT)[0]
    computed = crc32c(bytes(sector[:_CRC_AT]) + bytes(4) + bytes(sector[_CRC_AT + 4 :]))
    return stored, computed


def _checks(sector: bytes, v: Values) -> list[Check]:
    version = int(v.get("sb_versionnum", 0)) & 0xF
    blocksize = int(v.get("sb_blocksize", 0))
    agblocks, agcount = int(v.get("sb_agblocks", 0)), int(v.get("sb_agcount", 0))
    dblocks = int(v.get("sb_dblocks", 0))
    checks = [
        Check("magic", sector[:4] == MAGIC, sector[:4].hex(), MAGIC.hex()),
        Check("version", version in (4, 5), str(version), "4 or 5"),
        Check(
            "geometry",
            blocksize in (512 << n for n in range(8))
            and agcount > 0
            and (agcount - 1) * agblocks < dblocks <= agcount * agblocks,
            f"{agcount} x {agblocks} blocks",
            f"{dblocks} blocks",
            "the allocation groups do not cover the data device",
        ),
    ]
    if version == 5:
        stored, computed = _crc(sector)
        checks.append(
            Check(
                "crc32c",
                stored == computed,
                f"{stored:08x}",
                f"{computed:08x}",
                "the superblock's CRC-32C does not match its bytes",
            )
        )
    return checks


def probe(offset: int, size: int) -> ProbePlan:
    """The XFS filesystem that starts at ``offset``, or None.

    When the superblock at ``offset`` is a secondary one (the AGF behind it names an
    allocation group other than 0), the filesystem starts that many groups earlier: it
    is decoded from there if its primary superblock is sound, and from this secondary,
    with the failed check ``primary``, if not (a scan finds a filesystem whose primary
    superblock was wiped this way)."""
    return (yield from _probe(offset, size, follow=True))


def _targets(v: Values, start: int) -> dict[str, tuple[str, int]]:
    """Where the log and the root directory's inode lie (absolute offsets): XFS block
    and inode numbers carry their allocation group in their high bits."""
    blocksize, agblocks = int(v["sb_blocksize"]), int(v["sb_agblocks"])
    agblklog, inodesize = int(v["sb_agblklog"]), int(v["sb_inodesize"])
    inopblog = int(v["sb_inopblock"]).bit_length() - 1

    def block(fsb: int) -> int:
        return start + ((fsb >> agblklog) * agblocks + (fsb & ((1 << agblklog) - 1))) * blocksize

    out = {}
    if int(v["sb_logstart"]) > 0:
        out["sb_logstart"] = ("block", block(int(v["sb_logstart"])))
    ino = int(v["sb_rootino"])
    if 0 < ino < 1 << 63 and inopblog >= 0:
        at = block(ino >> inopblog) + (ino & ((1 << inopblog) - 1)) * inodesize
        out["sb_rootino"] = ("offset", at)
    return out


def _sound(sector: bytes, at: int) -> bool:
    """Whether a superblock's magic, version and geometry are sound."""
    return sector[:4] == MAGIC and all(
        c.ok for c in _checks(sector, decoded(ROWS, sector, at)[1])[:3]
    )


def _probe(offset: int, size: int, *, follow: bool) -> ProbePlan:
    if size < 512:
        return None
    sector = yield (offset, 512)
    if sector[:4] != MAGIC:
        return None
    sectsize = struct.unpack_from(">H", sector, 102)[0]
    if sectsize in (1024, 2048, 4096, 8192, 16384, 32768) and 2 * sectsize <= size:
        sector = yield (offset, sectsize)
    else:
        sectsize = 512
    fields, v = decoded(ROWS, sector, offset)
    checks = _checks(sector, v)
    blocksize, dblocks = int(v["sb_blocksize"]), int(v["sb_dblocks"])
    agbytes = int(v["sb_agblocks"]) * blocksize
    sound = all(c.ok for c in checks[:3])
    start, ag = offset, 0
    if sound and 2 * sectsize <= size:
        agf = yield (offset + sectsize, 512)
        ag = struct.unpack_from(">I", agf, 8)[0] if agf[:4] == AGF_MAGIC else 0
        if 0 < ag < int(v["sb_agcount"]) and ag * agbytes <= offset:
            start = offset - ag * agbytes
            primary = yield (start, 512)
            if follow and _sound(primary, start):
                return (yield from _probe(start, size + ag * agbytes, follow=False))
            why = f"the primary superblock at {start} is missing or damaged"
            how = f"decoded from the secondary of AG {ag}"
            checks.append(Check("primary", False, detail=f"{why}: {how}"))
        else:
            ag = 0
    backups = []
    if sound:
        for n in range(1, min(int(v["sb_agcount"]), MAX_BACKUPS + 1)):
            at = start + n * agbytes
            if at + sectsize > offset + size:
                break
            copy = yield from read_backup(at, sectsize)
            if copy is None:
                backups.append(unreadable(at, sectsize, f"AG {n}"))
                continue
            _, cv = decoded(ROWS, copy, at)
            diff = differences(v, cv, COMPARED)
            ok = all(c.ok for c in _checks(copy, cv))
            backups.append(Backup(at, sectsize, not diff, ok, diff, f"AG {n}"))
    return Structure(
        type="xfs",
        offset=start,
        at=offset,
        length=sectsize,
        size=dblocks * blocksize or None,
        label=str(v["sb_fname"]),
        uuid=str(v["sb_uuid"]),
        version=f"V{int(v['sb_versionnum']) & 0xF}",
        name=f"XFS secondary superblock (AG {ag})" if ag else "XFS superblock",
        fields=with_targets(fields, _targets(v, start) if sound else {}),
        checks=tuple(checks),
        backups=tuple(backups),
        problems=tuple(c.detail or c.name for c in checks if not c.ok),
    )


# ---- repairs ---------------------------------------------------------------------

NULLFSINO = (1 << 64) - 1
_AGF_FREEBLKS, _AGF_FLCOUNT, _AGF_BTREEBLKS = 52, 48, 60
_AGI_COUNT, _AGI_FREECOUNT = 16, 28


def _with_crc(sector: bytearray) -> bytes:
    """The sector with its CRC-32C stored (v5 only)."""
    if struct.unpack_from(">H", sector, 100)[0] & 0xF == 5:
        struct.pack_into("<I", sector, _CRC_AT, _crc(bytes(sector))[1])
    return bytes(sector)


def _counters(start: int, sb: bytes) -> Generator[Request, bytes, tuple[int, int, int] | None]:
    """(allocated inodes, free inodes, free blocks) summed over every allocation group's
    AGI and AGF headers, as the kernel keeps them; None if one header is unsound."""
    sectsize, agcount = struct.unpack_from(">H", sb, 102)[0], struct.unpack_from(">I", sb, 88)[0]
    agbytes = struct.unpack_from(">I", sb, 84)[0] * struct.unpack_from(">I", sb, 4)[0]
    icount = ifree = fdblocks = 0
    for n in range(agcount):
        heads = yield (start + n * agbytes + sectsize, 2 * sectsize)
        agf, agi = bytes(heads[:sectsize]), bytes(heads[sectsize : 2 * sectsize])
        if agf[:4] != AGF_MAGIC or agi[:4] != b"XAGI":
            return None
        icount += struct.unpack_from(">I", agi, _AGI_COUNT)[0]
        ifree += struct.unpack_from(">I", agi, _AGI_FREECOUNT)[0]
        fdblocks += sum(
            struct.unpack_from(">I", agf, at)[0]
            for at in (_AGF_FREEBLKS, _AGF_FLCOUNT, _AGF_BTREEBLKS)
        )
    return icount, ifree, fdblocks


def restore_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Put a sound secondary superblock over the primary, with what differs by design
    made a primary's again: ``sb_inprogress`` cleared, the realtime inodes (a secondary
    holds NULLFSINO) set after the root inode as mkfs puts them, the inode and free
    block counters summed from each AG's headers, and the CRC computed again."""
    source = restore_source(structure, structure.offset)
    length = structure.length
    primary = bytes((yield (structure.offset, length)))
    sb = bytearray((yield (source.at, length)))
    sb[126] = 0
    root = struct.unpack_from(">Q", sb, 56)[0]
    for at, n in ((64, 1), (72, 2)):
        if struct.unpack_from(">Q", sb, at)[0] == NULLFSINO and 0 < root < NULLFSINO - 2:
            struct.pack_into(">Q", sb, at, root + n)
    counted = yield from _counters(structure.offset, bytes(sb))
    if counted is None:
        raise RepairError(
            "an allocation group's AGF or AGI header is damaged: the counters cannot be"
            " summed (run xfs_repair): nothing was written"
        )
    struct.pack_into(">QQQ", sb, 128, *counted)
    new = _with_crc(sb)
    return [Patch(structure.offset, primary, new)] if new != primary else []


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Store the computed CRC-32C in the superblock decoded (v5; v4 has none)."""
    sector = bytes((yield (structure.at, structure.length)))
    if sector[:4] != MAGIC:
        return []
    new = _with_crc(bytearray(sector))
    return [Patch(structure.at, sector, new)] if new != sector else []
