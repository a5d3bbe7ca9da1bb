"""Every structure decoder, in the order a partition is probed (most specific first)."""

from __future__ import annotations

from nbdtui.disk.structures.model import Probe

#: Filled by each family's module as it is written: (blkid type names, probe).
PROBES: tuple[tuple[tuple[str, ...], Probe], ...] = ()
