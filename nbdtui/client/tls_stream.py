"""A blocking TLS stream over a plain socket (:class:`TlsStream`), for the drivers that do
without asyncio: the bulk engine's TLS connections (:mod:`nbdtui.client.bulk_tls`) and
the one-shot commands over TLS (:mod:`nbdtui.client.oneshot`). Both wrap it in the
StartTLS hook of :func:`nbdtui.client.negotiate_blocking.negotiate`, with the context of
:func:`nbdtui.client.transport.tls.wrapping_for` (the event loop's certificates checks).

It imports ``ssl`` but neither asyncio nor ``socket``.
"""

from __future__ import annotations

import _socket
import contextlib
import ssl
import time
from typing import cast

__all__ = ["TlsStream"]

_RECV = 1 << 20  # the most a TlsStream receives per call
_SEND = 256 * 1024  # the most a TlsStream encrypts per call (the record's copy is that big)


class TlsStream:
    """A blocking TLS stream over a plain socket: an :class:`ssl.SSLObject` between
    memory BIOs, fed by large ``recv_into`` calls (up to 1 MiB).

    An :class:`ssl.SSLSocket` makes two ``recv`` calls per 16 KiB record (its header,
    then its body); this makes one per MiB or so, and decrypts from memory. The methods
    are those of a socket that the bulk engine's threads use; each releases the GIL
    while it decrypts, encrypts or waits."""

    def __init__(
        self,
        sock: _socket.socket,
        obj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self.sock = sock
        self._obj = obj
        self._in = incoming
        self._out = outgoing
        self._buffer = memoryview(bytearray(_RECV))

    @classmethod
    def wrap(
        cls,
        sock: _socket.socket,
        context: ssl.SSLContext,
        hostname: str | None,
        deadline: float | None = None,
    ) -> TlsStream:
        """Run the TLS handshake on ``sock``; ssl.SSLError (an OSError) when it fails,
        ConnectionResetError when the server hangs up. With a ``deadline``
        (``time.monotonic()``) each wait is bounded by what is left of it (TimeoutError
        after it); without, by the socket's timeout."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = context.wrap_bio(incoming, outgoing, server_hostname=hostname)
        stream = cls(sock, obj, incoming, outgoing)
        while True:
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                stream._flush()
                if deadline is not None:
                    sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                if not stream._fill():
                    raise ConnectionResetError("closed during the TLS handshake") from None
                continue
            stream._flush()
            return stream

    def _fill(self) -> bool:
        """Receive what the socket has (waiting for some); False at its end."""
        n = self.sock.recv_into(self._buffer)
        if not n:
            self._in.write_eof()
            return False
        self._in.write(self._buffer[:n])
        return True

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def recv_into(self, view: memoryview, nbytes: int = 0, flags: int = 0) -> int:
        """Up to ``len(view)`` decrypted bytes into ``view`` (0 at a clean end)."""
        while True:
            try:
                return cast(int, self._obj.read(len(view), view))  # (an int, given a buffer)
            except ssl.SSLWantReadError:
                self._flush()  # (a key update may want an answer)
                if not self._fill():
                    return cast(
                        int, self._obj.read(len(view), view)
                    )  # (an int, given a buffer)  # raises unless close_notify came
            except ssl.SSLZeroReturnError:
                return 0

    def receive_exactly(self, view: memoryview) -> None:
        """Fill ``view`` (EOFError at the end of the stream): :meth:`recv_into` in a
        loop, without a call per record (a READ payload is a record per 16 KiB)."""
        read = self._obj.read
        got, n = 0, len(view)
        while got < n:
            try:
                k = cast(int, read(n - got, view[got:]))  # (an int, given a buffer)
            except ssl.SSLWantReadError:
                self._flush()  # (a key update may want an answer)
                if not self._fill():
                    raise EOFError from None
                continue
            except ssl.SSLZeroReturnError:
                raise EOFError from None
            if not k:
                raise EOFError
            got += k

    def recv(self, size: int) -> bytes:
        """Up to ``size`` decrypted bytes, what one record holds at most (b"" at a clean
        end); only as large as what came (no ``size`` buffer per call)."""
        while True:
            try:
                return self._obj.read(size)
            except ssl.SSLWantReadError:
                self._flush()  # (a key update may want an answer)
                if not self._fill():
                    return self._obj.read(size)  # raises unless close_notify came
            except ssl.SSLZeroReturnError:
                return b""

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        for at in range(0, len(view), _SEND):
            self._obj.write(view[at : at + _SEND])
            self._flush()

    def close_notify(self) -> None:
        """Say the TLS stream ends (a TLS close_notify), without waiting for the answer."""
        with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: the answer
            self._obj.unwrap()
        self._flush()

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self.sock.setsockopt(level, option, value)

    def shutdown(self, how: int) -> None:
        """End the TCP stream (a thread blocked in a call returns)."""
        self.sock.shutdown(how)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
