"""What the tests run from outside this repository, and which Debian package brings it.

One table, :data:`PROGRAMS` (program -> package) plus :data:`SYSTEM_MODULES` (a module of
Debian's own ``/usr/bin/python3`` -> package), and :data:`PYTHON_MODULES` for the few
modules of the test interpreter that pip installs. ``scripts/install-deps.sh`` must install every
package named here (``tests/unit/test_requirements.py`` checks its ``APT_PACKAGES``).

A test asks with :func:`require` (or :func:`require_system_module`, :func:`require_module`);
when the program is missing the test FAILS, naming the package::

    sfdisk is missing: apt-get install fdisk (scripts/install-deps.sh installs it)

Missing tools are never a silent skip: skips are kept for real platform limits only (no root
for losetup, a Python without TLS-PSK), and say so.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess

import pytest

# Programs the tests, their fixtures and their oracles run -> the Debian package.
PROGRAMS: dict[str, str] = {
    # NBD servers
    "nbdkit": "nbdkit",
    "qemu-nbd": "qemu-utils",
    "qemu-img": "qemu-utils",
    "qemu-io": "qemu-utils",
    "nbd-server": "nbd-server",
    # libnbd's tools, the reference client
    "nbdinfo": "libnbd-bin",
    "nbdcopy": "libnbd-bin",
    "nbdsh": "python3-libnbd",
    "ddrescuelog": "gddrescue",  # the oracle of `nbdtui copy --rescue`'s map
    # SSH and TLS
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ssh-agent": "openssh-client",
    "ssh-add": "openssh-client",
    "openssl": "openssl",
    # oracles for the hex dump, partition tables and file systems
    "hexdump": "bsdextrautils",
    "sfdisk": "fdisk",
    "sgdisk": "gdisk",
    "mkfs.vfat": "dosfstools",
    "fsck.fat": "dosfstools",
    "mdir": "mtools",
    "mcopy": "mtools",
    "mtype": "mtools",
    "mkfs.ext2": "e2fsprogs",
    "mkfs.ext3": "e2fsprogs",
    "mkfs.ext4": "e2fsprogs",
    "dumpe2fs": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "mkntfs": "ntfs-3g",
    "ntfs-3g": "ntfs-3g",
    "ntfsinfo": "ntfs-3g",
    "ntfs-3g.probe": "ntfs-3g",
    "mkfs.exfat": "exfatprogs",
    "fsck.exfat": "exfatprogs",
    "blkid": "util-linux",
    "mkswap": "util-linux",
    "mkfs.xfs": "xfsprogs",
    "xfs_db": "xfsprogs",
    "xfs_repair": "xfsprogs",
    "mkfs.btrfs": "btrfs-progs",
    "btrfs": "btrfs-progs",
    "cryptsetup": "cryptsetup-bin",
    "mdadm": "mdadm",
    "pvck": "lvm2",
    "losetup": "mount",
    "file": "file",
    # process control, the terminal and benchmarks
    "setpriv": "util-linux",
    "tmux": "tmux",
    "fio": "fio",
}

# Debian's system Python, where the libnbd bindings live (nbdsh is `python3 -m nbd`).
SYSTEM_PYTHON = "/usr/bin/python3"

# Modules imported by SYSTEM_PYTHON in a subprocess -> the Debian package.
SYSTEM_MODULES: dict[str, str] = {
    "nbd": "python3-libnbd",
}

# Python modules the tests import that are not in the standard library and that only some
# tests need -> how to install them (they come with nbdtui's dependencies and test extras).
PYTHON_MODULES: dict[str, str] = {
    "bcrypt": "asyncssh[bcrypt], a dependency of nbdtui",
}

# Directories searched besides PATH: sshd, sfdisk, mkfs.* live in sbin, which a normal
# user's PATH may not hold.
SBIN = "/usr/sbin:/sbin:/usr/local/sbin"


def packages() -> set[str]:
    """Every Debian package the tests need."""
    return set(PROGRAMS.values()) | set(SYSTEM_MODULES.values())


def missing_message(what: str, package: str) -> str:
    return f"{what} is missing: apt-get install {package} (scripts/install-deps.sh installs it)"


def find_program(name: str) -> str | None:
    """The absolute path of ``name`` (PATH, then the sbin directories), or None."""
    if name not in PROGRAMS:
        raise KeyError(f"{name!r} is not in tests/support/requirements.py's PROGRAMS: add it")
    return shutil.which(name) or shutil.which(name, path=SBIN)


def require(name: str) -> str:
    """The absolute path of program ``name``; fails the test, naming the package, if absent."""
    path = find_program(name)
    if path is None:
        pytest.fail(missing_message(name, PROGRAMS[name]), pytrace=False)
    return path


@functools.cache
def _system_module_error(module: str) -> str | None:
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} does not exist"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "import failed"
    return None


def require_system_module(module: str) -> str:
    """``SYSTEM_PYTHON`` after checking that it imports ``module``; fails the test, naming
    the package, when it does not."""
    if module not in SYSTEM_MODULES:
        raise KeyError(f"{module!r} is not in tests/support/requirements.py's SYSTEM_MODULES")
    error = _system_module_error(module)
    if error is not None:
        what = f"the {module} module of {SYSTEM_PYTHON}"
        message = missing_message(what, SYSTEM_MODULES[module])
        pytest.fail(f"{message}; {error}", pytrace=False)
    return SYSTEM_PYTHON


def require_module(module: str) -> None:
    """Fails the test, naming how to install it, when ``module`` cannot be imported by this
    Python (``scripts/install-deps.sh`` runs ``pip install -e '.[test]'``)."""
    if module not in PYTHON_MODULES:
        raise KeyError(f"{module!r} is not in tests/support/requirements.py's PYTHON_MODULES")
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(
            f"{module} is missing ({exc}): pip install -e '.[test]' installs it "
            f"({PYTHON_MODULES[module]}; scripts/install-deps.sh runs that pip)",
            pytrace=False,
        )
