"""The editor's jump list: back and forward through the places a jump left.

Every jump (go to, search hit, follow, bookmark, partition) records the offset it left;
``back`` returns there and ``forward`` undoes a ``back``, as in a web browser. A new
jump after going back drops the forward places.
"""

from __future__ import annotations

LIMIT = 100


class JumpList:
    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._back: list[int] = []
        self._forward: list[int] = []

    def record(self, origin: int, target: int) -> None:
        """A jump from ``origin`` to ``target`` (nothing when they are the same)."""
        if origin == target:
            return
        if not self._back or self._back[-1] != origin:
            self._back.append(origin)
            del self._back[: -self.limit]
        self._forward.clear()

    def back(self, current: int) -> int | None:
        """Where Back goes from ``current`` (``None``: nowhere left)."""
        while self._back:
            place = self._back.pop()
            if place != current:
                self._forward.append(current)
                return place
        return None

    def forward(self, current: int) -> int | None:
        while self._forward:
            place = self._forward.pop()
            if place != current:
                self._back.append(current)
                return place
        return None

    @property
    def can_back(self) -> bool:
        return bool(self._back)

    @property
    def can_forward(self) -> bool:
        return bool(self._forward)
