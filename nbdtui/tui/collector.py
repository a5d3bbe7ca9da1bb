"""Keep the garbage collector's full collections out of the editor's frames.

Python's full (generation 2) collection walks every tracked object: in the running app
some hundreds of thousands, the modules, classes and functions of Textual, Rich and
nbdtui, Textual's CSS, the screens. Paging through the editor makes enough short-lived
objects (strips, segments, styles) to set one off every few seconds, and each took
35-80 ms: the PgDn frames at the 99th percentile (bench/bench_tui.py).

:func:`freeze` moves everything alive now to the permanent generation, which
collections do not walk (``gc.freeze``); objects made later are collected as usual.
The app freezes once it is up (the imports and its first screen live as long as it
does), and again when an editor opens; :func:`thaw` gives the frozen objects back to
the collector when an editor closes, so that a closed editor's objects (its block
cache among them) are freed by the next collection rather than kept for good.
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """Collect once, then leave everything alive now out of later collections."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Let collections walk (and free) what :func:`freeze` set aside."""
    gc.unfreeze()
