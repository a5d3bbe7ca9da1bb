#!/usr/bin/env python3
"""Hex editor responsiveness and memory: key press to repainted sector, headless.

Starts ``nbdkit -f --exit-with-parent -U SOCK pattern 1T`` (or ``memory 1T`` with a few
MiB of random bytes written first: ``--data memory``) in a private temporary directory,
runs the real app (``create_app``) headless with Textual's Pilot at 120x40, lets it open
the export's editor, waits until the export screen under it has mapped the allocation
(``--during-map``: do not wait), and measures:

* PgDn: for ``--presses`` presses, the time from ``pilot.press("pagedown")`` until a
  frame in which the hex view has drawn every one of its rows at the new position with
  real bytes (no ``┄┄`` placeholder) has been handed to the driver and encoded as
  terminal output. The signals are the widget's own ``render_line`` and
  ``App._display``, wrapped (see :class:`PaintProbe`), so the time includes Textual's
  frame pacing (at most 1/60 s) and, on a cache miss, the fetch of a 64 KiB block.
* Ctrl+G jumps to ``--jumps`` random offsets of the export (every one a cache miss),
  timed from the Enter that closes the dialog to the repaint; then the same targets
  again while their blocks are still cached (dialog and repaint only).
* Memory: Home, then PgDn through ``--sectors`` sectors (keys sent in bursts of
  ``--burst``, each burst waits for its repaint): RSS (VmRSS, and VmHWM reset just
  before), tracemalloc peak of Python objects, and the editor's block cache, sampled
  along the way: it must stay flat, whatever the number of sectors visited.
* A reference floor: one read round trip over the same socket with libnbd (``nbdsh``,
  in one process, no start-up counted) and with nbdtui's library, for 512 B and 64 KiB
  (the editor's block size).

Usage::

    python bench/bench_tui.py [--data pattern|memory] [--presses 200] [--jumps 30]
                              [--sectors 10000] [--burst 50] [--no-tracemalloc]
                              [--during-map] [--profile] [--trace-jumps]

Rendering is headless: the driver does not write to a terminal, so a real terminal adds
its own output time on top of these figures.

Figures (ms: median / p90 / max; 30 cold jumps, 200 PgDn; two runs each, alternating,
before = main at e68bea3, after = the branch ctrlg; load average 0.2; Textual 8.2.8)::

Ctrl+G jump, cold:       before 40.7 / 48.8 / 54.0 and 43.9 / 50.6 / 55.6,
                         after  12.6 / 13.3 / 20.0 and 12.1 / 13.0 / 21.1
Ctrl+G jump, cached:     before  8.6 / 10.6 / 13.8 and  8.9 /  9.5 /  9.5,
                         after   8.7 /  9.6 / 20.0 and  8.5 /  9.8 / 19.9
PgDn (all):              before  5.1 /  7.4 / 29.9 and  5.2 /  6.1 / 32.7,
                         after   5.1 /  7.6 / 43.3 and  5.4 /  7.8 / 40.9

(PgDn's max is its one cache miss of the run: one sample, as noisy before as after.)
Where a cold jump's time went before (``--trace-jumps``, medians after Enter, three runs
at ``nice -n -10`` on the shared machine): the dialog's submit 0.9 ms, the jump 1.2 ms,
a frame begun at 3.3 ms as the dialog closed, drawn with ``┄┄`` placeholders (8 ms: the
whole screen, the dialog's dimming gone); the read sent only after it (the fetch's gather
task waited behind that frame), 13-16 ms, back 1 ms later; then the bytes waited for
the screen's next frame: Textual's update timer, after a tick that came late, ticks again
two periods on (its ``_skip`` arithmetic), and that frame also laid the screen out again
(the dialog's removal asks for it): 47-49 ms. After: the jump holds frames
(``App.batch_update``, at most ``JUMP_FRAME_WAIT``, 50 ms) until the hex view's fetch is
back, and a fetch of one block awaits it without a task: submit 0.8, jump 1.0, read sent
2.1-2.5 (the dialog's removal runs meanwhile), back 4.6-5.2, frames allowed 5.0-5.5, frame
begun 5.5-6.0, shown 11.5-12.6. The rest is Textual's: ~1 ms from Enter to the dialog's
handler and ~6 ms to draw the whole screen. Measured, not done: keeping the dialog
installed (no removal of its widgets) took ~2.3 ms more off (9.2-9.7 ms median).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

MiB = 1024 * 1024
TIB = 1 << 40
SIZE = (120, 40)
SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's libnbd bindings (nbdsh) live


# ---- the server ------------------------------------------------------------------------


def start_nbdkit(tmp: Path, data: str) -> tuple[subprocess.Popen, str]:
    sock = tmp / "nbd.sock"
    plugin = ["pattern", "1T"] if data == "pattern" else ["memory", "1T"]
    server = subprocess.Popen(["nbdkit", "-f", "--exit-with-parent", "-U", str(sock), *plugin])
    for _ in range(250):
        if sock.exists():
            break
        if server.poll() is not None:
            raise SystemExit(f"bench: nbdkit exited with status {server.returncode}")
        time.sleep(0.02)
    else:
        server.terminate()
        raise SystemExit("bench: nbdkit did not create its socket")
    return server, f"nbd+unix:///?socket={sock}"


async def populate(uri: str, megabytes: int, targets: list[int]) -> None:
    """Random bytes in the first ``megabytes`` MiB and a 64 KiB block at each target."""
    import nbdtui
    from nbdtui.client.pool import Pool

    rng = random.Random(1)
    pool = Pool()
    try:
        async with nbdtui.open(uri, pool=pool) as export:
            for pos in range(0, megabytes * MiB, 4 * MiB):
                await export.write(pos, rng.randbytes(min(4 * MiB, megabytes * MiB - pos)))
            for target in targets:
                start = target - target % 65536
                await export.write(start, rng.randbytes(min(65536, export.size - start)))
            await export.flush()
    finally:
        await pool.close()


# ---- the floor: one read round trip ----------------------------------------------------


_NBDSH_SCRIPT = """
import statistics, time
out = []
for length in (512, 65536):
    times = []
    for i in range({n}):
        t = time.perf_counter()
        h.pread(length, (i * 7919 * 65536) % ({size} - 65536))
        times.append(time.perf_counter() - t)
    out.append(statistics.median(times))
