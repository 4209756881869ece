"""Unit tests for fa_memtool.units: parse_size and format_bytes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fa_memtool.units import format_bytes, parse_size

KB, MB, GB, TB = 1000, 1000**2, 1000**3, 1000**4
KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24 MB", 24 * MB),
        ("10MB", 10 * MB),
        ("1.5 GiB", 3 * GIB // 2),
        ("512k", 512 * KIB),
        ("0", 0),
        ("1048576", 1048576),
        ("7 B", 7),
        ("7b", 7),
        ("3 kB", 3 * KB),
        ("3 KB", 3 * KB),
        ("3kb", 3 * KB),
        ("2 GB", 2 * GB),
        ("1 TB", TB),
        ("2 KiB", 2 * KIB),
        ("2 kib", 2 * KIB),
        ("5 MiB", 5 * MIB),
        ("1 TiB", TIB),
        ("3m", 3 * MIB),
        ("3M", 3 * MIB),
        ("2g", 2 * GIB),
        ("1t", TIB),
        (".5k", KIB // 2),
        ("2.", 2),
        ("2.25 MB", 2_250_000),
        ("1e3", 1000),
        ("1.5e3 kB", 1_500_000),
        ("2e+2k", 200 * KIB),
        ("  24 MB  ", 24 * MB),
        ("24\tMB\n", 24 * MB),
        ("0 GiB", 0),
        ("0.0", 0),
    ],
)
def test_parse_size_accepts(text: str, expected: int) -> None:
    result = parse_size(text)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "text",
    ["10XB", "", "   ", "-1 MB", "MB", "-0", "+5 MB", "1,5 MB", "1 2 MB", "5 MBs", "10 bytes", "1e", "nan", "inf",
     "1.2.3", "0x10", "five MB", "1_000", "5 M B", "e3"],
)  # fmt: skip
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_size(text)
    message = str(error.value)
    assert repr(text) in message
    for unit in ("kB", "MB", "GB", "KiB", "MiB", "GiB"):
        assert unit in message


def test_decimal_and_binary_units_differ() -> None:
    assert parse_size("1 MB") == 1_000_000
    assert parse_size("1 MiB") == parse_size("1m") == parse_size("1M") == 1_048_576
    assert parse_size("1k") == parse_size("1 KiB") != parse_size("1 kB")


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (999, "999 B"),
        (1000, "1 kB"),
        (1234, "1.23 kB"),
        (12_345, "12.3 kB"),
        (123_456, "123 kB"),
        (999_499, "999 kB"),
        (999_500, "1 MB"),
        (34_500_000, "34.5 MB"),
        (1_500_000_000, "1.5 GB"),
        (2 * TB, "2 TB"),
        (5000 * TB, "5000 TB"),
        (-1500, "-1.5 kB"),
        (-5, "-5 B"),
        (24.4, "24 B"),
    ],
)
def test_format_bytes(count: float, expected: str) -> None:
    assert format_bytes(count) == expected


def test_format_bytes_signed() -> None:
    assert format_bytes(1500, signed=True) == "+1.5 kB"
    assert format_bytes(-1500, signed=True) == "-1.5 kB"
    assert format_bytes(0, signed=True) == "0 B"
    assert format_bytes(1500) == "1.5 kB"  # no plus sign unless asked


def _round_trip_tolerance(count: float) -> float:
    # Three significant figures: at most half a unit in the third digit (0.5 %), or half a byte.
    return max(0.5, 0.005 * count) + 1e-9 * count


@pytest.mark.parametrize(
    "count",
    [0, 1, 999, 1000, 1001, 1234, 9_995, 99_950, 99_949, 100_500, 999_499, 999_500, 999_999, 1_000_000,
     24 * MB, 34_567_890, 10 * GB - 1, 123 * TB, 10**16 + 7, MIB, GIB, int(1.5 * GIB)],
)  # fmt: skip
def test_format_then_parse_round_trips_within_rounding(count: int) -> None:
    text = format_bytes(count)
    assert abs(parse_size(text) - count) <= _round_trip_tolerance(count), text


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10**18))
def test_format_then_parse_round_trips_property(count: int) -> None:
    text = format_bytes(count)
    assert abs(parse_size(text) - count) <= _round_trip_tolerance(count), text
    # A formatted size has at most three significant figures unless it is whole TB or bytes.
    number, unit = text.split(" ")
    assert unit in {"B", "kB", "MB", "GB", "TB"}
    if unit not in {"B", "TB"}:
        assert len(number.replace(".", "").lstrip("0")) <= 3, text


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(["", "B", "kB", "MB", "GB", "KiB", "MiB", "k", "m"]))
def test_parse_integer_with_unit_is_exact(number: int, unit: str) -> None:
    factor = parse_size(f"1 {unit}") if unit else 1
    if number * factor < 2**53:  # parse_size goes through float: exact below 2**53
        assert parse_size(f"{number} {unit}") == number * factor
        assert parse_size(f"{number}{unit}") == number * factor


@pytest.mark.parametrize("text", ["1e400", "9" * 400 + " MB", "1e308 TB", "2e308"])
def test_parse_size_huge_number_raises_value_error(text: str) -> None:
    # Overflowing a float (OverflowError inside) is reported as ValueError, like any unreadable size.
    with pytest.raises(ValueError) as error:
        parse_size(text)
    assert type(error.value) is ValueError
    assert repr(text) in str(error.value)


def test_parse_size_large_but_finite_number_is_exact_enough() -> None:
    assert parse_size("1e300") == int(1e300)
    assert parse_size("1e18 TiB") == int(1e18 * TIB)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (999.7, "1 kB"),
        (999.5, "1 kB"),
        (999.49, "999 B"),
        (998.6, "999 B"),
        (0.4, "0 B"),
        (0.6, "1 B"),
        (-0.3, "0 B"),
        (-0.0, "0 B"),
        (-0.7, "-1 B"),
        (-999.7, "-1 kB"),
        (-999.2, "-999 B"),
    ],
)
def test_format_bytes_rounds_to_whole_bytes_first(count: float, expected: str) -> None:
    assert format_bytes(count) == expected


def test_format_bytes_just_below_one_kilobyte() -> None:
    assert format_bytes(999.7) == format_bytes(1000) == "1 kB"
    assert format_bytes(999.7, signed=True) == "+1 kB"
    assert format_bytes(-999.7, signed=True) == "-1 kB"


def test_format_bytes_signed_rounds_before_choosing_the_sign() -> None:
    assert format_bytes(0.3, signed=True) == "0 B"  # not "+0 B"
    assert format_bytes(-0.3, signed=True) == "0 B"  # not "-0 B"
    assert format_bytes(0.7, signed=True) == "+1 B"
    assert format_bytes(-0.7, signed=True) == "-1 B"


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False))
def test_format_bytes_of_any_float_is_well_formed(count: float) -> None:
    text = format_bytes(count)
    number, unit = text.split(" ")
    assert unit in {"B", "kB", "MB", "GB", "TB"}
    assert text not in {"-0 B", "+0 B"}
    magnitude = number.lstrip("-")
    if unit == "B":
        assert magnitude.isdigit() and int(magnitude) <= 999, text
        assert int(number) == round(count)  # whole bytes, rounded
    else:
        assert len(magnitude.replace(".", "").lstrip("0")) <= 3, text
    assert number.startswith("-") == (round(count) < 0), text
    assert abs(parse_size(magnitude + " " + unit) - abs(count)) <= _round_trip_tolerance(abs(count)), text


def test_bug_parse_size_huge_exponent_raises_value_error_promptly() -> None:
    # In a child process: the parent could not interrupt C-level bignum arithmetic.
    code = (
        "from fa_memtool.units import parse_size\n"
        "try:\n"
        "    parse_size('1e99999999999')\n"
        "except ValueError as error:\n"
        "    assert repr('1e99999999999') in str(error), error\n"
        "    raise SystemExit(0)\n"
        "raise SystemExit(1)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=0.5, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
