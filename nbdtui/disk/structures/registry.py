"""Every structure decoder, in the order a partition is probed (most specific first)."""

from __future__ import annotations

from nbdtui.disk.structures import exfat, ext, fat, ntfs
from nbdtui.disk.structures.model import Probe

#: Filled by each family's module as it is written: (blkid type names, probe).
PROBES: tuple[tuple[tuple[str, ...], Probe], ...] = (
    (ext.TYPES, ext.probe),
    (exfat.TYPES, exfat.probe),
    (ntfs.TYPES, ntfs.probe),
    (fat.TYPES, fat.probe),
)
