"""HexView: the Line-API widget that draws an export as offset, hex and text columns.

Scrolling is the widget's own: it keeps the index of its top row as a Python integer
and draws ``height`` rows from there with ``render_line``. Measured with Textual 8.2:
a ``ScrollView`` with a virtual height of 2**36 lines (1 TiB) scrolls to its end in
60 ms and exactly, but its scroll offsets are floats, exact only up to 2**53, and an NBD
export may have 2**63 - 1 bytes (2**59 rows here): at 2**55 rows a jump of 1000 rows
already landed 24 rows off. A scrollbar thumb is also useless at that scale. So the
widget keeps the offset itself; the right-hand column shows where the window is (click
it to jump there), and jumps never animate (an animated scroll would fetch every block
on the way).

Blocks come from a bounded :class:`BlockCache`; missing ones are fetched in one worker
(exclusive group: a new request cancels the previous one, so the latest position wins)
and shown as ``┄┄`` until they land (not ``·``, the allocation bar's hole glyph). Pending
edits are drawn over the fetched bytes.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Awaitable, Callable
from typing import ClassVar, Protocol

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from nbdtui.editor.cache import Block, BlockCache, read_block
from nbdtui.editor.edits import PendingEdits
from nbdtui.editor.layout import RowLayout
from nbdtui.errors import ConnectionLostError, NbdError

Reader = Callable[[int, int], Awaitable[bytes]]


class Marks(Protocol):
    """Bytes to draw marked (``nbdtui.editor.compare.DifferenceList``)."""

    def overlaps(self, offset: int, length: int) -> bool: ...
    def __contains__(self, offset: object) -> bool: ...


_TEXT = [chr(b) if 0x20 <= b < 0x7F else "." for b in range(256)]
HEX_PANE, TEXT_PANE = "hex", "text"
_TEXT_BYTES = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))  # _TEXT, as bytes
_PLAIN = Style()  # an unstyled byte (a new Style() each, before: equal to this one)
# Keys that may bring blocks not read yet on screen, and how long their next frame waits
# for them (a local read takes a millisecond; a slower one lands behind placeholders).
_FAR_KEYS = frozenset({"pageup", "pagedown", "home", "ctrl+home", "end", "ctrl+end"})
MOVE_FRAME_WAIT = 0.05
_SEP, _GAP = Segment(" "), Segment("  ")  # between hex cells; after the 8th / the offset
# A byte not loaded yet (or not readable for a lost connection); a hole is "·" elsewhere.
UNLOADED_HEX, UNLOADED_CHAR = "┄┄", "┄"


class _FrameStyles:
    """The styles one repaint of a :class:`HexView` draws with."""

    __slots__ = ("bar", "base", "hex_cells", "styles")

    def __init__(self, base: Style, styles: dict[str, Style]) -> None:
        self.base, self.styles = base, styles
        self.bar = Segment("│", styles["placeholder"])
        zero = styles["zero"]
        self.hex_cells = [Segment(f"{b:02x}", zero if b == 0 else _PLAIN) for b in range(256)]


class HexView(Widget, can_focus=True):
    """Offset column, hex pane, text pane and sector headers, for any export size.

    Read-only unless ``writable`` is set; then typed bytes become pending edits.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "hexview--offset",
        "hexview--header",
        "hexview--zero",
        "hexview--pending",
        "hexview--cursor",
        "hexview--cursor-other",
        "hexview--selection",
        "hexview--placeholder",
        "hexview--bad",
        "hexview--track",
        "hexview--thumb",
        "hexview--differ",
    }

    DEFAULT_CSS = """
    HexView { width: auto; height: 1fr; }
    HexView > .hexview--offset { color: $text-muted; }
    HexView > .hexview--header { color: $accent; text-style: bold; }
    HexView > .hexview--zero { color: $text-disabled; }
    HexView > .hexview--pending { color: $warning; text-style: bold underline; }
    HexView > .hexview--cursor { background: $accent; color: $text; text-style: bold; }
    HexView > .hexview--cursor-other { text-style: reverse; }
    HexView > .hexview--selection { background: $primary 60%; }
    HexView > .hexview--placeholder { color: $text-disabled; }
    HexView > .hexview--bad { color: $error; text-style: bold; }
    HexView > .hexview--track { color: $panel-lighten-1; }
    HexView > .hexview--thumb { color: $accent; }
    HexView > .hexview--differ { background: $error 45%; }
    """

    class Moved(Message):
        """The cursor, the selection or the pane changed."""

    class Loaded(Message):
        """Fetching started or finished (look at ``in_flight`` and ``fetch_error``)."""

    def __init__(
        self,
        read: Reader,
        size: int,
        *,
        sector_size: int = 512,
        edits: PendingEdits | None = None,
        cache: BlockCache | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.read = read
        self.layout_rows = RowLayout(size, sector_size)
        self.edits = edits if edits is not None else PendingEdits()
        self.cache = cache if cache is not None else BlockCache()
        self.top = 0  # index of the first row shown
        self.cursor = 0
        self.writable = False
        self.pane = HEX_PANE
        self.low_nibble = False  # the next hex digit typed sets the low nibble
        self.past_end = False  # the last byte was typed: the next byte has nowhere to go
        self.select_from: int | None = None  # selection start (the cursor is its other end)
        self.marking = False  # `v` pressed: moving extends the selection
        self.header_label: Callable[[int], str] = lambda sector: ""
        self.in_flight: set[int] = set()
        self._fetch_token: object | None = None
        self._fetched: asyncio.Future[None] | None = None  # done when that fetch ends
        self.fetch_error: str | None = None
        self.fetch_lost = False  # fetch_error is a lost connection (retry() when back)
        self._failed: set[int] = set()
        self._frame: _FrameStyles | None = None  # the styles of the repaint under way
        self.marks: Marks | None = None  # bytes drawn as differing (the compare screen)

    # ---- geometry -----------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        return self.layout_rows.size

    @property
    def sector_size(self) -> int:
        return self.layout_rows.sector_size

    @property
    def rows(self) -> int:
        return max(1, self.size.height)

    def set_sector_size(self, sector_size: int) -> None:
        self.layout_rows = RowLayout(self.size_bytes, sector_size)
        self.top = self.layout_rows.top_for(self.cursor, self.rows)
        self._changed()

    @property
    def line_width(self) -> int:
        """Columns of a data row: offset, hex pane, text pane, position column."""
        lay = self.layout_rows
        return lay.offset_digits + 2 + 3 * lay.bytes_per_line + 1 + lay.bytes_per_line + 2 + 2

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return self.line_width

    @property
    def selection(self) -> tuple[int, int] | None:
        """The selected bytes as ``(first, last)`` inclusive, or ``None``."""
        if self.select_from is None:
            return None
        return min(self.select_from, self.cursor), max(self.select_from, self.cursor)

    def clear_selection(self) -> None:
        self.select_from, self.marking = None, False
        self._changed()

    def toggle_mark(self) -> None:
        """``v``: start a selection at the cursor, or fix its end where the cursor is."""
        if self.marking:
            self.marking = False
        else:
            self.select_from, self.marking = self.cursor, True
        self._changed()

    # ---- movement -----------------------------------------------------------------

    def move(self, delta: int, *, extend: bool = False) -> None:
        """Move the cursor by ``delta`` bytes, scrolling as little as possible."""
        self._place(self.cursor + delta, extend)
        row = self.layout_rows.row_of(self.cursor)
        top = self.top
        if row < top:
            # Show the sector header too when the cursor reaches a sector's first line.
            first_line = self.cursor % self.sector_size < self.layout_rows.bytes_per_line
            top = row - 1 if first_line else row
        elif row >= top + self.rows:
            top = row - self.rows + 1
        self._scroll(top)

    def jump(self, offset: int, *, extend: bool = False) -> None:
        """Put the cursor on ``offset`` and show its sector from its header if it fits."""
        self._place(offset, extend)
        row = self.layout_rows.row_of(self.cursor)
        if not self.top <= row < self.top + self.rows or self.size.height == 0:
            self._scroll(self.layout_rows.top_for(self.cursor, self.rows))
        else:
            self._scroll(self.top)

    def page(self, sectors: int) -> None:
        """PgUp/PgDn: one sector back or on, with the sector's header at the top."""
        self._place(self.cursor + sectors * self.sector_size, False)
        self._scroll(self.layout_rows.top_for(self.cursor, self.rows))

    def scroll_rows(self, delta: int) -> None:
        self._scroll(self.top + delta)

    def switch_pane(self) -> None:
        self.pane = TEXT_PANE if self.pane == HEX_PANE else HEX_PANE
        self.low_nibble = False
        self._changed()

    def _place(self, offset: int, extend: bool) -> None:
        old = self.cursor
        self.cursor = self.layout_rows.clamp(offset)
        self.low_nibble = self.past_end = False
        if extend and self.select_from is None:
            self.select_from = old
        elif not extend and not self.marking:
            self.select_from = None

    def _scroll(self, top: int) -> None:
        self.top = self.layout_rows.clamp_top(top, self.rows)
        self._changed()

    def _changed(self) -> None:
        self.refresh()
        self.post_message(self.Moved())
        self.request_blocks()

    def on_resize(self) -> None:
        row = self.layout_rows.row_of(self.cursor)
        if not self.top <= row < self.top + self.rows:
            # e.g. a jump made before the first layout, when the height was unknown
            self._scroll(self.layout_rows.top_for(self.cursor, self.rows))
        else:
            self._scroll(self.top)

    # ---- bytes --------------------------------------------------------------------

    def device_byte(self, offset: int) -> int | None:
        """The export's byte at ``offset`` when it is loaded and readable."""
        block = self.cache.block_at(offset)
        if block is None or block.bad_at(offset, self.sector_size):
            return None
        pos = offset - block.offset
        return block.data[pos] if pos < len(block.data) else None

    def bytes_at(self, offset: int, length: int) -> bytes | None:
        """Loaded bytes from ``offset`` (pending edits applied), possibly short."""
        data = self.cache.peek(offset, length)
        return None if data is None else self.edits.overlay(offset, data)

    def invalidate(self) -> None:
        """Forget the cached blocks (after a write) and fetch what is on screen again."""
        self.cache.invalidate()
        self.retry()

    def retry(self) -> None:
        """Fetch again the blocks whose read failed (the connection is back)."""
        self._failed.clear()
        self.fetch_error, self.fetch_lost = None, False
        self._cancel_fetch()
        self.refresh()
        self.request_blocks()

    def _cancel_fetch(self) -> None:
        if self.is_mounted:
            self.workers.cancel_group(self, self._group)
        self._fetch_token = None
        self.in_flight = set()
        self._settle()

    def _settle(self) -> None:
        """The fetch of ``_fetched`` is over for whoever waits for it: done, cancelled,
        or replaced (perhaps before its worker even started)."""
        if self._fetched is not None and not self._fetched.done():
            self._fetched.set_result(None)

    async def loaded(self, wait: float) -> None:
        """Return when no fetch is running (the blocks on screen are cached or failed),
        or after ``wait`` seconds; the fetch goes on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # A newer fetch may replace the one awaited: then wait for it, in the time left.
        while self.in_flight and self._fetched is not None and not self._fetched.done():
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.wait([self._fetched], timeout=left)

    def _visible_blocks(self) -> list[int]:
        lay, bs = self.layout_rows, self.cache.block_size
        first = lay.row(self.top)
        last = lay.row(min(self.top + self.rows, lay.total_rows) - 1)
        if first is None or last is None:
            return []
        wanted = range(first.offset // bs, (last.offset + max(last.length, 1) - 1) // bs + 1)
        cursor_block = self.cursor // bs
        return [*wanted, *([cursor_block] if cursor_block not in wanted else [])]

    def request_blocks(self) -> None:
        """Fetch the visible blocks that are not cached: the latest request wins, a
        fetch for blocks no longer on screen is cancelled."""
        if not self.is_mounted:
            return
        wanted = self._visible_blocks()
        missing = [i for i in wanted if i not in self.cache and i not in self._failed]
        if missing and set(missing) <= self.in_flight:
            return  # the running fetch brings them
        if not missing:
            if self.in_flight - set(wanted):
                self._cancel_fetch()
                self.post_message(self.Loaded())
            return
        self._settle()
        self.in_flight = set(missing)
        self._fetch_token = token = object()
        self._fetched = done = asyncio.get_running_loop().create_future()
        self.post_message(self.Loaded())
        self.run_worker(
            self._fetch(missing, self.cache.epoch, token, done),
            group=self._group,
            exclusive=True,
            exit_on_error=False,
        )

    @property
    def _group(self) -> str:
        return f"hexview-fetch-{id(self)}"

    async def _fetch(
        self, indexes: list[int], epoch: int, token: object, done: asyncio.Future[None]
    ) -> None:
        bs = self.cache.block_size

        async def one(index: int) -> None:
            offset = index * bs
            length = min(bs, self.size_bytes - offset)
            block: Block = await read_block(self.read, offset, length, self.sector_size)
            if self.cache.put(index, block, epoch):
                self.refresh()

        try:
            if len(indexes) == 1:  # (a jump's usual case: no task, no loop turn to wait)
                await one(indexes[0])
            else:
                await asyncio.gather(*(one(i) for i in indexes))
            self.fetch_error, self.fetch_lost = None, False
        except NbdError as error:
            self._failed.update(i for i in indexes if i not in self.cache)
            self.fetch_error = str(error)
            self.fetch_lost = isinstance(error, ConnectionLostError)
        finally:
            if not done.done():
                done.set_result(None)
            if token is self._fetch_token:  # not replaced by a newer fetch meanwhile
                self.in_flight = set()
                self._fetch_token = None
                self.post_message(self.Loaded())
            # No refresh here: every block stored above was repainted already, and
            # nothing else drawn depends on what changed (in_flight, fetch_error).

    # ---- drawing ------------------------------------------------------------------

    _STYLE_NAMES = (
        "offset",
        "header",
        "zero",
        "pending",
        "cursor",
        "cursor-other",
        "selection",
        "placeholder",
        "bad",
        "track",
        "thumb",
        "differ",
    )

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"hexview--{name}")

    def _styles(self) -> _FrameStyles:
        """The styles of one repaint: those of the frame being drawn, else fresh ones."""
        frame = self._frame
        if frame is None:
            frame = _FrameStyles(self.rich_style, {n: self._style(n) for n in self._STYLE_NAMES})
        return frame

    def render_lines(self, crop: Region) -> list[Strip]:
        # Look the styles up once for all the rows of this repaint (they only change
        # with CSS, a theme or a pseudo-class, and Textual repaints after any of them).
        self._frame = None
        self._frame = self._styles()
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def render_line(self, y: int) -> Strip:
        frame = self._styles()
        width = self.size.width
        lay = self.layout_rows
        row = lay.row(self.top + y)
        base = frame.base
        tail = [Segment(" ", base), self._track(y, frame)]
        if row is not None and not row.is_header:
            segments = self._data(row.offset, row.length, frame)
            # A data row is exactly this wide (every character takes one cell), so when
            # the widget has its natural width there is nothing to crop or pad.
            if lay.offset_digits + 69 == width - 2 and row.length == lay.bytes_per_line:
                return Strip(segments + tail, width)
        elif row is None:
            segments = []
        else:
            segments = self._header(row.sector, row.offset, width - 2, frame)
        content = Strip(segments).crop_extend(0, max(width - 2, 0), base)
        return Strip.join([content, Strip(tail)])

    def _track(self, y: int, frame: _FrameStyles) -> Segment:
        """The position column: a thumb at the window's place in the export."""
        rows, total = self.rows, max(self.layout_rows.total_rows, 1)
        thumb = min(rows - 1, self.top * rows // total)
        if y == thumb:
            return Segment("█", frame.styles["thumb"])
        return Segment("│", frame.styles["track"])

    def _header(self, sector: int, offset: int, width: int, frame: _FrameStyles) -> list[Segment]:
        label = self.header_label(sector)
        text = f"── sector {sector} ── 0x{offset:x} "
        if label:
            text += f"── {label} "
        text = text.ljust(width, "─")[:width]
        return [Segment(text, frame.styles["header"])]

    def _data(self, offset: int, length: int, frame: _FrameStyles) -> list[Segment]:
        lay = self.layout_rows
        bpl = lay.bytes_per_line
        block = self.cache.block_at(offset)
        if (
            length == bpl == 16
            and block is not None
            and block.bad_at(offset, self.sector_size) is None
            and not offset <= self.cursor < offset + length
            and not (self.edits and self.edits.overlaps(offset, length))
            and not (self.marks is not None and self.marks.overlaps(offset, length))
        ):
            sel = self.selection
            if sel is None or sel[1] < offset or sel[0] >= offset + length:
                pos = offset - block.offset
                data = block.data[pos : pos + length]
                if len(data) == length:
                    return self._plain_data(offset, data, frame)
        return self._any_data(offset, length, block, frame)

    def _plain_data(self, offset: int, data: bytes, frame: _FrameStyles) -> list[Segment]:
        """A full row of loaded, readable, unedited bytes, without the cursor or the
        selection: what :meth:`_any_data` draws there, with runs of equally styled
        text-pane characters in one segment."""
        digits = self.layout_rows.offset_digits
        hex_cells = frame.hex_cells
        segs = [Segment(f"{offset:0{digits}x}", frame.styles["offset"]), _GAP]
        for value in data[:7]:
            segs += (hex_cells[value], _SEP)
        segs += (hex_cells[data[7]], _GAP)
        for value in data[8:]:
            segs += (hex_cells[value], _SEP)
        bar = frame.bar
        segs.append(bar)
        text = data.translate(_TEXT_BYTES).decode("ascii")
        if 0 not in data:
            segs.append(Segment(text, _PLAIN))
        elif not data.strip(b"\0"):
            segs.append(Segment(text, frame.styles["zero"]))
        else:
            zero = frame.styles["zero"]
            start = 0
            is_zero = data[0] == 0
            for i in range(1, 16):
                if (data[i] == 0) != is_zero:
                    segs.append(Segment(text[start:i], zero if is_zero else _PLAIN))
                    start, is_zero = i, not is_zero
            segs.append(Segment(text[start:], zero if is_zero else _PLAIN))
        segs.append(bar)
        return segs

    def _any_data(
        self, offset: int, length: int, block: Block | None, frame: _FrameStyles
    ) -> list[Segment]:
        lay = self.layout_rows
        digits = lay.offset_digits
        styles = frame.styles
        segs = [Segment(f"{offset:0{digits}x}", styles["offset"]), Segment("  ")]
        sel = self.selection
        bad_style = styles["bad"]
        hex_cells: list[Segment] = []
        text_cells: list[Segment] = []
        for i in range(lay.bytes_per_line):
            pos = offset + i
            if i >= length:
                hex_cells.append(Segment("   " if i != 7 else "    "))
                text_cells.append(Segment(" "))
                continue
            value = self.edits.value(pos)
            pending = value is not None
            style = Style()
            if block is None:
                hex_text, char, style = UNLOADED_HEX, UNLOADED_CHAR, styles["placeholder"]
            elif block.bad_at(pos, self.sector_size):
                hex_text, char, style = "!!", "!", bad_style
            else:
                if value is None:
                    value = block.data[pos - block.offset]
                hex_text, char = f"{value:02x}", _TEXT[value]
                if pending:
                    style = styles["pending"]
                elif value == 0:
                    style = styles["zero"]
            if value is not None and block is None:  # pending, nothing read yet
                hex_text, char = f"{value:02x}", _TEXT[value]
                style = styles["pending"]
            if self.marks is not None and pos in self.marks:
                style = style + styles["differ"]
            if sel and sel[0] <= pos <= sel[1]:
                style = style + styles["selection"]
            hex_style = text_style = style
            if pos == self.cursor:
                active, other = styles["cursor"], styles["cursor-other"]
                hex_style = style + (active if self.pane == HEX_PANE else other)
                text_style = style + (active if self.pane == TEXT_PANE else other)
            if pos == self.cursor and self.pane == HEX_PANE and self.low_nibble:
                hex_cells += [Segment(hex_text[0], style), Segment(hex_text[1], hex_style)]
            else:
                hex_cells.append(Segment(hex_text, hex_style))
            hex_cells.append(Segment("  " if i == 7 else " "))
            text_cells.append(Segment(char, text_style))
        bar = Segment("│", styles["placeholder"])
        return [*segs, *hex_cells, bar, *text_cells, bar]

    # ---- keys -------------------------------------------------------------------

    _KEYS: ClassVar[dict[str, Callable[[HexView], None]]] = {
        "up": lambda v: v.move(-v.layout_rows.bytes_per_line),
        "down": lambda v: v.move(v.layout_rows.bytes_per_line),
        "left": lambda v: v.move(-1),
        "right": lambda v: v.move(1),
        "shift+up": lambda v: v.move(-v.layout_rows.bytes_per_line, extend=True),
        "shift+down": lambda v: v.move(v.layout_rows.bytes_per_line, extend=True),
        "shift+left": lambda v: v.move(-1, extend=True),
        "shift+right": lambda v: v.move(1, extend=True),
        "pageup": lambda v: v.page(-1),
        "pagedown": lambda v: v.page(1),
        "home": lambda v: v.jump(0),
        "ctrl+home": lambda v: v.jump(0),
        "end": lambda v: v.jump(v.size_bytes - 1),
        "ctrl+end": lambda v: v.jump(v.size_bytes - 1),
        "tab": lambda v: v.switch_pane(),
    }

    async def on_key(self, event: events.Key) -> None:
        """Movement keys, and in write mode typed bytes, act here, in typing order.

        Bound on the screen, movement keys would run only once their event has bubbled
        up to the app, after keys typed later had already reached this widget: in a
        burst of keys (fast typing, a terminal paste) ``41<Right>42`` would type ``42``
        at the wrong place. The screen's bindings list them for the footer and help.

        A page or a jump to blocks not read yet holds the next frame until they are in,
        for at most MOVE_FRAME_WAIT, as a dialog's jump does (EditorScreen._goto_chosen):
        no frame of placeholders comes first, and the bytes do not wait for the frame
        after it. Keys typed meanwhile wait for it, in order.
        """
        action = self._KEYS.get(event.key)
        if action is None and not (self.writable and self._type(event.character)):
            return
        event.stop()
        event.prevent_default()
        if action is not None:
            action(self)
            if event.key in _FAR_KEYS and self.in_flight:
                with self.app.batch_update():
                    await self.loaded(MOVE_FRAME_WAIT)

    def types(self, char: str | None) -> bool:
        """Whether ``char`` is a byte typed in the current pane (in write mode): a hex
        digit in the hex pane, a printable ASCII character in the text pane."""
        if char is None or len(char) != 1 or self.size_bytes == 0:
            return False
        if self.pane == HEX_PANE:
            return char in string.hexdigits
        return 0x20 <= ord(char) < 0x7F

    def _type(self, char: str | None) -> bool:
        """Overwrite the byte at the cursor: a hex digit in the hex pane sets a nibble,
        a printable ASCII character in the text pane sets the byte. False: not a byte."""
        if char is None or not self.types(char):
            return False
        original = self.device_byte(self.cursor)
        if self.past_end:
            self.app.bell()
            last = self.size_bytes - 1
            self.notify(f"End of export: the last byte is at 0x{last:x} ({last}). Nothing typed.")
        elif original is None:
            self.app.bell()
            self.notify("The byte under the cursor is not loaded or unreadable: nothing typed.")
        elif self.pane == HEX_PANE:
            self.edits.set_nibble(self.cursor, not self.low_nibble, int(char, 16), original)
            if self.low_nibble:
                self._next_byte()
            else:
                self.low_nibble = True
                self._changed()
        else:
            self.edits.set_byte(self.cursor, ord(char), original)
            self._next_byte()
        return True

    def _next_byte(self) -> None:
        """After a typed byte: on to the next one, or stay on the last byte of the
        export, where a further byte is refused until the cursor moves."""
        last = self.cursor == self.size_bytes - 1
        self.move(1)
        self.past_end = last

    # ---- mouse --------------------------------------------------------------------

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.scroll_rows(3)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.scroll_rows(-3)

    def on_click(self, event: events.Click) -> None:
        """Put the cursor on the clicked byte (hex or text pane); the right column
        jumps to that fraction of the export."""
        self.focus()
        if event.x >= self.size.width - 1:
            total = self.layout_rows.total_rows
            self._scroll(event.y * total // self.rows)
            return
        row = self.layout_rows.row(self.top + event.y)
        if row is None or row.is_header:
            return
        hex_x = event.x - self.layout_rows.offset_digits - 2
        text_x = hex_x - 3 * 16 - 1 - 1
        if 0 <= hex_x < 3 * 16 + 1:
            index, self.pane = (hex_x - (hex_x > 24)) // 3, HEX_PANE
        elif 0 <= text_x < 16:
            index, self.pane = text_x, TEXT_PANE
        else:
            return
        if index < row.length:
            self._place(row.offset + index, False)
            self._changed()
