"""Test-server processes: reading /proc (who listens where, whose
child is who), free ports, and making servers die with pytest."""

from __future__ import annotations

import os
import shutil
import socket as socketlib
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

# --------------------------------------------------------------------------- /proc helpers


def _ppid_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            data = Path("/proc", entry.name, "stat").read_bytes()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        fields = data[data.rfind(b")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(pid: int) -> list[int]:
    """``pid`` followed by all its living descendants (breadth first)."""
    children: dict[int, list[int]] = {}
    for child, parent in _ppid_map().items():
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def is_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        data = Path("/proc", str(pid), "stat").read_bytes()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def _socket_inodes(pids: Iterable[int]) -> set[int]:
    inodes: set[int] = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _tcp_listen_inodes(port: int) -> set[int]:
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(int(fields[9]))
    return inodes


def _unix_listen_inodes(path: str) -> set[int]:
    inodes: set[int] = set()
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return inodes
    for line in lines:
        fields = line.split()
        # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON.
        if len(fields) >= 8 and int(fields[3], 16) & 0x10000 and fields[7] == path:
            inodes.add(int(fields[6]))
    return inodes


def _proc_works() -> bool:
    return Path("/proc/net/tcp").exists() and Path("/proc/self/fd").exists()


def _connectable(port: int | None, unix_path: str | None) -> bool:
    """Fallback readiness probe where /proc is not available."""
    family = socketlib.AF_UNIX if unix_path else socketlib.AF_INET
    with socketlib.socket(family, socketlib.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(unix_path or ("127.0.0.1", port))
        except OSError:
            return False
    return True


def is_listening(pid: int, *, port: int | None = None, unix_path: str | None = None) -> bool:
    """True when the process tree of ``pid`` holds a listening socket on ``port``/``unix_path``."""
    if not _proc_works():
        return _connectable(port, unix_path)
    wanted = _unix_listen_inodes(unix_path) if unix_path else _tcp_listen_inodes(port or 0)
    return bool(wanted) and bool(wanted & _socket_inodes(process_tree(pid)))


def free_port() -> int:
    """An ephemeral TCP port of 127.0.0.1 that was free a moment ago (callers must retry)."""
    with socketlib.socket(socketlib.AF_INET, socketlib.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail_of(path: Path | None, limit: int = 4000) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


_PDEATHSIG: list[str] | None = None


def pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig TERM --`` when available: the server dies with pytest."""
    global _PDEATHSIG
    if _PDEATHSIG is None:
        setpriv = shutil.which("setpriv")
        _PDEATHSIG = []
        if setpriv and sys.platform.startswith("linux"):
            help_text = subprocess.run(
                [setpriv, "--help"], capture_output=True, text=True, check=False
            ).stdout
            if "--pdeathsig" in help_text:
                _PDEATHSIG = [setpriv, "--pdeathsig", "TERM", "--"]
    return list(_PDEATHSIG)


# A tiny supervisor for servers that insist on daemonizing (nbd-server forks one process per
# connection only when it daemonizes; with -d it serves a single session and exits). It becomes
# a child subreaper, so the daemon is re-parented to it and stays in our process tree; it dies
# with pytest (PR_SET_PDEATHSIG) and takes the whole tree down when terminated.
SUPERVISOR = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)                 # PR_SET_CHILD_SUBREAPER
libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG

class Stop(Exception):
    pass

def stop(signum, frame):
    raise Stop

def descendants():
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                data = open(f"/proc/{name}/stat", "rb").read()
            except OSError:
                continue
            parents[int(name)] = int(data[data.rfind(b")") + 2:].split()[1])
    found, todo = [], [os.getpid()]
    while todo:
        current = todo.pop()
        kids = [pid for pid, parent in parents.items() if parent == current]
        found += kids
        todo += kids
    return found

def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

def kill_all(sig):
    for pid in descendants():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
status = 0
try:
    if os.getppid() != int(sys.argv[1]):
        sys.exit(1)
    os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
    while True:
        try:
            pid, raw = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        status = os.waitstatus_to_exitcode(raw)
except Stop:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kill_all(signal.SIGTERM)
    deadline = time.monotonic() + 1.5
    while descendants() and time.monotonic() < deadline:
        reap()
        time.sleep(0.02)
    kill_all(signal.SIGKILL)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    status = 0
sys.exit(status if status >= 0 else 128 - status)
"""
