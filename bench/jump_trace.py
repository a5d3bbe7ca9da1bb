"""Where the time of a Ctrl+G jump goes: timestamps along its path (``bench_tui.py
--trace-jumps``).

Wraps, for the benchmark's process only, the Go-to dialog's submit handler, the editor's
jump (``EditorScreen._goto_chosen``), the hex view's reads, the ticks of the screens'
update timers (a tick is when Textual starts a frame) and ``App._display``. Each jump
keeps the first time each mark is reached after Enter; :meth:`JumpTrace.report` gives the
median of each over the cold jumps.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

MARKS = (
    ("submitted", "the dialog's Input.Submitted handled"),
    ("jump", "the editor's jump begins (dialog dismissed)"),
    ("read sent", "the hex view asks the export for the 64 KiB block"),
    ("read back", "the block is back"),
    ("jump done", "the jump's handler returns (frames allowed again)"),
    ("frame begun", "a screen's update timer ticks: a frame starts"),
    ("frame shown", "that frame handed to the driver"),
)


class JumpTrace:
    """Timestamps of the marks of :data:`MARKS`, per jump."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.current: dict[str, float] = {}
        self.jumps: list[dict[str, float]] = []

    def mark(self, name: str) -> None:
        if self.t0 is not None and name not in self.current:
            self.current[name] = time.perf_counter() - self.t0

    def begin(self, t0: float) -> None:
        self.t0, self.current = t0, {}

    def end(self, done: float, keep: bool) -> None:
        if keep and self.t0 is not None:
            self.current["shown (probe)"] = done - self.t0
            self.jumps.append(self.current)
        self.t0 = None

    def install(self, app, view) -> None:
        """Wrap what the marks time (for the rest of the process)."""
        from textual.timer import Timer

        from nbdtui.tui.dialogs.goto_dialog import GotoDialog
        from nbdtui.tui.screens.sector_editor import EditorScreen

        trace = self
        submitted = GotoDialog.on_input_submitted

        def on_submitted(dialog, event) -> None:
            trace.mark("submitted")
            submitted(dialog, event)

        GotoDialog.on_input_submitted = on_submitted  # type: ignore[method-assign]
        chosen = EditorScreen._goto_chosen

        async def goto_chosen(editor, offset) -> None:
            trace.mark("jump")
            result = chosen(editor, offset)
            if result is not None:  # a coroutine (the jump waits for its bytes)
                await result
            trace.mark("jump done")

        EditorScreen._goto_chosen = goto_chosen  # type: ignore[method-assign]
        read = view.read

        async def traced_read(offset: int, length: int) -> bytes:
            trace.mark("read sent")
            data = await read(offset, length)
            trace.mark("read back")
            return data

        view.read = traced_read
        tick = Timer._tick

        async def traced_tick(timer, *, next_timer: float, count: int) -> None:
            if timer.name == "screen_update":
                trace.mark("frame begun")
            await tick(timer, next_timer=next_timer, count=count)

        Timer._tick = traced_tick  # type: ignore[method-assign]
        display: Callable = app._display

        def traced_display(screen, renderable) -> None:
            display(screen, renderable)
            if renderable is not None:
                trace.mark("frame shown")

        app._display = traced_display

    def report(self) -> list[str]:
        """One line per mark: median ms after Enter over the jumps that reached it."""
        lines = [f"Ctrl+G cold jump, median ms after Enter (of {len(self.jumps)} jumps):"]
        names = [*MARKS, ("shown (probe)", "the frame with the new sector's bytes shown")]
        for name, what in names:
            times = [j[name] * 1000 for j in self.jumps if name in j]
            if times:
                lines.append(
                    f"  {statistics.median(times):7.2f}  {name:<14} {what} (first, n={len(times)})"
                )
        return lines
