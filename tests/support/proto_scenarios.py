"""Byte builders and scripted peers shared by the protocol tests.

The unit tests of the sans-IO machines (``tests/unit/test_proto_handshake.py``,
``test_proto_transmission.py``) and their property tests (``test_fuzz_handshake.py``,
``test_fuzz_transmission.py``) build server bytes with these. They are written from
doc/proto.md independently of ``nbdtui.proto.option_codec`` and the reply encoders of
``nbdtui.proto.server_transmission``, so that the machines are checked against a second
reading of the spec.

Handshake: server and client byte builders, :class:`Conversation` (a scripted fixed
newstyle server played against a ``ClientHandshake``) and :data:`SCENARIOS` with
:func:`reference` (complete valid conversations, for the fragmentation and mutation
tests). Transmission: reply and chunk builders, :func:`coalesce` and the hypothesis
strategy :data:`reply_piece`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from hypothesis import strategies as st

from nbdtui.proto.client_events import Data, StartTLS
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.constants import (
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    ChunkType,
    HandshakeFlag,
    Info,
    Option,
    OptionReply,
    ReplyFlag,
    TransmissionFlag,
)

# ---- handshake: server byte builders ------------------------------------------------

FIXED = HandshakeFlag.FIXED_NEWSTYLE
NO_ZEROES = HandshakeFlag.NO_ZEROES
ACK = OptionReply.ACK
FLAGS = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_TRIM


def greeting(flags: int = FIXED | NO_ZEROES) -> bytes:
    return b"NBDMAGIC" + b"IHAVEOPT" + struct.pack(">H", flags)


def oldstyle_greeting(size: int, flags: int) -> bytes:
    return (
        b"NBDMAGIC"
        + bytes.fromhex("0000420281861253")
        + struct.pack(">QI", size, flags)
        + bytes(124)
    )


def rep(option: int, reply: int, payload: bytes = b"") -> bytes:
    return (
        bytes.fromhex("0003e889045565a9")
        + struct.pack(">III", option, reply, len(payload))
        + payload
    )


def rep_error(option: int, reply: int, message: str = "") -> bytes:
    return rep(option, reply, message.encode())


def rep_info(option: int, info_type: int, body: bytes) -> bytes:
    return rep(option, OptionReply.INFO, struct.pack(">H", info_type) + body)


def info_export(option: int, size: int, flags: int) -> bytes:
    return rep_info(option, Info.EXPORT, struct.pack(">QH", size, flags))


def info_name(option: int, name: str) -> bytes:
    return rep_info(option, Info.NAME, name.encode())


def info_description(option: int, text: str) -> bytes:
    return rep_info(option, Info.DESCRIPTION, text.encode())


def info_block_size(option: int, minimum: int, preferred: int, maximum: int) -> bytes:
    return rep_info(option, Info.BLOCK_SIZE, struct.pack(">III", minimum, preferred, maximum))


def rep_server(name: str, description: str = "") -> bytes:
    raw = name.encode()
    return rep(
        Option.LIST, OptionReply.SERVER, struct.pack(">I", len(raw)) + raw + description.encode()
    )


def rep_context(option: int, ident: int, name: str) -> bytes:
    return rep(option, OptionReply.META_CONTEXT, struct.pack(">I", ident) + name.encode())


def export_name_reply(size: int, flags: int, *, zeroes: bool) -> bytes:
    return struct.pack(">QH", size, flags) + (bytes(124) if zeroes else b"")


# ---- handshake: client byte builders and parser ---------------------------------------


def client_flags(flags: int) -> bytes:
    return struct.pack(">I", flags)


def opt(option: int, payload: bytes = b"") -> bytes:
    return b"IHAVEOPT" + struct.pack(">II", option, len(payload)) + payload


def go_payload(name: str, infos: tuple[int, ...] = (1, 2, 3)) -> bytes:
    raw = name.encode()
    return struct.pack(">I", len(raw)) + raw + struct.pack(f">H{len(infos)}H", len(infos), *infos)


def context_payload(name: str, queries: tuple[str, ...] = ()) -> bytes:
    raw = name.encode()
    out = struct.pack(">I", len(raw)) + raw + struct.pack(">I", len(queries))
    for query in queries:
        out += struct.pack(">I", len(query.encode())) + query.encode()
    return out


def split_options(data: bytes) -> list[tuple[int, bytes]]:
    """Parse a stream of client option requests."""
    out = []
    while data:
        assert data[:8] == b"IHAVEOPT", data
        option, length = struct.unpack(">II", data[8:16])
        out.append((option, data[16 : 16 + length]))
        data = data[16 + length :]
    return out


# ---- handshake: a scripted fake peer -----------------------------------------------------

Answer = Callable[[int, bytes], bytes]


def standard_server(
    *,
    size: int = 1 << 20,
    flags: int = FLAGS,
    exports: tuple[tuple[str, str], ...] = (("disk", "the disk"),),
    contexts: tuple[str, ...] = ("base:allocation", "qemu:dirty-bitmap:"),
    zeroes: bool = False,
    overrides: dict[int, bytes | Answer] | None = None,
) -> Answer:
    """A fixed-newstyle server that accepts everything; ``overrides`` replace answers."""

    def answer(option: int, payload: bytes) -> bytes:
        if overrides and option in overrides:
            override = overrides[option]
            return override(option, payload) if callable(override) else override
        if option in (Option.STARTTLS, Option.STRUCTURED_REPLY, Option.ABORT):
            return rep(option, ACK)
        if option == Option.LIST:
            return b"".join(rep_server(n, d) for n, d in exports) + rep(option, ACK)
        if option == Option.LIST_META_CONTEXT:
            return b"".join(rep_context(option, 0, c) for c in contexts) + rep(option, ACK)
        if option == Option.SET_META_CONTEXT:
            (name_len,) = struct.unpack(">I", payload[:4])
            rest = payload[8 + name_len :]
            out = b""
            ident = 7
            while rest:
                (length,) = struct.unpack(">I", rest[:4])
                out += rep_context(option, ident, rest[4 : 4 + length].decode())
                rest = rest[4 + length :]
                ident += 1
            return out + rep(option, ACK)
        if option in (Option.INFO, Option.GO):
            (name_len,) = struct.unpack(">I", payload[:4])
            name = payload[4 : 4 + name_len].decode()
            return info_export(option, size, flags) + info_name(option, name) + rep(option, ACK)
        if option == Option.EXPORT_NAME:
            return export_name_reply(size, flags, zeroes=zeroes)
        raise AssertionError(f"unexpected option {option}")

    return answer


class Conversation:
    """Plays a server against a ClientHandshake, answering one option at a time."""

    def __init__(self, hs: ClientHandshake, server_greeting: bytes, answer: Answer):
        self.hs = hs
        self.greeting = server_greeting
        self.answer = answer
        self.client_flags: bytes | None = None
        self.options: list[tuple[int, bytes]] = []
        self.server_bytes = bytearray()  # everything the server sent, in order
        self.events: list[object] = []

    def run(self, chunk: int | None = None) -> list[object]:
        pending = self.greeting
        while pending:
            self.server_bytes += pending
            self.feed(pending, chunk)
            out = self.hs.data_to_send()
            if self.client_flags is None and out:
                self.client_flags, out = out[:4], out[4:]
            pending = b""
            for option, payload in split_options(out):
                self.options.append((option, payload))
                pending += self.answer(option, payload)
        return self.events

    def feed(self, data: bytes, chunk: int | None) -> None:
        step = chunk or len(data) or 1
        for i in range(0, len(data), step):
            new = self.hs.receive_data(data[i : i + step])
            self.events += new
            if StartTLS() in new:
                assert new == [StartTLS()]
                assert self.hs.data_to_send() == b""  # nothing in plaintext after the ACK
                self.hs.tls_established()

    @property
    def option_codes(self) -> list[int]:
        return [option for option, _ in self.options]


def converse(hs: ClientHandshake, answer: Answer | None = None, flags: int = FIXED | NO_ZEROES):
    conv = Conversation(hs, greeting(flags), answer or standard_server())
    conv.run()
    return conv


# ---- handshake: complete conversations ------------------------------------------------

SCENARIOS: dict[str, Callable[[], tuple[ClientHandshake, Answer, int]]] = {
    "go": lambda: (
        ClientHandshake(export_name="disk", list_contexts=True),
        standard_server(),
        FIXED | NO_ZEROES,
    ),
    "export-name": lambda: (
        ClientHandshake(export_name="x"),
        standard_server(
            zeroes=True,
            overrides={
                Option.GO: info_name(Option.GO, "x") + rep_error(Option.GO, OptionReply.ERR_UNSUP)
            },
        ),
        FIXED,
    ),
    "list": lambda: (
        ClientHandshake(list_exports=True, list_details=True),
        standard_server(),
        FIXED,
    ),
    "newstyle": lambda: (ClientHandshake(export_name="y"), standard_server(zeroes=True), 0),
}


def reference(name: str) -> Conversation:
    hs, answer, flags = SCENARIOS[name]()
    conv = Conversation(hs, greeting(flags), answer)
    conv.run()
    assert conv.hs.done
    return conv


# ---- transmission: reply builders ----------------------------------------------------

DONE = ReplyFlag.DONE


def simple(cookie: int, error: int = 0, payload: bytes = b"") -> bytes:
    return struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, error, cookie) + payload


def chunk(cookie: int, kind: int, payload: bytes = b"", flags: int = 0) -> bytes:
    return (
        struct.pack(">IHHQI", STRUCTURED_REPLY_MAGIC, flags, kind, cookie, len(payload)) + payload
    )


def data_chunk(cookie: int, offset: int, data: bytes, flags: int = 0) -> bytes:
    return chunk(cookie, ChunkType.OFFSET_DATA, struct.pack(">Q", offset) + data, flags)


def hole_chunk(cookie: int, offset: int, size: int, flags: int = 0) -> bytes:
    return chunk(cookie, ChunkType.OFFSET_HOLE, struct.pack(">QI", offset, size), flags)


def error_chunk(
    cookie: int, error: int, message: bytes = b"", offset: int | None = None, flags: int = DONE
) -> bytes:
    body = struct.pack(">IH", error, len(message)) + message
    if offset is None:
        return chunk(cookie, ChunkType.ERROR, body, flags)
    return chunk(cookie, ChunkType.ERROR_OFFSET, body + struct.pack(">Q", offset), flags)


def status_chunk(cookie: int, context: int, extents, flags: int = DONE) -> bytes:
    body = struct.pack(">I", context) + b"".join(struct.pack(">II", *e) for e in extents)
    return chunk(cookie, ChunkType.BLOCK_STATUS, body, flags)


def none_chunk(cookie: int) -> bytes:
    return chunk(cookie, ChunkType.NONE, b"", DONE)


def coalesce(events):
    """Merge consecutive Data pieces so that fragmentation does not matter."""
    out = []
    for ev in events:
        if (
            isinstance(ev, Data)
            and out
            and isinstance(out[-1], Data)
            and out[-1].cookie == ev.cookie
            and out[-1].offset + out[-1].length == ev.offset
        ):
            prev = out.pop()
            ev = Data(ev.cookie, prev.offset, prev.length + ev.length, prev.data + ev.data)
        out.append(ev)
    return out


#: A hypothesis strategy: one piece of a server's reply stream, valid or not (cookies
#: 0-5; the machines of the fuzz tests have requests in flight with some of them).
reply_piece = st.one_of(
    st.binary(max_size=40),
    st.builds(
        simple, st.integers(0, 5), st.sampled_from([0, 0, 5, 22, 999]), st.binary(max_size=8)
    ),
    st.builds(
        chunk,
        st.integers(0, 5),
        st.sampled_from([0, 1, 2, 5, 6, 7, 0x8001, 0x8002, 0x8005]),
        st.binary(max_size=40),
        st.integers(0, 3),
    ),
    st.builds(
        data_chunk, st.integers(0, 5), st.integers(0, 70), st.binary(max_size=20), st.integers(0, 1)
    ),
    st.builds(
        hole_chunk, st.integers(0, 5), st.integers(0, 70), st.integers(0, 70), st.integers(0, 1)
    ),
    st.builds(
        error_chunk,
        st.integers(0, 5),
        st.integers(0, 200),
        st.binary(max_size=6),
        st.one_of(st.none(), st.integers(0, 70)),
        st.integers(0, 1),
    ),
    st.builds(
        status_chunk,
        st.integers(0, 5),
        st.integers(0, 3),
        st.lists(st.tuples(st.integers(0, 80), st.integers(0, 3)), max_size=3),
        st.integers(0, 1),
    ),
)
