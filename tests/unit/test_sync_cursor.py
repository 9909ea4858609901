"""The sync cursor's text form: what encode() writes decodes back; anything else is refused as invalid input."""

from __future__ import annotations

import pytest

from sut.db.sync import SyncCursor
from sut.domain import Invalid


@pytest.mark.parametrize("cursor", [SyncCursor(0), SyncCursor(41), SyncCursor(2**63 - 1, (7, 2**63 - 1)),
                                    SyncCursor(12, (900, 901, 5))])
def test_what_encode_writes_decodes_back(cursor: SyncCursor) -> None:
    assert SyncCursor.decode(cursor.encode()) == cursor


def test_an_integer_is_a_message_id() -> None:
    assert SyncCursor.decode(0) == SyncCursor(0)
    assert SyncCursor.decode(17) == SyncCursor(17)


@pytest.mark.parametrize("raw", ["1_000", " 7", "7 ", "+7", "-7", "\u0663", "7\n", "7:", "7:,1", "7:1,", "7::1",
                                 "7:1_0", "0x10", "", ":", "1e3", "7:\uff11"])
def test_text_that_int_would_take_or_that_encode_never_writes_is_refused(raw: str) -> None:
    with pytest.raises(Invalid, match="not a cursor this service issued"):
        SyncCursor.decode(raw)


@pytest.mark.parametrize("raw", [2**63, -1, "9223372036854775808", "7:0", "7:9223372036854775808"])
def test_ids_outside_bigint_are_out_of_range(raw: object) -> None:
    with pytest.raises(Invalid, match="out of range"):
        SyncCursor.decode(raw)


def test_a_bool_or_another_type_is_refused() -> None:
    for raw in (True, 1.5, None, [1]):
        with pytest.raises(Invalid, match="must be 0, a message id or a next_after_id"):
            SyncCursor.decode(raw)
