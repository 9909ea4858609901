"""Every socket.io client event fuzzed with hypothesis: arbitrary JSON-ish payloads (wrong types, missing and extra
keys, huge strings, odd unicode, nesting, int64 edges, several arguments) and near-valid ones, plus unknown event
names. Each emit gets an ack of the documented shape (ok for the valid payloads), the connection survives, and a
refused payload stores and changes nothing. FUZZ_MAX_EXAMPLES sets the budget as for the REST fuzz (`make fuzz`
raises it); FUZZ_SEED set means random-but-replayable, unset derandomized (the same cases on every CI run)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import hypothesis
import pytest
import socketio
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from hypothesis import strategies as st

from sut.app import create_app
from sut.settings import Settings
from tests.support import new_pair

pytestmark = pytest.mark.fuzz

Client = TestClient[Request, Application]
T = TypeVar("T")
# a case costs a few milliseconds here: three times the REST fuzz's budget per strategy (about 10 s in CI)
MAX_EXAMPLES = 3 * int(os.environ.get("FUZZ_MAX_EXAMPLES", "100"))
SEED = os.environ.get("FUZZ_SEED")
EVENTS = ("message:send", "conversation:read", "typing", "sync")
# what a caller with a valid connection and no rate limit may be told; "internal" and "unavailable" would mean the
# input broke something, "unauthorized" that the connection lost its user, "rate_limited" is off here
EXPECTED_CODES = {"validation_error", "not_found", "conflict", "invalid", "unknown_event"}
MISSING: Any = object()
OK_FIELDS = {"message:send": {"ok", "duplicate", "message"}, "conversation:read": {"ok", "conversation_id",
             "up_to_message_id"}, "typing": {"ok"}, "sync": {"ok", "items", "next_after_id"}}

# --- strategies -----------------------------------------------------------------------------------------------------

INT64_EDGES = st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1,
                               2**64, 10**30, -(10**30)])
ODD_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "a\udfffb", "\u202eevil", "\u200b", "\ufeff", "😀" * 3, "ｅ", "١٢٣",
    "0", "-1", "1e3", "0x10", "null", "true", "[]", "{}", "NaN", "18:90121,90125", "1:", ":", "1:0", "1:-5",
    "9" * 30, "1:" + ",".join(["9" * 19] * 50), "uploads/1/" + "a" * 32 + ".png", "../../etc/passwd", "%00",
])
HUGE_TEXT = st.one_of(
    st.integers(4001, 200_000).map(lambda n: "x" * n),
    st.tuples(st.characters(), st.integers(1000, 50_000)).map(lambda cn: cn[0] * cn[1]),
)
NESTED = st.integers(50, 900).map(lambda depth: _nest(depth))
LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), INT64_EDGES, st.floats(), st.text(max_size=40), ODD_TEXT,
    st.binary(max_size=32),
)
JSONISH = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=16), inner, max_size=4),
    max_leaves=16,
)
ANY_VALUE = st.one_of(JSONISH, LEAF, HUGE_TEXT, NESTED)


def _nest(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@dataclass(frozen=True)
class Field:
    valid: st.SearchStrategy[Any]
    near: st.SearchStrategy[Any]  # near misses for this field
    required: bool = True


@dataclass(frozen=True)
class Payload:
    """What is emitted: one argument (MISSING: none, a tuple: several), and whether it is valid by construction."""

    args: Any
    valid: bool = False


@st.composite
def near_valid(draw: st.DrawFn, fields: dict[str, Field]) -> Payload:
    """A valid payload (optional fields there or not), or one with a field or two replaced by a near miss or
    anything, or dropped, or with extra keys."""
    payload = {name: draw(field.valid) for name, field in fields.items()
               if field.required or draw(st.booleans())}
    change = draw(st.sampled_from(["none", "one", "two", "extra"]))
    if change == "none":
        return Payload(payload, valid=True)
    if change == "extra":
        key = draw(st.text(max_size=12).filter(lambda k: k not in fields))
        return Payload({**payload, key: draw(ANY_VALUE)})
    valid = True
    for name in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=int(change == "two") + 1,
                              unique=True)):
        how = draw(st.sampled_from(["near", "any", "drop"]))
        if how == "drop":
            valid = valid and not fields[name].required
            payload.pop(name, None)
        else:
            valid = False
            payload[name] = draw(fields[name].near if how == "near" else ANY_VALUE)
    return Payload(payload, valid)


def ids(existing: list[int]) -> st.SearchStrategy[int]:
    return st.sampled_from(existing)


def near_ids() -> st.SearchStrategy[Any]:
    return st.one_of(INT64_EDGES, st.integers(), st.floats(), st.text(max_size=20), st.booleans(), st.none())


def fields_of(event: str, cid: int, message_ids: list[int]) -> dict[str, Field]:
    conversation = Field(ids([cid]), near_ids())
    if event == "message:send":
        key = st.from_regex(r"[A-Za-z0-9._:\-]{1,128}", fullmatch=True)
        body = st.text(min_size=1, max_size=4000).filter(lambda b: b.strip() != "" and "\x00" not in b)
        return {
            "conversation_id": conversation,
            "client_message_id": Field(key, st.one_of(ODD_TEXT, st.text(max_size=200), HUGE_TEXT, near_ids())),
            "body": Field(body, st.one_of(ODD_TEXT, HUGE_TEXT, st.integers(), st.lists(st.text(), max_size=2))),
            "booking_id": Field(st.integers(1, 2**63 - 1), near_ids(), required=False),
        }
    if event == "conversation:read":
        return {"conversation_id": conversation,
                "up_to_message_id": Field(ids(message_ids), near_ids(), required=False)}
    if event == "typing":
        return {"conversation_id": conversation}
    cursor = st.one_of(st.just(0), ids(message_ids), st.integers(0, 2**63 - 1))
    return {"after_id": Field(cursor, st.one_of(near_ids(), ODD_TEXT, HUGE_TEXT)),
            "limit": Field(st.integers(1, 500), near_ids(), required=False)}


def payloads(event: str, cid: int, message_ids: list[int]) -> st.SearchStrategy[Payload]:
    anything = st.one_of(
        ANY_VALUE.map(Payload),
        st.just(Payload(MISSING)),
        st.tuples(ANY_VALUE, ANY_VALUE).map(Payload),  # several arguments: the handlers read the first
    )
    near = near_valid(fields_of(event, cid, message_ids))
    return st.one_of(near, near, anything)  # two in three near valid


UNKNOWN_EVENTS = st.one_of(
    st.text(max_size=40).filter(lambda name: name not in EVENTS),
    st.sampled_from(["connect", "disconnect", "message", "connect_error", "__disconnect_final", "*", "MESSAGE:SEND",
                     " sync", "sync ", "typing\x00", "message:send\n", "conversation:Read", "x" * 10_000]),
    st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)

# --- the service, one connection, and what a refusal must leave alone ----------------------------------------------


@dataclass
class Target:
    """One connected customer in a conversation of its own, driven from hypothesis' thread on the test's loop."""

    loop: asyncio.AbstractEventLoop
    sio: socketio.AsyncClient
    db: asyncpg.Connection
    cid: int
    message_ids: list[int]
    tally: Counter[str] = dataclasses.field(default_factory=Counter)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def emit(self, event: Any, payload: Payload) -> Any:
        if payload.args is MISSING:
            return await self.sio.call(event, timeout=10)
        return await self.sio.call(event, payload.args, timeout=10)

    async def state(self) -> tuple[Any, ...]:
        row = await self.db.fetchrow("SELECT * FROM conversations WHERE id = $1", self.cid)
        count = await self.db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", self.cid)
        return (count, *row.values())


@pytest.fixture(scope="module")
async def client(base_settings: Settings) -> AsyncIterator[Client]:
    """The app with the typing bucket off too, so that valid typing payloads are acked ok."""
    settings = dataclasses.replace(base_settings, typing_rate_per_second=0)
    async with TestClient(TestServer(create_app(settings))) as shared:
        yield shared


@pytest.fixture(scope="module")
async def target(client: Client, database_url: str) -> AsyncIterator[Target]:
    pair = new_pair()
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    cid = (await resp.json())["id"]
    message_ids = []
    for headers in (pair.c, pair.a, pair.c):
        resp = await client.post(f"/messaging/conversations/{cid}/messages", headers=headers,
                                 json={"client_message_id": uuid.uuid4().hex, "body": "seed"})
        message_ids.append((await resp.json())["id"])
    sio = socketio.AsyncClient(reconnection=False)
    token = pair.c["Authorization"].removeprefix("Bearer ")
    await sio.connect(str(client.server.make_url("/")), auth={"token": token}, transports=["websocket"],
                      wait_timeout=5)
    target = Target(asyncio.get_running_loop(), sio, await asyncpg.connect(database_url), cid, message_ids)
    try:
        yield target
    finally:
        await sio.disconnect()
        await target.db.close()
    seed = f"FUZZ_SEED={SEED}" if SEED is not None else "derandomized"
    print(f"\nsocket.io fuzz ({seed}): {sum(target.tally.values())} emits;", dict(sorted(target.tally.items())))


def check_shape(event: Any, ack: Any) -> None:
    """The documented ack: {"ok": true, ...} with the event's fields, or {"ok": false, "error": {code, message}}."""
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), ack
    if not ack["ok"]:
        assert set(ack) == {"ok", "error"} and isinstance(ack["error"], dict), ack
        error = ack["error"]
        assert {"code", "message"} <= set(error) <= {"code", "message", "retry_after"}, ack
        assert error["code"] in EXPECTED_CODES, ack
        assert isinstance(error["message"], str) and error["message"], ack
        return
    assert isinstance(event, str) and set(ack) == OK_FIELDS.get(event), ack


