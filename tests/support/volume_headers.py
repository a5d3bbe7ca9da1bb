"""Headers built from their specifications, for the formats whose tools need a block
device to create them (LVM's pvcreate, mdadm --create): the tests write these into a
file and check them with the tools that read files (blkid -p, mdadm --examine)."""

from __future__ import annotations

import struct
import uuid

from nbdtui.disk.structures.lvm import lvm_crc
from nbdtui.disk.structures.mdraid import sb_csum

PV_UUID = "Abcdef0123456789ghijKLMNOPqrstuv"  # 32 characters, as LVM makes them
MD_UUID = uuid.UUID("0123abcd-4567-89ef-0123-456789abcdef")
MD_DEVICE_UUID = uuid.UUID("fedcba98-7654-3210-fedc-ba9876543210")


def pv_label(device_size: int, sector: int = 1) -> bytes:
    """A PV label sector (label header, PV header with one data area and one metadata
    area, extension), to be written at ``sector`` * 512 of a device."""
    pv = PV_UUID.encode() + struct.pack("<Q", device_size)
    pv += struct.pack("<QQ", 1 << 20, 0) + bytes(16)  # data area: from 1 MiB to the end
    pv += struct.pack("<QQ", 4096, (1 << 20) - 4096) + bytes(16)  # metadata area
    pv += struct.pack("<II", 2, 0) + bytes(16)  # extension: version 2, no bootloader area
    body = struct.pack("<I", 32) + b"LVM2 001" + pv
    body += bytes(512 - 20 - len(body))
    return b"LABELONE" + struct.pack("<QI", sector, lvm_crc(body)) + body


def md_superblock(data_sectors: int, name: str = "host:vol", version: str = "1.2") -> bytes:
    """A metadata 1.x superblock of a two-device RAID1 member (role 0), 256 + 2 * 2
    bytes padded to 512. Version 1.1 goes at the device's start, 1.2 at 4 KiB, 1.0 at
    :func:`md_end_offset` (``data_sectors`` is then the device's size, and the data
    runs from sector 0 up to the superblock)."""
    if version == "1.0":
        super_offset, data_offset = md_end_offset(data_sectors * 512) // 512, 0
        data_sectors = super_offset
    else:
        super_offset, data_offset = {"1.1": 0, "1.2": 8}[version], 2048
    sb = bytearray(256 + 4)
    struct.pack_into("<III", sb, 0, 0xA92B4EFC, 1, 0)
    sb[16:32] = MD_UUID.bytes
    sb[32 : 32 + len(name)] = name.encode()
    struct.pack_into("<QiIQII", sb, 64, 1_700_000_000, 1, 0, data_sectors, 0, 2)
    struct.pack_into("<QQQQ", sb, 128, data_offset, data_sectors, super_offset, 0)
    struct.pack_into("<I", sb, 160, 0)
    sb[168:184] = MD_DEVICE_UUID.bytes
    struct.pack_into("<QQQ", sb, 192, 1_700_000_000, 1, 2**64 - 1)
    struct.pack_into("<I", sb, 220, 2)
    struct.pack_into("<HH", sb, 256, 0, 1)
    struct.pack_into("<I", sb, 216, sb_csum(bytes(sb)))
    return bytes(sb) + bytes(512 - len(sb))


def md_end_offset(device_size: int) -> int:
    """Where a 1.0 superblock lies on a device of ``device_size`` bytes: 8 KiB from the
    end, rounded down to 4 KiB."""
    return (device_size - 8192) & ~4095
