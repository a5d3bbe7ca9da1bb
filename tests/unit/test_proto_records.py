"""The frozen value classes of proto/records.py: what the dataclasses they replaced gave
(repr, equality, hashing, match patterns, copying, immutability) and the fast
constructors of the transmission events building the same objects as ``__init__``."""

from __future__ import annotations

import copy
import pickle

import pytest

from nbdtui.errors import UriError
from nbdtui.proto.client_events import (
    BlockStatus,
    ChunkError,
    ClientEvent,
    Data,
    ExportsListed,
    Hole,
    Negotiated,
    RequestDone,
    StartTLS,
    make_data,
    make_done,
)
from nbdtui.proto.types import ExportDetails, ExportInfo, ReadTarget, make_target
from nbdtui.uri import Endpoint, SshTarget, parse

INFO = ExportInfo("disk", 1 << 20, 0x1, block_minimum=512)


def test_repr_names_every_field_in_order() -> None:
    assert repr(Hole(7, 4096, 512)) == "Hole(cookie=7, offset=4096, length=512)"
    assert repr(RequestDone(3)) == "RequestDone(cookie=3, error=0, message='', offset=None)"
    assert repr(StartTLS()) == "StartTLS()"
    assert repr(INFO) == (
        "ExportInfo(name='disk', size=1048576, flags=1, description=None, "
        "block_minimum=512, block_preferred=None, block_maximum=None)"
    )


def test_equality_and_hash_are_by_class_and_fields() -> None:
    assert Hole(1, 2, 3) == Hole(cookie=1, offset=2, length=3)
    assert hash(Hole(1, 2, 3)) == hash(Hole(1, 2, 3))
    assert Hole(1, 2, 3) != Hole(1, 2, 4)
    # Same fields, another class: not equal (as dataclasses).
    assert Hole(1, 2, 3) != ReadTarget(1, 2, 3)
    assert ChunkError(1, 5) != RequestDone(1, 5)
    assert StartTLS() == StartTLS()
    assert len({parse("nbd://h/x"), parse("nbd://h:10809/x"), parse("nbd://h/x")}) == 2
    assert Negotiated(INFO, "newstyle-fixed", True) == Negotiated(
        ExportInfo("disk", 1 << 20, 1, None, 512), "newstyle-fixed", structured=True
    )


def test_fields_cannot_be_assigned_or_deleted() -> None:
    event = Data(1, 0, 4, b"abcd")
    with pytest.raises(AttributeError, match="cannot assign to field 'cookie'"):
        event.cookie = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot delete field 'data'"):
        del event.data  # type: ignore[misc]
    with pytest.raises(AttributeError):
        INFO.other = 1  # type: ignore[attr-defined]
    assert event.cookie == 1 and event.data == b"abcd"
    assert not hasattr(event, "__dict__") and not hasattr(INFO, "__dict__")
    assert isinstance(event, ClientEvent)


def test_fast_constructors_build_what_init_builds() -> None:
    view = memoryview(b"xyz")
    assert make_data(9, 10, 3, view) == Data(9, 10, 3, view)
    assert make_data(9, 10, 3, None) == Data(9, 10, 3)
    assert make_done(9, 5, "EIO", 12) == RequestDone(9, 5, "EIO", 12)
    assert not make_done(9, 5, "EIO", 12).ok and RequestDone(9).ok
    assert make_target(4, 8, 16) == ReadTarget(cookie=4, offset=8, length=16)


def test_match_class_patterns_take_the_fields_in_order() -> None:
    match BlockStatus(3, 1, ((4096, 1),)):
        case BlockStatus(cookie, context, extents):
            assert (cookie, context, extents) == (3, 1, ((4096, 1),))
        case _:
            pytest.fail("no match")
    assert Data.__match_args__ == ("cookie", "offset", "length", "data")


def test_replace_makes_a_new_checked_object() -> None:
    listed = ExportsListed("newstyle-fixed", (ExportDetails("a", ""),))
    again = listed.replace(tls=True, tls_verified=True)
    assert again.tls and again.tls_verified and again.exports == listed.exports
    assert not listed.tls
    endpoint = parse("nbd://h/x?tls-type=x509")
    assert endpoint.with_export("y").uri == "nbd://h/y?tls-type=x509"
    assert endpoint.replace(port=99).uri == "nbd://h:99/x?tls-type=x509"
    # Endpoint's __init__ checks and normalises, in replace too.
    with pytest.raises(UriError):
        endpoint.replace(port=0)
    assert endpoint.replace(extra=[("x-b", "1"), ("x-a", "2")]).extra == (
        ("x-a", "2"),
        ("x-b", "1"),
    )
    with pytest.raises(TypeError):
        INFO.replace(nonsense=1)


def test_init_keeps_the_endpoint_checks() -> None:
    with pytest.raises(UriError):
        Endpoint("tcp")  # no host
    with pytest.raises(UriError):
        SshTarget("-oProxyCommand=x")
    assert SshTarget("h", port=22) == SshTarget(host="h", user=None, port=22)


@pytest.mark.parametrize(
    "value",
    [
        INFO,
        ExportDetails("a", "desc", INFO, ("base:allocation",)),
        Negotiated(INFO, "newstyle", False, (("base:allocation", 1),), None, True, False),
        RequestDone(5, 22, "bad", 7),
        parse("nbd+unix:///disk?socket=/run/s&x-a=1"),
        SshTarget("h", "me", 2222),
    ],
)
def test_copy_and_pickle_give_an_equal_object(value: object) -> None:
    assert copy.copy(value) == value
    assert copy.deepcopy(value) == value
    back = pickle.loads(pickle.dumps(value))
    assert back == value and type(back) is type(value)
