"""sut/siopacket.py answers python-socketio's binary question as the stock packet does, faster."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import packet

from sut import jsonfast, siopacket
from sut.app import create_app
from sut.handlers import realtime
from sut.settings import Settings

LEAVES = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
          | st.binary(max_size=3) | st.binary(max_size=3).map(bytearray) | st.just(datetime(2026, 1, 1, tzinfo=UTC))
          | st.tuples(st.binary(max_size=2)))   # tuples are not walked, by either
DATA = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                                        max_size=4), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(DATA)
def test_the_same_answer_as_the_stock_packet(data: object) -> None:
    assert siopacket.Packet.data_is_binary(data) == packet.Packet.data_is_binary(data)


def test_bytes_at_any_depth_are_found() -> None:
    message = {"message": {"id": 1, "body": "hi", "created_at": datetime(2026, 1, 1, tzinfo=UTC)}}
    assert not siopacket.Packet.data_is_binary(["message:new", message])
    assert siopacket.Packet.data_is_binary(["message:new", {"message": {**message["message"], "image": b"\x00"}}])
    assert siopacket.Packet.data_is_binary([[{"a": [bytearray(b"x")]}]])


def test_packets_built_with_it_encode_as_the_stock_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # python-socketio keeps the JSON module on the packet class: the server sets jsonfast on ours (once an app is
    # made), the stock class keeps the standard library's unless told. Compare with the same module on both
    for cls in (packet.Packet, siopacket.Packet):
        monkeypatch.setattr(cls, "json", jsonfast)
    data = ["message:new", {"message": {"id": 7, "body": "héllo"}}]
    ours = siopacket.Packet(packet.EVENT, data=data, namespace="/").encode()
    stock = packet.Packet(packet.EVENT, data=data, namespace="/").encode()
    assert ours == stock
    binary = siopacket.Packet(packet.EVENT, data=["upload", b"\x01\x02"], namespace="/").encode()
    assert binary == packet.Packet(packet.EVENT, data=["upload", b"\x01\x02"], namespace="/").encode()


def test_the_service_builds_its_packets_with_it_and_jsonfast() -> None:
    app = create_app(Settings(jwt_secret="x" * 32))
    server = app[realtime.SIO]
    assert server.packet_class is siopacket.Packet
    assert siopacket.Packet.json is jsonfast and server.manager.json is jsonfast
