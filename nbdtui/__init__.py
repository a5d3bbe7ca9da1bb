"""nbdtui: a terminal app and Python library for remote block devices over NBD.

The library API is asyncio and never imports Textual::

    import nbdtui

    async with nbdtui.open("nbd://localhost/disk") as export:
        data = await export.read(0, 512)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from nbdtui.client.api import open

__all__ = ["__version__", "open"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import nbdtui` (and `nbdtui --version`) stays cheap.
    if name == "open":
        from nbdtui.client.api import open as _open

        return _open
    raise AttributeError(f"module 'nbdtui' has no attribute {name!r}")
