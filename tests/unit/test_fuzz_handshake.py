"""Property tests: whatever a server sends during the handshake, the sans-IO
:class:`~nbdtui.proto.client_handshake.ClientHandshake` yields only its events or raises its
documented errors (HandshakeError and subclasses, ProtocolError), and after an error
every later call raises the same error.

test_proto_handshake checks every fragmentation of *valid* server streams; here the
streams are mutated (bytes flipped, inserted, deleted, cut short) or random.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbdtui.errors import HandshakeError, NbdError, ProtocolError
from nbdtui.proto.client_events import ExportsListed, Negotiated, StartTLS
from nbdtui.proto.client_handshake import ClientHandshake
from tests.support.proto_scenarios import SCENARIOS, reference

EVENTS = (Negotiated, ExportsListed, StartTLS)
HANDSHAKES = {
    "connect": lambda: ClientHandshake(export_name="disk", list_contexts=True),
    "connect-tls": lambda: ClientHandshake(export_name="disk", tls=True),
    "list": lambda: ClientHandshake(list_exports=True, list_details=True),
    "plain": lambda: ClientHandshake(export_name="", structured_replies=False),
}
REFERENCE_STREAMS = {name: bytes(reference(name).server_bytes) for name in sorted(SCENARIOS)}


def feed(hs: ClientHandshake, stream: bytes, cuts: list[int]) -> None:
    """Feed ``stream`` cut at ``cuts``; check events, errors and the dead state."""
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = [0, *points, len(stream)]
    done = False
    try:
        for a, b in itertools.pairwise(bounds):
            for event in hs.receive_data(stream[a:b]):
                assert isinstance(event, EVENTS), event
                assert not done, "an event after the end of the handshake"
                if isinstance(event, StartTLS):
                    hs.tls_established()
                else:
                    done = True
            hs.data_to_send()
    except (HandshakeError, ProtocolError) as exc:
        assert str(exc) and "\n" not in str(exc)  # one line a person can read
        for later in (lambda: hs.receive_data(b"x"), lambda: hs.receive_data(b"")):
            try:
                later()
            except (HandshakeError, ProtocolError) as again:
                assert again is exc
            else:  # pragma: no cover
                raise AssertionError("the dead handshake accepted more bytes") from None
        return
    assert hs.done == done
    eof = hs.eof_error()  # what the driver raises when the server closes now
    assert eof is None or isinstance(eof, NbdError)


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 12)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
)


def mutate(stream: bytes, mutations) -> bytes:
    data = bytearray(stream)
    for kind, where, arg in mutations:
        i = where % (len(data) + 1)
        if kind == "flip" and i < len(data):
            data[i] ^= arg
        elif kind == "insert":
            data[i:i] = arg
        elif kind == "delete":
            del data[i : i + arg]
        elif kind == "cut":
            del data[i:]
    return bytes(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenario=st.sampled_from(sorted(SCENARIOS)),
    handshake=st.sampled_from(sorted(HANDSHAKES)),
    mutations=st.lists(_mutation, min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_mutated_server_streams(scenario, handshake, mutations, cuts):
    stream = mutate(REFERENCE_STREAMS[scenario], mutations)
    feed(HANDSHAKES[handshake](), stream, cuts)


@settings(max_examples=300, deadline=None)
@given(
    handshake=st.sampled_from(sorted(HANDSHAKES)),
    prefix=st.sampled_from([b"", b"NBDMAGIC", b"NBDMAGICIHAVEOPT", b"NBDMAGIC\x00\x00\x42\x02"]),
    tail=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 400), max_size=4),
)
def test_random_bytes(handshake, prefix, tail, cuts):
    feed(HANDSHAKES[handshake](), prefix + tail, cuts)
