"""Recognise a filesystem (or container) from the first bytes of a partition.

``identify(data)`` returns a short name ("ext4", "FAT32", "NTFS", "swap", "LUKS2", …)
or None. Pass at least :data:`MIN_PROBE_BYTES` (8 KiB: FAT, NTFS, ext, swap, LUKS,
XFS, LVM); pass :data:`PROBE_BYTES` to also see btrfs (superblock at 64 KiB) and
ISO 9660 (at 32 KiB). Fewer bytes never raise, they only find less.

``probe(data)`` returns the same name plus the label and UUID when the format has them.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

__all__ = ["MIN_PROBE_BYTES", "PROBE_BYTES", "Signature", "identify", "probe"]

MIN_PROBE_BYTES = 8192
PROBE_BYTES = 0x10000 + 0x1000  # btrfs superblock at 64 KiB

# ext feature bits that ext3 does not know: their presence means ext4.
_EXT3_INCOMPAT = 0x0002 | 0x0004 | 0x0010  # filetype, recover, meta_bg
_EXT3_RO_COMPAT = 0x0001 | 0x0002 | 0x0004  # sparse_super, large_file, btree_dir
_EXT_JOURNAL_DEV = 0x0008
_EXT_HAS_JOURNAL = 0x0004


@dataclass(frozen=True)
class Signature:
    name: str
    label: str = ""
    uuid: str = ""


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _ext(data: bytes) -> Signature | None:
    sb = data[1024:2048]
    if len(sb) < 0x88 or sb[0x38:0x3A] != b"\x53\xef":
        return None
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    if incompat & _EXT_JOURNAL_DEV:
        name = "ext journal"
    elif incompat & ~_EXT3_INCOMPAT or ro_compat & ~_EXT3_RO_COMPAT:
        name = "ext4"
    elif compat & _EXT_HAS_JOURNAL:
        name = "ext3"
    else:
        name = "ext2"
    return Signature(name, _text(sb[0x78:0x88]), str(uuid.UUID(bytes=bytes(sb[0x68:0x78]))))


def _fat(data: bytes) -> Signature | None:
    if len(data) < 512 or data[510:512] != b"\x55\xaa":
        return None
    bps, spc, reserved, fats, root_entries, sectors16, media, fat16_len = struct.unpack_from(
        "<HBHBHHBH", data, 0x0B
    )
    if not (_is_pow2(bps) and 512 <= bps <= 4096 and _is_pow2(spc) and reserved and fats):
        return None
    if not (media == 0xF0 or media >= 0xF8):
        return None
    serial_at, label_at = (0x43, 0x47) if fat16_len == 0 else (0x27, 0x2B)
    if fat16_len == 0 and data[0x52:0x57] == b"FAT32":
        name = "FAT32"
    elif data[0x36:0x3B] in (b"FAT12", b"FAT16"):
        name = data[0x36:0x3B].decode()
    elif data[0x36:0x39] == b"FAT" and fat16_len:
        total = sectors16 or struct.unpack_from("<I", data, 0x20)[0]
        root = (root_entries * 32 + bps - 1) // bps
        clusters = (total - reserved - fats * fat16_len - root) // spc
        name = "FAT12" if clusters < 4085 else "FAT16"
    else:
        return None
    serial = struct.unpack_from("<I", data, serial_at)[0]
    label = data[label_at : label_at + 11].decode("ascii", errors="replace").strip()
    if label == "NO NAME":
        label = ""
    return Signature(name, label, f"{serial >> 16:04X}-{serial & 0xFFFF:04X}")


def _ntfs_exfat(data: bytes) -> Signature | None:
    if len(data) < 512 or data[510:512] != b"\x55\xaa":
        return None
    if data[3:11] == b"NTFS    ":
        serial = struct.unpack_from("<Q", data, 0x48)[0]
        return Signature("NTFS", "", f"{serial:016X}")
    if data[3:11] == b"EXFAT   ":
        serial = struct.unpack_from("<I", data, 0x64)[0]
        return Signature("exFAT", "", f"{serial >> 16:04X}-{serial & 0xFFFF:04X}")
    return None


def _swap(data: bytes) -> Signature | None:
    for page in (4096, 8192, 16384, 65536):
        magic = data[page - 10 : page]
        if magic in (b"SWAPSPACE2", b"SWAP-SPACE"):
            if magic == b"SWAP-SPACE":
                return Signature("swap")
            label = _text(data[1052:1068])
            uid = bytes(data[1036:1052])
            return Signature("swap", label, str(uuid.UUID(bytes=uid)) if any(uid) else "")
    return None


def _luks(data: bytes) -> Signature | None:
    if data[:6] != b"LUKS\xba\xbe" or len(data) < 0xD0:
        return None
    version = struct.unpack_from(">H", data, 6)[0]
    label = _text(data[0x18:0x48]) if version == 2 else ""
    return Signature(f"LUKS{version}", label, _text(data[0xA8:0xD0]))


def _xfs(data: bytes) -> Signature | None:
    if data[:4] != b"XFSB" or len(data) < 0x78:
        return None
    return Signature("XFS", _text(data[0x6C:0x78]), str(uuid.UUID(bytes=bytes(data[0x20:0x30]))))


def _btrfs(data: bytes) -> Signature | None:
    sb = data[0x10000 : 0x10000 + 0x1000]
    if sb[0x40:0x48] != b"_BHRfS_M" or len(sb) < 0x12B + 256:
        return None
    return Signature("btrfs", _text(sb[0x12B : 0x12B + 256]), str(uuid.UUID(bytes=sb[0x20:0x30])))


def _lvm(data: bytes) -> Signature | None:
    for sector in range(4):
        base = sector * 512
        if data[base : base + 8] == b"LABELONE" and data[base + 24 : base + 32] == b"LVM2 001":
            return Signature("LVM2 PV", "", _text(data[base + 32 : base + 64]))
    return None


def _other(data: bytes) -> Signature | None:
    if data[:4] == b"hsqs":
        return Signature("squashfs")
    if data[0x8001:0x8006] == b"CD001":
        return Signature("ISO 9660", _text(data[0x8028:0x8048]))
    for at in (0, 4096):
        if data[at : at + 4] == b"\xfc\x4e\x2b\xa9":
            return Signature("Linux RAID member")
    return None


# Order matters: LUKS/XFS/LVM headers are unambiguous; FAT last among boot sectors.
_PROBES = (_luks, _xfs, _lvm, _btrfs, _ntfs_exfat, _ext, _swap, _fat, _other)


def probe(data: bytes) -> Signature | None:
    """The format at the start of ``data`` with its label and UUID, or None."""
    data = bytes(data)
    for fn in _PROBES:
        try:
            found = fn(data)
        except (struct.error, ValueError):
            found = None
        if found is not None:
            return found
    return None


def identify(data: bytes) -> str | None:
    """A short name of the format at the start of ``data`` ("ext4", "FAT32", …), or None."""
    found = probe(data)
    return found.name if found else None
