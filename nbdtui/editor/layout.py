"""Rows of the hex editor: which row shows which bytes, for exports of any size.

The editor shows an export as rows of ``bytes_per_line`` bytes, and every sector starts
with a header row that names it (``sector 2048``). The mapping is pure arithmetic on
Python integers, so a 2**63-byte export (2**59 rows) is as exact as a 1 KiB one::

    row 0      header of sector 0
    row 1..L   data rows of sector 0      (L = sector_size / bytes_per_line)
    row L+1    header of sector 1
    ...

The last sector may be short when the export size is not a multiple of the sector
size; its last data row may be short too.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_LINE = 16


@dataclass(frozen=True)
class Row:
    """One screen row: a sector header (``length == 0``) or a run of data bytes."""

    sector: int
    offset: int  # first byte of the row (for a header: first byte of its sector)
    length: int  # bytes shown on the row; 0 for a header

    @property
    def is_header(self) -> bool:
        return self.length == 0


@dataclass(frozen=True)
class RowLayout:
    """Row arithmetic for an export of ``size`` bytes cut into sectors."""

    size: int
    sector_size: int = 512
    bytes_per_line: int = BYTES_PER_LINE

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"negative export size {self.size}")
        if self.sector_size <= 0 or self.sector_size % self.bytes_per_line:
            raise ValueError(
                f"sector size {self.sector_size} is not a multiple of {self.bytes_per_line}"
            )

    @property
    def lines_per_sector(self) -> int:
        return self.sector_size // self.bytes_per_line

    @property
    def rows_per_sector(self) -> int:
        return self.lines_per_sector + 1

    @property
    def sectors(self) -> int:
        """Number of sectors, counting a short last one."""
        return -(-self.size // self.sector_size)

    @property
    def total_rows(self) -> int:
        full, rest = divmod(self.size, self.sector_size)
        rows = full * self.rows_per_sector
        if rest:
            rows += 1 + -(-rest // self.bytes_per_line)
        return rows

    @property
    def offset_digits(self) -> int:
        """Hex digits of the offset column: at least 8, more when the export needs them."""
        return max(8, len(f"{max(self.size - 1, 0):x}"))

    def row(self, index: int) -> Row | None:
        """The row at ``index``, or ``None`` past the end."""
        if index < 0 or index >= self.total_rows:
            return None
        sector, within = divmod(index, self.rows_per_sector)
        start = sector * self.sector_size
        if within == 0:
            return Row(sector, start, 0)
        offset = start + (within - 1) * self.bytes_per_line
        return Row(sector, offset, min(self.bytes_per_line, self.size - offset))

    def row_of(self, offset: int) -> int:
        """Index of the data row that shows byte ``offset``."""
        sector, within = divmod(offset, self.sector_size)
        return sector * self.rows_per_sector + 1 + within // self.bytes_per_line

    def header_row(self, sector: int) -> int:
        return sector * self.rows_per_sector

    def sector_of(self, offset: int) -> int:
        return offset // self.sector_size

    def clamp(self, offset: int) -> int:
        """``offset`` moved inside the export (0 for an empty one)."""
        return max(0, min(offset, self.size - 1)) if self.size else 0

    def top_for(self, offset: int, height: int) -> int:
        """A top row that shows ``offset`` with its sector header when they both fit.

        Used for jumps (goto, Home/End, PgUp/PgDn, search hits): the sector of the
        target begins at the top of the window, unless the target would then be out of
        sight (sectors taller than the window), in which case it sits a third of the
        way down. The result never leaves blank rows below the last row.
        """
        target = self.row_of(offset)
        top = self.header_row(self.sector_of(offset))
        if target >= top + height:
            top = target - height // 3
        return self.clamp_top(top, height)

    def clamp_top(self, top: int, height: int) -> int:
        return max(0, min(top, self.total_rows - max(height, 1)))