print(*out)
"""


def libnbd_floor(uri: str, n: int) -> tuple[float, float] | None:
    """Median seconds of one 512 B and one 64 KiB pread with libnbd, or None."""
    if not Path(SYSTEM_PYTHON).exists():
        return None
    script = _NBDSH_SCRIPT.format(n=n, size=TIB)
    try:
        done = subprocess.run(
            [SYSTEM_PYTHON, "-m", "nbd", "-u", uri, "-c", script],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        small, block = (float(x) for x in done.stdout.split())
    except (subprocess.SubprocessError, ValueError):
        return None
    return small, block


def nbdinfo_time(uri: str, runs: int = 5) -> float | None:
    """Median wall time of ``nbdinfo --size`` (a whole tool run: start, handshake, exit)."""
    if not shutil.which("nbdinfo"):
        return None
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(["nbdinfo", "--size", uri], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def nbdtui_floor(uri: str, n: int) -> tuple[float, float]:
    """Median seconds of one 512 B and one 64 KiB ``Export.read`` (awaited one by one)."""
    import nbdtui
    from nbdtui.client.pool import Pool

    pool = Pool()
    out = []
    try:
        async with nbdtui.open(uri, pool=pool) as export:
            for length in (512, 65536):
                times = []
                for i in range(n):
                    offset = (i * 7919 * 65536) % (export.size - 65536)
                    t = time.perf_counter()
                    await export.read(offset, length)
                    times.append(time.perf_counter() - t)
                out.append(statistics.median(times))
    finally:
        await pool.close()
    return out[0], out[1]


# ---- the repaint signal ----------------------------------------------------------------


class PaintProbe:
    """Done when a frame holding every row of the hex view at ``top`` with real bytes
    has been handed to the driver.

    Wraps ``HexView.render_line`` (a row drawn with a ``┄┄`` placeholder, or at another
    top, stays due) and ``App._display``. The headless driver writes nothing, so this
    also turns each frame into the terminal's escape sequences, as a real driver would,
    and counts them.
    """

    def __init__(self, app, view) -> None:
        from nbdtui.tui.widgets.hexview import UNLOADED_HEX

        self.unloaded = UNLOADED_HEX
        self.app, self.view = app, view
        self._render = view.render_line
        self._display = app._display
        view.render_line = self._render_line
        app._display = self._display_frame
        self.top: int | None = None
        self.due: set[int] = set()
        self.lines_done = False
        self.done_at: float | None = None
        self.event = asyncio.Event()
        self.lines = 0
        self.render_seconds = 0.0
        self.frames = 0
        self.terminal_bytes = 0

    def expect(self, top: int) -> None:
        self.top = top
        self.due = set(range(self.view.size.height))
        self.lines_done = False
        self.done_at = None
        self.event.clear()

    def _render_line(self, y: int):
        t = time.perf_counter()
        strip = self._render(y)
        self.lines += 1
        self.render_seconds += time.perf_counter() - t
        if self.top is not None and not self.lines_done:
            if self.view.top == self.top and self.unloaded not in strip.text:
                self.due.discard(y)
            elif y < self.view.size.height:
                self.due.add(y)
            self.lines_done = not self.due
        return strip

    def _display_frame(self, screen, renderable) -> None:
        self._display(screen, renderable)
        if renderable is None or not hasattr(renderable, "render_segments"):
            return
        self.frames += 1
        if self.app.is_headless:
            self.terminal_bytes += len(renderable.render_segments(self.app.console).encode())
        if self.lines_done and self.done_at is None:
            self.done_at = time.perf_counter()
            self.event.set()

    async def wait(self, timeout: float = 30.0) -> float:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            view = self.view
            raise SystemExit(
                f"bench: no repaint at top {self.top} after {timeout} s "
                f"(top {view.top}, rows due {sorted(self.due)[:5]}…, "
                f"in flight {sorted(view.in_flight)}, error {view.fetch_error})"
            ) from None
        assert self.done_at is not None
        return self.done_at


def blocks_for(view, top: int) -> set[int]:
    """Cache block indexes needed to draw the window whose first row is ``top``."""
    lay, bs = view.layout_rows, view.cache.block_size
    needed = set()
    for y in range(view.size.height):
        row = lay.row(top + y)
        if row is not None and not row.is_header:
            needed.add(row.offset // bs)
    return needed


def cache_bytes(cache) -> int:
    return sum(len(block.data) for block in cache._blocks.values())


def proc_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process, in KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---- the run ---------------------------------------------------------------------------


async def wait_until(pilot, predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.005)


def send_keys(app, key: str, count: int) -> None:
    """Queue ``count`` key events the way the Pilot does, without its idle waits."""
    from textual import events

    for _ in range(count):
        event = events.Key(key, None)
        event.set_sender(app)
        app._driver.send_message(event)


async def run_app(uri: str, tmp: Path, opts: argparse.Namespace, targets: list[int]) -> dict:
    from textual.widgets import Input

    from nbdtui.editor.journal import Journal
    from nbdtui.tui.app import create_app
    from nbdtui.tui.dialogs.goto_dialog import GotoDialog
    from nbdtui.tui.history import History
    from nbdtui.tui.screens.sector_editor import EditorScreen

    history = History(tmp / "history.sqlite3")
    journal = Journal(tmp / "journal.sqlite3")
    app = create_app(uri, history=history, journal=journal, connect_timeout=10.0)
    result: dict = {}
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, EditorScreen)
                and app.screen.query("#hexview")
                and app.screen.view.size.height > 0
            ),
            "the editor",
        )
        editor = app.screen
        view = editor.view
        shown_at = time.perf_counter()
        await wait_until(pilot, lambda: not view.in_flight, "the first blocks")
        # The export screen under the editor maps the export's allocation (block status,
        # 1 GiB a request) and redraws on every piece; by default measure after that.
        if not opts.during_map:
            await wait_until(
                pilot,
                lambda: not any(w.group == "map" and w.is_running for w in app.workers),
                "the allocation map of the export screen",
                timeout=600,
            )
            result["map_seconds"] = time.perf_counter() - shown_at
        await wait_until(
            pilot,
            lambda: not any(w.is_running for w in editor.workers if w.group == "partitions"),
            "the partition table",
        )
        await pilot.pause()
        probe = PaintProbe(app, view)
        lay, ss = view.layout_rows, view.sector_size
        result["rows"] = view.size.height

        # ---- PgDn
        profiler = None
        if opts.profile:
            import cProfile

            profiler = cProfile.Profile()
        hits, misses = [], []
        phase = time.perf_counter()
        lines0, render0 = probe.lines, probe.render_seconds
        frames0, bytes0 = probe.frames, probe.terminal_bytes
        for _ in range(opts.presses):
            cursor = lay.clamp(view.cursor + ss)
            top = lay.top_for(cursor, view.rows)
            cached = all(i in view.cache for i in blocks_for(view, top))
            probe.expect(top)
            if profiler:
                profiler.enable()
            t0 = time.perf_counter()
            await pilot.press("pagedown")
            done = await probe.wait()
            if profiler:
                profiler.disable()
            (hits if cached else misses).append(done - t0)
        result["pgdn_hit"], result["pgdn_miss"] = hits, misses
        result["pgdn_seconds"] = time.perf_counter() - phase
        frames = (probe.lines - lines0) / max(view.size.height, 1)
        result["render_per_frame"] = (probe.render_seconds - render0) / max(frames, 1)
        result["frames_per_press"] = frames / max(opts.presses, 1)
        result["screen_frames_per_press"] = (probe.frames - frames0) / max(opts.presses, 1)
        result["bytes_per_press"] = (probe.terminal_bytes - bytes0) / max(opts.presses, 1)
        if opts.data == "pattern":
            result["check"] = check_pattern_row(view)
        if profiler:
            result["profile"] = profiler

        # ---- Ctrl+G jumps: cold, then the last ones again (cached)
        trace = None
        if opts.trace_jumps:
            from jump_trace import JumpTrace

            trace = JumpTrace()
            trace.install(app, view)
            result["trace"] = trace

        async def jump(target: int) -> tuple[float, bool]:
            send_keys(app, "ctrl+g", 1)  # untimed: no need for the Pilot's idle waits
            await wait_until(
                pilot,
                lambda: isinstance(app.screen, GotoDialog) and app.screen.query("#goto-input"),
                "the dialog",
            )
            app.screen.query_one("#goto-input", Input).value = f"0x{target:x}"
            await pilot.pause()  # the dialog drawn and idle: only Enter's work is timed
            top = lay.top_for(target, view.rows)
            cached = all(i in view.cache for i in blocks_for(view, top))
            probe.expect(top)
            t0 = time.perf_counter()
            if trace:
                trace.begin(t0)
            await pilot.press("enter")
            done = await probe.wait()
            if trace:
                trace.end(done, keep=not cached)
            if view.cursor != target:
                raise SystemExit(f"bench: Ctrl+G 0x{target:x} put the cursor on 0x{view.cursor:x}")
            return done - t0, cached

        cold, warm = [], []
        phase = time.perf_counter()
        for target in targets:
            seconds, cached = await jump(target)
            (warm if cached else cold).append(seconds)
        again = targets[-min(len(targets), 16) :]
        for target in reversed(again):
            seconds, cached = await jump(target)
            (warm if cached else cold).append(seconds)
        result["jump_cold"], result["jump_warm"] = cold, warm
        result["jump_seconds"] = time.perf_counter() - phase

        # ---- memory: Home, then PgDn through --sectors sectors
        probe.expect(0)
        await pilot.press("home")
        await probe.wait()
        await wait_until(pilot, lambda: not view.in_flight, "Home's blocks")
        samples = []
        before = proc_status()
        hwm_reset = reset_hwm()
        if opts.tracemalloc:
            tracemalloc.start()
        checkpoints = {opts.sectors * k // 8 for k in range(1, 9)}

        def sample(sectors: int) -> None:
            gc.collect()
            traced = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
            samples.append(
                (sectors, proc_status(), traced, len(view.cache), cache_bytes(view.cache))
            )

        sample(0)
        t_mem = time.perf_counter()
        paged = 0
        while paged < opts.sectors:
            burst = min(opts.burst, opts.sectors - paged)
            cursor = lay.clamp(view.cursor + burst * ss)
            probe.expect(lay.top_for(cursor, view.rows))
            send_keys(app, "pagedown", burst)
            await probe.wait()
            paged += burst
            if any(paged - burst < c <= paged for c in checkpoints):
                sample(paged)
        result["mem_seconds"] = time.perf_counter() - t_mem
        result["mem_cursor"] = view.cursor
        after = proc_status()
        result["mem_before"], result["mem_after"] = before, after
        result["hwm_reset"] = hwm_reset
        result["samples"] = samples
        if tracemalloc.is_tracing():
            result["traced"] = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        result["cache_capacity"] = (view.cache.capacity, view.cache.block_size)
        await pilot.press("ctrl+q")
    return result


def check_pattern_row(view) -> str:
    """nbdkit's pattern: each 8-byte word holds its offset (big-endian). Compare the
    first data row on screen with that, as drawn."""
    lay = view.layout_rows
    row = next(r for y in range(view.size.height) if not (r := lay.row(view.top + y)).is_header)
    y = next(y for y in range(view.size.height) if lay.row(view.top + y) == row)
    expected = b"".join((row.offset + i).to_bytes(8, "big") for i in (0, 8))
    want = " ".join(f"{b:02x}" for b in expected[:8]) + "  "
    want += " ".join(f"{b:02x}" for b in expected[8:])
    text = view.render_line(y).text
    return "ok" if want in text else f"MISMATCH: row {text!r} lacks {want!r}"


# ---- the report ------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def stats_row(label: str, values: list[float], floor: float | None) -> str:
    if not values:
        return f"{label:<34} {0:>5}" + "         -" * 4
    ms = [v * 1000 for v in values]
    med = statistics.median(ms)
    ratio = f"{med / (floor * 1000):9.0f}x" if floor else ""
    cells = "".join(f"{x:10.2f}" for x in (med, pct(ms, 90), pct(ms, 99), max(ms)))
    return f"{label:<34} {len(ms):>5}{cells}{ratio}"


def mib(n: int) -> str:
    """``n`` bytes in MiB."""
    return f"{n / MiB:.1f} MiB"


def report(res: dict, floors: dict, opts: argparse.Namespace, wall: float) -> None:
    floor = floors.get("libnbd") or floors.get("nbdtui")
    floor_512 = floor[0] if floor else None
    print()
    print(
        f"nbdtui editor on nbdkit {opts.data} 1T over a Unix socket, "
        f"terminal {SIZE[0]}x{SIZE[1]} ({res['rows']} hex rows), headless, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {opts.load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    if "map_seconds" in res:
        print(
            f"measured after the export screen's allocation map of the 1 TiB export finished "
            f"({res['map_seconds']:.1f} s after the editor appeared)"
        )
    else:
        print("measured at once, while the export screen below maps the allocation")
    print()
    head = f"{'key press -> sector repainted (ms)':<34} {'n':>5}"
    head += "".join(f"{h:>10}" for h in ("median", "p90", "p99", "max"))
    print(head + ("   vs 512B RTT" if floor_512 else ""))
    print("-" * (len(head) + (14 if floor_512 else 0)))
    all_pgdn = res["pgdn_hit"] + res["pgdn_miss"]
    print(stats_row("PgDn (all)", all_pgdn, floor_512))
    print(stats_row("  block cached", res["pgdn_hit"], floor_512))
    print(stats_row("  block fetched (64 KiB)", res["pgdn_miss"], floor_512))
    print(stats_row("Ctrl+G jump, cold (cache miss)", res["jump_cold"], floor_512))
    print(stats_row("Ctrl+G jump, target cached", res["jump_warm"], floor_512))
    print()
    print(
        f"per PgDn: {res['screen_frames_per_press']:.2f} frames to the driver, "
        f"{res['bytes_per_press'] / 1024:.1f} KiB of terminal output, "
        f"{res['frames_per_press']:.2f} full repaints of the hex view; "
        f"HexView.render_line {res['render_per_frame'] * 1000:.2f} ms per repaint "
        f"of {res['rows']} rows"
    )
    if "check" in res:
        print(f"pattern bytes as drawn on screen: {res['check']}")
    print()
    print(f"{'one read round trip on the same socket (median)':<48} {'512 B':>11} {'64 KiB':>11}")
    named = (("libnbd", "  libnbd h.pread (nbdsh, in-process)"), ("nbdtui", "  nbdtui Export.read"))
    for key, label in named:
        if floors.get(key):
            small, block = floors[key]
            print(f"{label:<48} {small * 1e3:8.3f} ms {block * 1e3:8.3f} ms")
    if floors.get("nbdinfo"):
        label = "  nbdinfo --size (whole process, for scale)"
        print(f"{label:<48} {floors['nbdinfo'] * 1e3:8.1f} ms")
    print()
    capacity, block_size = res["cache_capacity"]
    print(
        f"memory while paging {opts.sectors} sectors ({opts.sectors * 512 / MiB:.1f} MiB of "
        f"the 1 TiB export) in bursts of {opts.burst} PgDn, {res['mem_seconds']:.1f} s; "
        f"cache cap {capacity} x {block_size // 1024} KiB = {mib(capacity * block_size)}"
    )
    cols = ("sectors paged", "VmRSS", "VmHWM", "traced now", "traced peak", "blocks", "cache")
    widths = (14, 11, 11, 11, 12, 7, 10)
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)))
    for sectors, status, (now, peak), blocks, nbytes in res["samples"]:
        cells = (
            sectors,
            mib(status["VmRSS"] * 1024),
            mib(status["VmHWM"] * 1024),
            mib(now),
            mib(peak),
            blocks,
            mib(nbytes),
        )
        print(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    before, after = res["mem_before"], res["mem_after"]
    grew = (after["VmRSS"] - before["VmRSS"]) * 1024
    line = (
        f"VmRSS {mib(before['VmRSS'] * 1024)} before -> {mib(after['VmRSS'] * 1024)} after "
        f"({grew / MiB:+.1f} MiB); VmHWM during paging {mib(after['VmHWM'] * 1024)}"
    )
    if not res["hwm_reset"]:
        line += " (could not reset VmHWM: peak since start)"
    if "traced" in res:
        line += f"; tracemalloc peak {mib(res['traced'][1])} (tracing slows this phase)"
    print(line)
    print("traced: Python allocations made since paging began and still alive after gc.collect()")
    print(
        f"traced counts only blocks fetched after tracing began: it rises until the "
        f"{capacity} cached blocks are all such blocks ({capacity * block_size // 512} "
        f"sectors paged), then stays"
    )
    print(
        f"cursor after paging: 0x{res['mem_cursor']:x}; whole run {wall:.1f} s "
        f"(PgDn {res['pgdn_seconds']:.1f} s, jumps {res['jump_seconds']:.1f} s, "
        f"memory {res['mem_seconds']:.1f} s)"
    )
    if "trace" in res:
        print()
        print("\n".join(res["trace"].report()))
    if "profile" in res:
        import pstats

        print("\ncProfile of the PgDn phase (cumulative, top 25):")
        pstats.Stats(res["profile"]).sort_stats("cumulative").print_stats(25)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=("pattern", "memory"), default="pattern")
    ap.add_argument("--populate", type=int, default=8, help="MiB written for --data memory")
    ap.add_argument("--presses", type=int, default=200, help="timed PgDn presses")
    ap.add_argument("--jumps", type=int, default=30, help="timed Ctrl+G jumps (cold)")
    ap.add_argument("--sectors", type=int, default=10_000, help="sectors paged for memory")
    ap.add_argument("--burst", type=int, default=50, help="PgDn keys per repaint (memory)")
    ap.add_argument("--floor-reads", type=int, default=200, help="reads per floor figure")
    ap.add_argument(
        "--tracemalloc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trace Python allocations while paging (slower)",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the PgDn phase")
    ap.add_argument(
        "--trace-jumps",
        action="store_true",
        help="time the marks along each cold Ctrl+G jump (bench/jump_trace.py)",
    )
    ap.add_argument(
        "--during-map",
        action="store_true",
        help="start at once, while the export screen below still maps the allocation",
    )
    ap.add_argument("--seed", type=int, default=2024)
    opts = ap.parse_args()
    if not shutil.which("nbdkit"):
        raise SystemExit("bench: nbdkit is not installed")
    began = time.perf_counter()
    opts.load_before = os.getloadavg()[0]
    rng = random.Random(opts.seed)
    sector = 512
    targets = [rng.randrange(TIB // 16, TIB) for _ in range(opts.jumps)]
    targets = [t - t % sector + rng.randrange(sector) for t in targets]
    with tempfile.TemporaryDirectory(prefix="nbdtui-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            os.environ[var] = str(tmp / "xdg" / var.lower())
        server, uri = start_nbdkit(tmp, opts.data)
        try:
            if opts.data == "memory":
                asyncio.run(populate(uri, opts.populate, targets))
            floors = {
                "libnbd": libnbd_floor(uri, opts.floor_reads),
                "nbdtui": asyncio.run(nbdtui_floor(uri, opts.floor_reads)),
                "nbdinfo": nbdinfo_time(uri),
            }
            result = asyncio.run(run_app(uri, tmp, opts, targets))
        finally:
            server.terminate()
            server.wait()
    report(result, floors, opts, time.perf_counter() - began)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
