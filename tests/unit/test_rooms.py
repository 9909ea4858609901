"""The manager's sid -> rooms index agrees with python-socketio's own rooms through connects, joins, leaves, closed
rooms and disconnects, and a disconnect no longer scans every room."""

from __future__ import annotations

import random
from typing import Any

import socketio

from sut.fanout import IndexedRooms


class Indexed(IndexedRooms, socketio.Manager):  # type: ignore[misc]
    """The index over the synchronous manager: the basic_* methods it changes are BaseManager's, shared by both."""


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def generate_id(self) -> str:
        self.n += 1
        return f"s{self.n}"


def managers() -> tuple[Any, Any]:
    out = []
    for cls in (socketio.Manager, Indexed):
        manager = cls()
        manager.server = type("Server", (), {"eio": Ids()})()
        out.append(manager)
    return out[0], out[1]


def rooms_of(manager: Any, sid: str) -> set[str]:
    return set(manager.get_rooms(sid, "/"))


def test_the_index_agrees_with_the_stock_manager_through_random_operations() -> None:
    stock, indexed = managers()
    rng = random.Random(7)
    sids: list[str] = []
    connecting: list[str] = []     # pre-connected, their connect handler not done yet
    for step in range(3000):
        op = rng.random()
        if op < 0.3 or not sids:
            eio = f"e{step}"
            sid = stock.pre_connect(eio, "/")
            assert indexed.pre_connect(eio, "/") == sid
            connecting.append(sid)
            if rng.random() < 0.7:
                sid = connecting.pop(rng.randrange(len(connecting)))
                stock.connect(sid, "/")
                indexed.connect(sid, "/")
                sids.append(sid)
        elif op < 0.6:
            sid, room = rng.choice(sids), f"user:{rng.randrange(40)}"
            stock.basic_enter_room(sid, "/", room)
            indexed.basic_enter_room(sid, "/", room)
        elif op < 0.75:
            sid, room = rng.choice(sids), f"user:{rng.randrange(40)}"
            stock.basic_leave_room(sid, "/", room)
            indexed.basic_leave_room(sid, "/", room)
        elif op < 0.78:
            room = f"user:{rng.randrange(40)}"
            stock.basic_close_room(room, "/")
            indexed.basic_close_room(room, "/")
        else:
            sid = sids.pop(rng.randrange(len(sids)))
            assert rooms_of(stock, sid) == rooms_of(indexed, sid)
            stock.pre_disconnect(sid, "/")
            indexed.pre_disconnect(sid, "/")
            stock.basic_disconnect(sid, "/")
            indexed.basic_disconnect(sid, "/")
        assert stock.rooms == indexed.rooms
        probe = rng.choice(sids + connecting + ["s0"])     # s0: never connected
        assert stock.is_connected(probe, "/") == indexed.is_connected(probe, "/")
        assert stock.is_pre_connected(probe, "/") == indexed.is_pre_connected(probe, "/")
        assert stock.pending_connect == indexed.pending_connect
        assert stock.pending_disconnect == indexed.pending_disconnect
    assert sids and connecting and all(rooms_of(stock, sid) == rooms_of(indexed, sid) for sid in sids)
    assert len(indexed.pending_connect["/"]) == len(connecting)
    for sid in sids + connecting:
        indexed.basic_disconnect(sid, "/")
    assert indexed._rooms_of == {} and "/" not in indexed.rooms


def test_a_disconnect_touches_only_the_sids_own_rooms() -> None:
    _stock, indexed = managers()
    for i in range(2000):
        sid = indexed.pre_connect(f"e{i}", "/")
        indexed.connect(sid, "/")
        indexed.basic_enter_room(sid, "/", f"user:{i}")
    before = dict(indexed.rooms["/"])

    class Counting(dict):  # type: ignore[type-arg]
        def copy(self) -> dict[Any, Any]:
            raise AssertionError("the namespace's rooms were copied")

        def items(self) -> Any:
            raise AssertionError("the namespace's rooms were scanned")

    indexed.rooms["/"] = Counting(before)
    indexed.basic_disconnect("s1", "/")
    assert "s1" not in indexed.rooms["/"] and "user:0" not in indexed.rooms["/"]
    assert len(indexed.rooms["/"]) == len(before) - 2 and sorted(indexed.get_rooms("s2", "/")) == ["s2", "user:1"]
