"""Every structure decoder, in the order a partition is probed (most specific first)."""

from __future__ import annotations

from nbdtui.disk.structures import btrfs, exfat, ext, fat, luks, lvm, mdraid, ntfs, swap, xfs
from nbdtui.disk.structures.model import Probe

#: Filled by each family's module as it is written: (blkid type names, probe).
PROBES: tuple[tuple[tuple[str, ...], Probe], ...] = (
    (luks.TYPES, luks.probe),
    (xfs.TYPES, xfs.probe),
    (lvm.TYPES, lvm.probe),
    (mdraid.TYPES, mdraid.probe),
    (btrfs.TYPES, btrfs.probe),
    (swap.TYPES, swap.probe),
    (ext.TYPES, ext.probe),
    (exfat.TYPES, exfat.probe),
    (ntfs.TYPES, ntfs.probe),
    (fat.TYPES, fat.probe),
)