def check_one(target: Target, event: Any, payload: Payload) -> Any:
    before = target.run(target.state())
    ack = target.run(target.emit(event, payload))
    check_shape(event, ack)
    target.tally[f"{event if event in EVENTS else 'unknown'} {ack['error']['code'] if not ack['ok'] else 'ok'}"] += 1
    if payload.valid:
        assert ack["ok"], (payload.args, ack)
    after = target.run(target.state())
    if not ack["ok"] or event in ("typing", "sync"):
        assert after == before, (payload.args, ack)  # refused, or read-only: nothing stored or changed
    elif event == "message:send":
        assert after[0] == before[0] + (0 if ack["duplicate"] else 1), ack
    # the connection survives, still as its user
    assert target.run(target.emit("typing", Payload({"conversation_id": target.cid}))) == {"ok": True}
    return ack


def fuzz(strategy: st.SearchStrategy[Any], check: Callable[[Any], Any]) -> None:
    """Run hypothesis over `strategy` (in a worker thread: the service runs on the test's loop meanwhile)."""

    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
                         print_blob=True, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(strategy)
    def run(drawn: Any) -> None:
        check(drawn)

    test = hypothesis.seed(int(SEED))(run) if SEED is not None else run
    test()


@pytest.mark.parametrize("event", EVENTS)
async def test_every_payload_gets_a_documented_ack_and_nothing_refused_is_stored(target: Target, event: str) -> None:
    strategy = payloads(event, target.cid, target.message_ids)
    await asyncio.to_thread(fuzz, strategy, lambda payload: check_one(target, event, payload))
    assert target.sio.connected


async def test_unknown_event_names_get_unknown_event_and_leave_the_connection_as_it_was(target: Target) -> None:
    def check(event: Any) -> None:
        ack = check_one(target, event, Payload({"conversation_id": target.cid}))
        assert ack["error"]["code"] == "unknown_event", (event, ack)

    await asyncio.to_thread(fuzz, UNKNOWN_EVENTS, check)
    assert target.sio.connected


async def test_valid_payloads_of_every_event_are_acked_ok(target: Target) -> None:
    """The fixed cases of the documentation, on the same connection after all the fuzz."""
    key = uuid.uuid4().hex
    for event, payload in [
        ("message:send", {"conversation_id": target.cid, "client_message_id": key, "body": "after the fuzz"}),
        ("conversation:read", {"conversation_id": target.cid, "up_to_message_id": target.message_ids[-1]}),
        ("typing", {"conversation_id": target.cid}),
        ("sync", {"after_id": 0, "limit": 500}),
    ]:
        ack = await target.emit(event, Payload(payload))
        check_shape(event, ack)
        assert ack["ok"], (event, ack)
