"""GNU ddrescue's mapfile: which ranges of a rescued device were read, which are bad,
which were not tried yet. The same format as ddrescue's, so ddrescuelog and ddrescue
itself (and nbdkit's ddrescue filter) read what nbdtui writes, and the other way round::

    # Mapfile. Created by nbdtui 0.1
    # current_pos  current_status  current_pass
    0x00100000     ?               1
    #      pos        size  status
    0x00000000  0x00100000  +
    0x00100000  0x00700000  ?

Comment lines start with ``#``. The first other line is the current position, its
status (``?`` copying, ``*`` trimming, ``/`` scraping, ``-`` retrying, ``+``
finished; ``F``, ``G`` from ddrescue's fill and generate modes) and, optionally, the
pass. Then one line per block: position, size and status (``?`` not tried, ``*`` not
trimmed, ``/`` not scraped, ``-`` bad, ``+`` finished), in order, each starting where
the one before ended. Blocks need not reach the end of the device: the rest was not
tried. Numbers are hexadecimal with ``0x`` (decimal and octal are read too).

The map is saved atomically (:meth:`RescueMap.save`: a temporary file in the same
directory, fsync, rename, fsync of the directory): a crash leaves the old map or the
new one, never a torn one.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import tempfile
import time
from collections.abc import Iterable

from nbdtui import __version__
from nbdtui.errors import UsageError

BLOCK_STATUSES = "?*/-+"
POSITION_STATUSES = "?*/-+FG"
FINISHED, BAD, UNTRIED, NOT_TRIMMED, NOT_SCRAPED = "+", "-", "?", "*", "/"


class RescueMap:
    """The status of every byte of a ``size``-byte device: consecutive blocks, each
    with one status, neighbours of equal status merged."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._starts: list[int] = [0]  # block i is _starts[i] .. _starts[i + 1] (or size)
        self._status: list[str] = [UNTRIED]
        self.position = 0
        self.phase = UNTRIED
        self.pass_ = 1

    # ---- queries ---------------------------------------------------------------

    def blocks(self) -> Iterable[tuple[int, int, str]]:
        """``(start, end, status)`` of every block, in order."""
        ends = [*self._starts[1:], self.size]
        return zip(self._starts, ends, self._status, strict=True)

    def ranges(self, statuses: str, lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
        """The ranges of ``lo..hi`` whose status is one of ``statuses``."""
        hi = self.size if hi is None else hi
        out: list[tuple[int, int]] = []
        for start, end, status in self.blocks():
            a, b = max(start, lo), min(end, hi)
            if a < b and status in statuses:
                if out and out[-1][1] == a:
                    out[-1] = (out[-1][0], b)
                else:
                    out.append((a, b))
        return out

    def total(self, statuses: str, lo: int = 0, hi: int | None = None) -> int:
        return sum(b - a for a, b in self.ranges(statuses, lo, hi))

    # ---- changes ---------------------------------------------------------------

    def mark(self, start: int, end: int, status: str) -> None:
        """Give ``start..end`` the status ``status``."""
        assert status in BLOCK_STATUSES, status
        if start >= end:
            return
        self._split(start)
        if end < self.size:
            self._split(end)
        i = bisect.bisect_left(self._starts, start)
        j = bisect.bisect_left(self._starts, end)
        self._starts[i:j] = [start]
        self._status[i:j] = [status]
        # merge with the neighbours
        if i + 1 < len(self._starts) and self._status[i + 1] == status:
            del self._starts[i + 1], self._status[i + 1]
        if i > 0 and self._status[i - 1] == status:
            del self._starts[i], self._status[i]

    def _split(self, at: int) -> None:
        """Make a block start at ``at``."""
        i = bisect.bisect_right(self._starts, at) - 1
        if self._starts[i] != at:
            self._starts.insert(i + 1, at)
            self._status.insert(i + 1, self._status[i])

    # ---- text ------------------------------------------------------------------

    def text(self, command_line: str = "") -> str:
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        lines = [f"# Mapfile. Created by nbdtui {__version__}"]
        if command_line:
            lines.append(f"# Command line: {command_line}")
        lines.append(f"# Current time: {now}")
        if self.phase == FINISHED:
            lines.append("# Finished")
        lines.append("# current_pos  current_status  current_pass")
        lines.append(f"0x{self.position:08X}     {self.phase}               {self.pass_}")
        lines.append("#      pos        size  status")
        for start, end, status in self.blocks():
            lines.append(f"0x{start:08X}  0x{end - start:08X}  {status}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, size: int, name: str) -> RescueMap:
        """The map in ``text`` (read from ``name``) for a ``size``-byte device; raise
        UsageError naming the line that is wrong, or saying the map is of a larger
        device."""
        result = cls(size)
        starts: list[int] = []
        status: list[str] = []
        have_position = False
        end = 0
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            where = f"{name} line {number}"
            if not have_position:
                if len(words) not in (2, 3) or words[1] not in POSITION_STATUSES:
                    raise UsageError(
                        f"{where}: not a ddrescue mapfile (expected 'POS STATUS [PASS]', "
                        f"got {line[:40]!r})"
                    )
                result.position = _number(words[0], where)
                result.phase = words[1]
                result.pass_ = _number(words[2], where) if len(words) == 3 else 1
                have_position = True
                continue
            if len(words) != 3 or words[2] not in BLOCK_STATUSES:
                raise UsageError(
                    f"{where}: expected 'POS SIZE STATUS' (status one of {BLOCK_STATUSES}), "
                    f"got {line[:40]!r}"
                )
            pos, length = _number(words[0], where), _number(words[1], where)
            if pos != end:
                raise UsageError(
                    f"{where}: block at {pos:#x} does not start where the one before ended "
                    f"({end:#x}): a torn or edited map"
                )
            if length <= 0:
                raise UsageError(f"{where}: block of size {length} (must be positive)")
            end = pos + length
            if end > size:
                raise UsageError(
                    f"{name} is the map of a larger device ({end} bytes or more; this one "
                    f"has {size}): not the map of this copy"
                )
            if status and status[-1] == words[2]:
                continue  # (merge)
            starts.append(pos)
            status.append(words[2])
        if not have_position:
            raise UsageError(f"{name}: not a ddrescue mapfile (no current position line)")
        if not starts:
            return result
        if end < size and status[-1] != UNTRIED:  # the rest was not tried
            starts.append(end)
            status.append(UNTRIED)
        result._starts, result._status = starts, status
        return result

    def save(self, path: str, command_line: str = "") -> None:
        """Write the map to ``path`` atomically (see the module documentation)."""
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".nbdtui-map-", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.text(command_line))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _number(word: str, where: str) -> int:
    try:
        value = int(word, 0)
    except ValueError:
        try:  # ddrescue writes C-style octal (0755) too
            value = int(word, 8) if word.startswith("0") else int(word)
        except ValueError:
            raise UsageError(f"{where}: {word[:20]!r} is not a number") from None
    if value < 0:
        raise UsageError(f"{where}: {word[:20]!r} is negative")
    return value


def load(path: str, size: int) -> RescueMap | None:
    """The map saved at ``path``, or None when there is none yet."""
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            text = f.read(64 << 20)
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a ddrescue mapfile (not text)") from None
    return RescueMap.parse(text, size, path)
