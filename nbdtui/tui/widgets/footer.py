"""The key bar at the bottom of the editor: Textual's Footer, rebuilt only when the
keys it shows changed.

Textual's Footer recomposes (removes and mounts one widget per key, then restyles them)
every time its screen's bindings are refreshed, which happens at every change of focus
and every time a dialog closes. In the editor that rebuild was most of the work between
Enter in the Ctrl+G dialog and the repaint at the target (bench/bench_tui.py): about
25 ms of the event loop's time, during which the block read for the new position waited
its turn. The keys shown are the same before and after a dialog, so this footer compares
what it would show with what it shows and rebuilds only on a difference.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


def _shown_keys(screen: Screen[object]) -> Hashable:
    """Everything of the active bindings that Footer.compose draws."""
    return tuple(
        (
            binding.key,
            binding.key_display,
            binding.action,
            binding.description,
            binding.group,
            enabled,
            tooltip,
        )
        for (_node, binding, enabled, tooltip) in screen.active_bindings.values()
        if binding.show
    )


class SteadyFooter(Footer):
    """A :class:`~textual.widgets.Footer` that recomposes only when its keys change."""

    _shown: Hashable = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        if (
            self._bindings_ready
            and self._shown is not None
            and self.is_attached
            and screen is self.screen
            and _shown_keys(screen) == self._shown
        ):
            return  # the same keys: nothing to rebuild
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        self._shown = _shown_keys(self.screen) if self._bindings_ready else None
        yield from super().compose()
