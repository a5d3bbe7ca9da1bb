"""Repairs as plans that return :class:`Patch` lists: restore a structure from its backup,
or store its computed checksums. Pure: they read through the plan and write nothing; the
caller reviews the patches and commits them (the CLI through the undo journal).

A repair refuses with :class:`~nbdtui.errors.RepairError` (one line, nothing written)
when the structure has no backup, when every backup fails its own checks, or when the
family has nothing of the kind to repair.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from nbdtui.disk.structures import (
    btrfs,
    exfat,
    ext,
    fat,
    luks,
    lvm,
    mdraid,
    ntfs,
    tables,
    xfs,
)
from nbdtui.disk.structures.model import Patch, Request, Structure
from nbdtui.errors import RepairError

__all__ = ["ACTIONS", "repair_plan"]

RepairPlan = Generator[Request, bytes, list[Patch]]
_Maker = Callable[[Structure], RepairPlan]

#: blkid type -> (restore from backup, fix checksums).
_FAMILIES: dict[str, tuple[_Maker, _Maker]] = {}
for _module in (ext, fat, exfat, ntfs, tables, xfs, btrfs, luks, mdraid, lvm):
    for _name in _module.TYPES:
        _FAMILIES[_name] = (_module.restore_plan, _module.checksum_plan)

ACTIONS = ("restore-backup", "fix-checksums")


def repair_plan(structure: Structure, action: str) -> RepairPlan:
    """The plan of ``action`` ("restore-backup" or "fix-checksums") on ``structure``."""
    makers = _FAMILIES.get(structure.type)
    if makers is None:
        raise RepairError(
            f"a {structure.type} has no backup copy and no checksum to repair: nothing was written"
        )
    if action not in ACTIONS:
        raise ValueError(f"unknown repair {action!r}")
    what = structure.name or structure.type
    from_backup = any(c.name == "primary" for c in structure.checks)  # primary gone
    if action == "restore-backup" and not from_backup:
        if not structure.backups:
            raise RepairError(
                f"the {what} at offset {structure.offset} has no backup copy to restore from:"
                " nothing was written"
            )
        if not any(b.sound for b in structure.backups):
            backup = structure.backups[0]
            raise RepairError(
                f"the {what} backup at {backup.at} ({backup.label}) fails its own checks:"
                " nothing was written"
            )
    patches = yield from makers[ACTIONS.index(action)](structure)
    return patches
