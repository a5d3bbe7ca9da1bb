"""Sizes and offsets on the command line (nbdtui.present.sizes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbdtui.present.sizes import format_size, parse_size

HELP = "use bytes, K/M/G/T, 0x hex or Ns for 512-byte sectors"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("4096", 4096),
        ("4096b", 4096),
        ("4096B", 4096),
        ("007", 7),
        ("1_048_576", 1048576),
        ("1K", 1024),
        ("1k", 1024),
        ("1Ki", 1024),
        ("1KiB", 1024),
        ("1kib", 1024),
        ("1KB", 1024),
        ("4 KiB", 4096),
        ("  64M  ", 64 << 20),
        ("1MB", 1 << 20),
        ("1mib", 1 << 20),
        ("2G", 2 << 30),
        ("3GiB", 3 << 30),
        ("1T", 1 << 40),
        ("1P", 1 << 50),
        ("1E", 1 << 60),
        ("0x1000", 4096),
        ("0X1000", 4096),
        ("0xffff_0000", 0xFFFF0000),
        ("0xDEADbeef", 0xDEADBEEF),
        ("8s", 4096),
        ("8S", 4096),
        ("1s", 512),
        ("0s", 0),
        ("1_0K", 10240),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"empty size: {HELP}"),
        ("   ", f"empty size: {HELP}"),
        ("12Q", f"invalid size '12Q': {HELP}"),
        ("K", f"invalid size 'K': {HELP}"),
        ("abc", f"invalid size 'abc': {HELP}"),
        ("0x", f"invalid size '0x': {HELP}"),
        ("0xg", f"invalid size '0xg': {HELP}"),
        ("0x10K", f"invalid size '0x10K': {HELP}"),
        ("10 20", f"invalid size '10 20': {HELP}"),
        ("1__0", f"invalid size '1__0': {HELP}"),
        ("_10", f"invalid size '_10': {HELP}"),
        ("10_", f"invalid size '10_': {HELP}"),
        ("1KK", f"invalid size '1KK': {HELP}"),
        ("1KiBs", f"invalid size '1KiBs': {HELP}"),
        ("+5", f"invalid size '+5': {HELP}"),
        ("-1", "invalid size '-1': a size cannot be negative"),
        ("-4K", "invalid size '-4K': a size cannot be negative"),
        ("1.5M", f"invalid size '1.5M': fractions are not allowed, {HELP}"),
        ("0.5", f"invalid size '0.5': fractions are not allowed, {HELP}"),
        ("1,5G", f"invalid size '1,5G': fractions are not allowed, {HELP}"),
        ("٣", f"invalid size '٣': {HELP}"),
    ],
)
def test_parse_size_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert str(info.value) == message


@given(st.integers(0, 2**70), st.sampled_from(["", "B", "K", "M", "G", "T", "P", "E", "s"]))
def test_parse_size_multipliers(n: int, suffix: str) -> None:
    factor = {"": 1, "B": 1, "s": 512}.get(suffix) or 1024 ** ("KMGTPE".index(suffix) + 1)
    assert parse_size(f"{n}{suffix}") == n * factor
    assert parse_size(f"{n:_}{suffix.lower()}") == n * factor
    assert parse_size(hex(n)) == n


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),
        (1024 * 1023, "1023.0 KiB"),
        (3 * 1024 * 1024 // 2, "1.5 MiB"),
        (1 << 30, "1.0 GiB"),
        (10 * (1 << 30) + (1 << 29), "10.5 GiB"),
        (1 << 40, "1.0 TiB"),
        (1 << 50, "1.0 PiB"),
        (1 << 60, "1.0 EiB"),
        (1 << 70, "1024.0 EiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text


@given(st.integers(1024, 2**63))
def test_format_size_shape(n: int) -> None:
    number, unit = format_size(n).split(" ")
    assert unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    value = float(number)
    assert 1.0 <= value < 1024.0
    assert number == f"{value:.1f}"
    # Within rounding of the real value.
    scale = 1024 ** (("KiB", "MiB", "GiB", "TiB", "PiB", "EiB").index(unit) + 1)
    assert abs(n / scale - value) <= 0.05 + 1e-9
