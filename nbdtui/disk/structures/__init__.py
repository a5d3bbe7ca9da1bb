"""Filesystem and volume structures: decoders with their checks and backup copies.

One module a family (``ext.py``, ``fat.py``, ``exfat.py``, ``ntfs.py``, ``xfs.py``,
``btrfs.py``, ``luks.py``, ``swap.py``, ``lvm.py``, ``mdraid.py``); the shared types are
in :mod:`nbdtui.disk.structures.model`, the field tables they decode with in
:mod:`nbdtui.disk.structures.field_specs`, the list of decoders in
:mod:`nbdtui.disk.structures.registry`.
"""
