"""Transmission flags read defensively (issue 13, item 9): READ_ONLY is honoured even
without HAS_FLAGS (libnbd does the same); no other capability is assumed then."""

from __future__ import annotations

from nbdtui.proto.client_events import Negotiated
from nbdtui.proto.client_handshake import ClientHandshake
from nbdtui.proto.constants import Option, TransmissionFlag
from nbdtui.proto.types import ExportInfo
from tests.support.proto_scenarios import converse, standard_server

TF = TransmissionFlag


def test_read_only_without_has_flags_is_read_only_and_nothing_else():
    info = ExportInfo("disk", 1 << 20, int(TF.READ_ONLY | TF.SEND_FLUSH | TF.SEND_TRIM))
    assert info.read_only
    assert info.flags_without_has_flags
    assert not info.can_flush and not info.can_trim


def test_flags_with_has_flags_are_as_sent():
    info = ExportInfo("disk", 1 << 20, int(TF.HAS_FLAGS | TF.SEND_FLUSH))
    assert not info.read_only and info.can_flush
    assert not info.flags_without_has_flags
    assert not ExportInfo("disk", 1, 0).flags_without_has_flags  # no flags at all: no rule broken


def test_the_handshake_hands_the_flags_through():
    flags = int(TF.READ_ONLY)
    conv = converse(ClientHandshake(export_name="disk"), standard_server(flags=flags))
    [event] = conv.events
    assert isinstance(event, Negotiated)
    assert event.info.flags == flags and event.info.read_only
    assert Option.GO in conv.option_codes
