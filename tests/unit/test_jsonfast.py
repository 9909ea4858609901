"""sut/jsonfast.py: orjson where it reads and writes what the standard library would, the standard library where not."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sut import jsonfast

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_loads_reads_what_the_standard_library_reads(value: object) -> None:
    text = json.dumps(value)
    assert jsonfast.loads(text) == json.loads(text)
    assert jsonfast.loads(text.encode()) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_dumps_writes_what_the_standard_library_reads_back(value: object) -> None:
    assert json.loads(jsonfast.dumps(value)) == value


@pytest.mark.parametrize("text", [
    "18446744073709551616",                         # 2**64: orjson alone reads a float
    "-9223372036854775809",                         # -2**63 - 1: only 19 digits, and a float to orjson alone
    '{"id": -123456789012345678901234567890}',
    '[1, 99999999999999999999, "x"]',
])
def test_integers_past_64_bits_stay_exact(text: str) -> None:
    for given_ in (text, text.encode()):
        value = jsonfast.loads(given_)
        assert value == json.loads(text)
        assert not isinstance(value, float)


@pytest.mark.parametrize(("text", "long"), [
    ("123456789012345678", False),                  # 18 digits: within 64 bits either way, orjson's path
    ("-1234567890123456789", True),                 # 19: below -2**63 from -9223372036854775809 on
    ("12345678901234567890", True),
    ('"a 2026-11-27T00:38:06.123456+00:00 b"', False),
    ('{"body": "call 0044 2079460000 1234567"}', False),   # digit runs broken by spaces
    ('"\\ud800 1234567890123456789"', True),
    ("\ud800" + "1" * 19, True),                    # a lone surrogate in the text itself: no UnicodeEncodeError
    ("\u0661" * 25, False),                         # Arabic-Indic digits: never part of a JSON number
])
def test_a_run_of_nineteen_ascii_digits_takes_the_exact_path(text: str, long: bool) -> None:
    assert jsonfast.has_long_number(text) is long
    assert jsonfast.has_long_number(text.encode("utf-8", "surrogatepass")) is long
    assert jsonfast.has_long_number(bytearray(text.encode("utf-8", "surrogatepass"))) is long


def test_what_orjson_refuses_the_standard_library_reads() -> None:
    assert jsonfast.loads('"\\ud800"') == "\ud800"             # a lone surrogate escape
    assert math.isnan(jsonfast.loads("NaN"))
    assert jsonfast.loads("[" * 300 + "]" * 300) == json.loads("[" * 300 + "]" * 300)   # past orjson's depth


@pytest.mark.parametrize("text", ["", "{", '{"a": 1,}', "[1] x", b"\xff"])
def test_bad_json_raises_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        jsonfast.loads(text)


@pytest.mark.parametrize("moment", [
    datetime(2026, 11, 27, 0, 38, 6, 123456, tzinfo=UTC),
    datetime(2026, 11, 27, 0, 38, 6, tzinfo=UTC),             # no microseconds: isoformat writes none
    datetime(2026, 11, 27, 0, 38, 6, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
])
def test_datetimes_are_written_as_isoformat_writes_them(moment: datetime) -> None:
    assert json.loads(jsonfast.dumps({"at": moment})) == {"at": moment.isoformat()}
    assert json.loads(jsonfast.dumps({"at": moment, "n": 2**70})) == {"at": moment.isoformat(), "n": 2**70}
