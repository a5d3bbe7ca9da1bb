"""The data inspector at the hex editor's cursor."""

from __future__ import annotations

import struct
import uuid

from hypothesis import given
from hypothesis import strategies as st

from nbdtui.disk.inspect import MISSING, Field, inspect

ROW_NAMES = [
    "u8",
    "i8",
    "u16 LE",
    "u16 BE",
    "i16 LE",
    "i16 BE",
    "u32 LE",
    "u32 BE",
    "i32 LE",
    "i32 BE",
    "u64 LE",
    "u64 BE",
    "i64 LE",
    "i64 BE",
    "float32 LE",
    "float32 BE",
    "float64 LE",
    "float64 BE",
    "UTF-8",
    "UTF-16LE",
    "UNIX time u32 LE",
    "UNIX time i64 LE",
    "DOS date/time",
    "FILETIME",
    "GUID",
    "GPT type",
]


def rows(data: bytes) -> dict[str, str]:
    return {f.name: f.value for f in inspect(data)}


def test_rows_are_always_the_same_and_in_order() -> None:
    for n in range(17):
        fields = inspect(bytes(range(n)))
        assert [f.name for f in fields] == ROW_NAMES
        assert all(isinstance(f, Field) for f in fields)
    assert {f.name: f.size for f in inspect(b"")}["GUID"] == 16


def test_integers_both_byte_orders() -> None:
    r = rows(bytes.fromhex("fe ff ff ff 01 00 00 80 00 00 00 00 00 00 00 00"))
    assert r["u8"] == "254" and r["i8"] == "-2"
    assert r["u16 LE"] == "65534" and r["u16 BE"] == "65279"
    assert r["i16 LE"] == "-2" and r["i16 BE"] == "-257"
    assert r["u32 LE"] == "4294967294" and r["i32 LE"] == "-2"
    assert r["u32 BE"] == str(0xFEFFFFFF) and r["i32 BE"] == str(0xFEFFFFFF - 2**32)
    assert r["u64 LE"] == str(0x80000001FFFFFFFE)
    assert r["i64 LE"] == str(0x80000001FFFFFFFE - 2**64)
    assert r["u64 BE"] == str(0xFEFFFFFF01000080)
    assert r["i64 BE"] == str(0xFEFFFFFF01000080 - 2**64)


def test_floats() -> None:
    r = rows(struct.pack("<f", 1.5) + struct.pack(">d", -2.25))
    assert r["float32 LE"] == "1.5"
    assert rows(struct.pack("<d", 1e-300))["float64 LE"] == "1e-300"
    r = rows(struct.pack(">f", 0.1) + bytes(12))
    assert r["float32 BE"] == "0.1"  # shortest text that reads back as the same float32
    r = rows(struct.pack(">d", -2.25))
    assert r["float64 BE"] == "-2.25"
    assert rows(struct.pack("<f", float("nan")))["float32 LE"] == "NaN"
    assert rows(struct.pack("<d", float("-inf")))["float64 LE"] == "-inf"


def test_utf8_text() -> None:
    assert rows(b"Hello\x00world")["UTF-8"] == '"Hello\\x00world" (U+0048)'
    assert rows("é€😀".encode())["UTF-8"] == '"é€😀" (U+00E9)'
    assert rows(b"ab\xffcd")["UTF-8"] == '"ab" (U+0061)'  # up to the first bad byte
    assert rows(b"\xff\xfe")["UTF-8"] == "invalid"
    assert rows(b"\xe2\x82")["UTF-8"] == MISSING  # first character cut short
    assert rows(b'q"\\\n')["UTF-8"] == '"q\\"\\\\\\n" (U+0071)'


def test_utf16le_text() -> None:
    assert rows("Hi".encode("utf-16-le"))["UTF-16LE"] == '"Hi" (U+0048)'
    assert rows("😀x".encode("utf-16-le"))["UTF-16LE"] == '"😀x" (U+1F600)'
    assert rows(b"\x00\xdc\x41\x00")["UTF-16LE"] == "invalid"  # lone low surrogate
    assert rows(b"A\x00B")["UTF-16LE"] == '"A" (U+0041)'  # odd tail ignored
    assert rows(b"A")["UTF-16LE"] == MISSING


def test_unix_times() -> None:
    r = rows(struct.pack("<I", 1704110400) + bytes(4))
    assert r["UNIX time u32 LE"] == "2024-01-01T12:00:00Z"
    assert rows(struct.pack("<q", -86400))["UNIX time i64 LE"] == "1969-12-31T00:00:00Z"
    assert rows(struct.pack("<q", 2**62))["UNIX time i64 LE"] == "out of range"
    assert rows(bytes(4))["UNIX time u32 LE"] == "1970-01-01T00:00:00Z"
    assert rows(bytes(4))["UNIX time i64 LE"] == MISSING


def test_dos_date_time() -> None:
    # FAT directory entry order: time (low 16 bits) then date (high 16 bits).
    time = 13 << 11 | 45 << 5 | 30 // 2
    date = (2023 - 1980) << 9 | 7 << 5 | 14
    assert rows(struct.pack("<HH", time, date))["DOS date/time"] == "2023-07-14 13:45:30"
    assert rows(struct.pack("<HH", 0, 0))["DOS date/time"] == "invalid"  # month 0
    assert rows(struct.pack("<HH", 24 << 11, date))["DOS date/time"] == "invalid"


def test_filetime() -> None:
    ticks = (1704110400 + 11644473600) * 10_000_000
    assert rows(struct.pack("<Q", ticks))["FILETIME"] == "2024-01-01T12:00:00Z"
    assert rows(struct.pack("<Q", ticks + 1234567))["FILETIME"] == "2024-01-01T12:00:00.123456Z"
    assert rows(bytes(8))["FILETIME"] == "1601-01-01T00:00:00Z"
    assert rows(b"\xff" * 8)["FILETIME"] == "out of range"


def test_guid_mixed_endian() -> None:
    esp = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    raw = esp.bytes_le
    assert raw[:4] == bytes.fromhex("28732ac1")
    assert rows(raw)["GUID"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert rows(raw[:15])["GUID"] == MISSING
    assert rows(raw)["GPT type"] == "EFI System"
    assert rows(raw[:15])["GPT type"] == MISSING
    assert rows(bytes(16))["GPT type"] == "unknown"


def test_unsigned_rows_carry_their_value_for_hex_and_follow() -> None:
    numbers = {f.name: f.number for f in inspect(bytes.fromhex("00 08 00 00 00 00 00 00"))}
    assert numbers["u8"] == 0 and numbers["u16 LE"] == 0x800 and numbers["u16 BE"] == 8
    assert numbers["u32 LE"] == 0x800 and numbers["u64 BE"] == 0x8000000000000
    assert numbers["i32 LE"] is None and numbers["float32 LE"] is None
    assert {f.name: f.number for f in inspect(b"\x01")}["u16 LE"] is None


def test_short_input_shows_missing() -> None:
    r = rows(b"\x01\x02\x03")
    assert r["u8"] == "1" and r["u16 BE"] == "258"
    assert r["u32 LE"] == MISSING and r["float64 BE"] == MISSING and r["GUID"] == MISSING
    assert all(v == MISSING for v in rows(b"").values())
    assert rows(bytes(range(20)))["u8"] == "0"  # more than 16 bytes: only 16 are read


@given(st.binary(max_size=24))
def test_never_raises(data: bytes) -> None:
    fields = inspect(data)
    assert len(fields) == len(ROW_NAMES)
    assert all(isinstance(f.value, str) and f.value for f in fields)
