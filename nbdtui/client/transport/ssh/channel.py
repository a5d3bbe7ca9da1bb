"""An asyncssh channel seen as an ``asyncio.Transport``.

:class:`ChannelTransport` has two faces. To asyncssh it is the *session* of a direct
channel (``connection_made(chan)``, ``data_received(data, datatype)``,
``eof_received``, ``connection_lost``, ``pause_writing``/``resume_writing``). To
nbdtui's :class:`~nbdtui.client.transport.stream.StreamProtocol` (and to asyncio's TLS layer,
``loop.start_tls``) it is an ``asyncio.Transport``: ``write``, ``writelines``,
``write_eof``, ``close``, ``abort``, ``is_closing``, ``get_extra_info``,
``pause_reading``/``resume_reading``, write-buffer limits, ``set_protocol``/
``get_protocol``. Incoming bytes go to a ``BufferedProtocol`` through its
``get_buffer``/``buffer_updated`` (as asyncio's own transports do), otherwise to
``data_received``.

No asyncssh import here: the channel is duck-typed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

# The channel's send buffer above which the protocol is asked to pause writing.
WRITE_HIGH_WATER = 1 << 20
WRITE_LOW_WATER = 256 * 1024


class ChannelTransport(asyncio.Transport):
    """An SSH channel carrying one NBD connection; see the module documentation.

    ``on_closed`` is called once, as soon as the channel is closed by us (``close``,
    ``abort``) or is gone (closed by the server, or with the SSH connection).
    """

    _start_tls_compatible = True  # loop.start_tls() accepts this transport

    def __init__(
        self,
        protocol: asyncio.BaseProtocol,
        *,
        on_closed: Callable[[], None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(extra)
        self._protocol: asyncio.BaseProtocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._chan: Any = None
        self._on_closed = on_closed
        self._closing = False
        self._lost = False
        self._reading = True
        self._high = WRITE_HIGH_WATER
        self._low = WRITE_LOW_WATER

    # ---- asyncssh session face ---------------------------------------------------------

    def connection_made(self, chan: Any) -> None:
        self._chan = chan
        chan.set_write_buffer_limits(self._high, self._low)
        self._protocol.connection_made(self)

    def session_started(self) -> None:
        pass

    def data_received(self, data: bytes, datatype: int | None) -> None:
        protocol = self._protocol
        if not self._buffered:
            protocol.data_received(data)  # type: ignore[attr-defined]
            return
        view = memoryview(data)
        while view:
            buf = protocol.get_buffer(len(view))  # type: ignore[attr-defined]
            n = min(len(buf), len(view))
            if n == 0:
                raise RuntimeError("get_buffer() returned an empty buffer")
            buf[:n] = view[:n]
            protocol.buffer_updated(n)  # type: ignore[attr-defined]
            view = view[n:]

    def eof_received(self) -> bool:
        keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        return bool(keep_open)  # False: asyncssh closes the channel

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._release()
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    def _release(self) -> None:
        callback, self._on_closed = self._on_closed, None
        if callback is not None:
            callback()

    # ---- asyncio.Transport face ---------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._chan is None:
            return  # like asyncio's transports: writes after close are dropped
        if isinstance(data, memoryview):
            data = data.cast("B") if data.format != "B" or data.ndim != 1 else data
        try:  # noqa: SIM105 (the hot path: try costs nothing in 3.11)
            self._chan.write(data)  # asyncssh copies it into its send buffer
        except OSError:
            pass  # the channel is closing: connection_lost follows, as with asyncio's own

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self._closing and self._chan is not None:
            with contextlib.suppress(OSError):
                self._chan.write_eof()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is buffered, then close the channel (asyncssh flushes first)."""
        if self._closing:
            return
        self._closing = True
        if self._chan is not None:
            self._chan.close()
        self._release()  # the last channel of an SSH connection closes it

    def abort(self) -> None:
        if self._lost:
            return
        self._closing = True
        if self._chan is not None:
            self._chan.abort()
        self._release()

    def _force_close(self, exc: BaseException | None) -> None:
        # asyncio's TLS layer (sslproto) calls this on the transport under it when the
        # TLS session fails; without it a refused certificate became a traceback.
        self.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        if self._chan is not None:
            return self._chan.get_extra_info(name, default)
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._reading and self._chan is not None and not self._closing:
            self._reading = False
            self._chan.pause_reading()

    def resume_reading(self) -> None:
        if not self._reading and self._chan is not None and not self._closing:
            self._reading = True
            self._chan.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = WRITE_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        if self._chan is not None:
            self._chan.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def get_write_buffer_size(self) -> int:
        return self._chan.get_write_buffer_size() if self._chan is not None else 0

    def __repr__(self) -> str:
        state = "closed" if self._lost else "closing" if self._closing else "open"
        return f"<ChannelTransport {state} {self._extra.get('ssh_target', '')}>"
