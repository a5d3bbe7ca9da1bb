"""Caps on what a server can make the client handshake hold (issue 13, item 1): the
intermediate replies to one option, counted and measured, and those of the whole
handshake. Bytes in, errors out; the caps are lowered with monkeypatch where a real
flood would take long."""

from __future__ import annotations

import pytest

from nbdtui.errors import ProtocolError
from nbdtui.proto import option_caps
from nbdtui.proto.client_events import ExportsListed, Negotiated
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.constants import Option, OptionReply
from tests.support.proto_scenarios import (
    ACK,
    FIXED,
    NO_ZEROES,
    greeting,
    rep,
    rep_context,
    rep_server,
    split_options,
)


def _start(hs: ClientHandshake, *answers: bytes) -> list[int]:
    """Greet, then answer the options the client sends, in order, with ``answers``
    (an option left without an answer is the one flooded next); the options sent."""
    sent: list[int] = []
    hs.receive_data(greeting(FIXED | NO_ZEROES))
    out = hs.data_to_send()[4:]
    for answer in answers:
        sent += [o for o, _ in split_options(out)]
        hs.receive_data(answer)
        out = hs.data_to_send()
    sent += [o for o, _ in split_options(out)]
    return sent


def test_endless_export_list_stops_at_the_count_cap(monkeypatch):
    monkeypatch.setattr(option_caps, "MAX_OPTION_REPLIES", 1000)
    hs = ClientHandshake(list_exports=True)
    assert _start(hs, rep(Option.STRUCTURED_REPLY, ACK))[-1] == Option.LIST
    one = rep_server("e")
    hs.receive_data(one * 1000)  # exactly the cap: accepted
    with pytest.raises(ProtocolError) as caught:
        hs.receive_data(one)
    text = str(caught.value)
    assert "more than 1000 replies to NBD_OPT_LIST" in text
    assert "cap" in text and "\n" not in text


def test_endless_export_list_of_long_names_stops_at_the_byte_cap():
    """The default caps: 32 MiB of 4 KiB names is about 8,000 replies, and the reply
    that would cross the cap is refused from its header, before its payload."""
    hs = ClientHandshake(list_exports=True)
    _start(hs, rep(Option.STRUCTURED_REPLY, ACK))
    one = rep_server("n" * 4096)
    per = len(one)
    fits = option_caps.MAX_OPTION_REPLY_BYTES // per
    hs.receive_data(one * fits)
    with pytest.raises(ProtocolError) as caught:
        hs.receive_data(one[:20])  # the header alone
    assert "more than 32 MiB of replies to NBD_OPT_LIST" in str(caught.value)
    assert len(hs._inbox) == 20  # nothing of the payload was waited for


def test_endless_meta_context_list_of_info_stops_at_the_count_cap(monkeypatch):
    """`nbdtui info` lists the meta contexts (LIST_META_CONTEXT): same cap."""
    monkeypatch.setattr(option_caps, "MAX_OPTION_REPLIES", 50)
    hs = ClientHandshake(export_name="disk", list_contexts=True)
    assert _start(hs, rep(Option.STRUCTURED_REPLY, ACK))[-1] == Option.LIST_META_CONTEXT
    with pytest.raises(ProtocolError, match="more than 50 replies to NBD_OPT_LIST_META_CONTEXT"):
        hs.receive_data(rep_context(Option.LIST_META_CONTEXT, 0, "base:allocation") * 51)


def test_the_count_starts_again_with_each_option(monkeypatch):
    """The cap is per option: 40 contexts listed, then 40 agreed, with a cap of 50."""
    monkeypatch.setattr(option_caps, "MAX_OPTION_REPLIES", 50)
    hs = ClientHandshake(export_name="disk", list_contexts=True, meta_contexts=("base:allocation",))
    lmc, smc = Option.LIST_META_CONTEXT, Option.SET_META_CONTEXT
    _start(
        hs,
        rep(Option.STRUCTURED_REPLY, ACK),
        rep_context(lmc, 0, "x") * 40 + rep(lmc, ACK),
        rep_context(smc, 3, "base:allocation") * 40 + rep(smc, ACK),
    )
    info = rep(Option.GO, OptionReply.INFO, bytes(2) + (1 << 20).to_bytes(8, "big") + b"\0\1")
    [event] = hs.receive_data(info + rep(Option.GO, ACK))
    assert isinstance(event, Negotiated)
    assert event.available_contexts == ("x",) * 40


def test_the_whole_handshake_is_capped_too(monkeypatch):
    """A listing with details: each export's contexts stay under the per-option caps, but
    all of them together meet the handshake's cap."""
    monkeypatch.setattr(option_caps, "MAX_HANDSHAKE_REPLY_BYTES", 10_000)
    hs = ClientHandshake(list_exports=True, list_details=True)
    lmc = Option.LIST_META_CONTEXT
    names = [f"e{i}" for i in range(100)]
    sent = _start(
        hs,
        rep(Option.STRUCTURED_REPLY, ACK),
        b"".join(rep_server(n) for n in names) + rep(Option.LIST, ACK),
    )
    assert sent[-1] == lmc
    hs.receive_data(rep_context(lmc, 0, "c" * 100) * 20 + rep(lmc, ACK))
    hs.receive_data(rep(Option.INFO, OptionReply.ERR_UNSUP))  # no INFO asked again
    hs.receive_data(rep_context(lmc, 0, "c" * 100) * 20 + rep(lmc, ACK))
    with pytest.raises(ProtocolError, match="more than 10000 bytes of option replies"):
        hs.receive_data(rep_context(lmc, 0, "c" * 100) * 20 + rep(lmc, ACK))


def test_a_listing_of_100000_exports_is_under_the_caps():
    hs = ClientHandshake(list_exports=True)
    _start(hs, rep(Option.STRUCTURED_REPLY, ACK))
    stream = b"".join(rep_server(f"export-{i:06d}", "a description") for i in range(100_000))
    [event] = hs.receive_data(stream + rep(Option.LIST, ACK))
    assert isinstance(event, ExportsListed)
    assert len(event.exports) == 100_000
    assert event.exports[-1].name == "export-099999"
