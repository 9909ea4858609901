"""Group commit of sends, against the real database: batches really form, every caller gets its own row (or its
own error) after the commit, ids follow arrival order, counters match one-by-one sends, duplicates and outsiders
are answered as without batching, a failing batch falls back send by send, the pool's limits still apply, and
the sync cursor still never skips a message."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from sut import groupcommit, keys
from sut.app import create_app
from sut.db.messages import Stored
from sut.db.pool import create_pool
from sut.domain import Conflict, Principal, Role, Unavailable
from sut.groupcommit import GroupCommit
from sut.services import messages as msg_svc
from sut.settings import Settings
from tests.conftest import AiohttpClient
from tests.integration.test_messages import send, start
from tests.support import ChatClient, Pair, new_id, new_pair

Client = TestClient[web.Request, web.Application]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Batches:
    """send_batch_size and its fallback counter, as deltas from when it was made."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        return sample("send_batch_size_count"), sample("send_batch_size_sum"), sample("send_batch_fallbacks_total")

    def delta(self) -> tuple[float, float, float]:
        now = self._now()
        return now[0] - self.start[0], now[1] - self.start[1], now[2] - self.start[2]


def principal(pair: Pair, role: Role) -> Principal:
    return Principal(pair.customer if role is Role.CUSTOMER else pair.artist, role)


def request(conversation_id: int, body: str = "hi", key: str | None = None) -> msg_svc.SendRequest:
    return msg_svc.SendRequest(conversation_id=conversation_id, client_message_id=key or uuid.uuid4().hex,
                               body=body, image_key=None, booking_id=None)


async def service_send(client: Client, who: Principal, req: msg_svc.SendRequest) -> msg_svc.SendResult:
    """The send path both transports call, on the app's pool (so on its batcher)."""
    return await msg_svc.send(client.app[keys.DB_POOL], client.app[keys.STORAGE], who, req, timeout=5)


async def until(db: asyncpg.Connection, sql: str, *args: object) -> None:
    """Poll until `sql` is true (a backend waiting where the test holds it), for at most 10 s."""
    for _ in range(500):
        if await db.fetchval(sql, *args):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never true: {sql}")


async def conversation_row(db: asyncpg.Connection, cid: int) -> asyncpg.Record:
    row = await db.fetchrow("SELECT unread_count_customer, unread_count_artist, last_message_at, status, archived_at "
                            "FROM conversations WHERE id = $1", cid)
    assert row is not None
    return row


async def test_concurrent_rest_sends_are_batched_stored_once_and_acked_with_their_own_rows(
        client: Client, db: asyncpg.Connection) -> None:
    pairs = [new_pair() for _ in range(4)]
    cids = [await start(client, p) for p in pairs]
    wanted = [(cids[i % 4], pairs[i % 4].a if i % 3 else pairs[i % 4].c, f"body-{i}", f"gc-{uuid.uuid4().hex}")
              for i in range(80)]
    batches = Batches()
    results = await asyncio.gather(*(send(client, cid, who, body, key) for cid, who, body, key in wanted))
    flushes, sends, fallbacks = batches.delta()
    assert [status for status, _ in results] == [201] * 80
    for (cid, _, body, key), (_, message) in zip(wanted, results, strict=True):
        assert (message["conversation_id"], message["body"], message["client_message_id"]) == (cid, body, key)
    rows = await db.fetch("SELECT id, client_message_id FROM messages WHERE client_message_id = ANY($1)",
                          [key for *_, key in wanted])
    assert sorted(r["client_message_id"] for r in rows) == sorted(key for *_, key in wanted)
    assert {r["id"] for r in rows} == {m["id"] for _, m in results}
    assert sends == 80 and fallbacks == 0
    assert flushes < 80, "every send went alone: no batch formed"


async def test_a_batch_keeps_arrival_order_and_the_counters_of_one_by_one_sends(
        client: Client, db: asyncpg.Connection) -> None:
    pairs, twins = [new_pair() for _ in range(3)], [new_pair() for _ in range(3)]
    batched, alone = [await start(client, p) for p in pairs], [await start(client, p) for p in twins]
    for cid, pair in ((batched[0], pairs[0]), (alone[0], twins[0])):  # archived: a new message brings it back
        assert (await client.post(f"/messaging/conversations/{cid}/archive", headers=pair.c)).status == 200
    plan = [(i % 3, Role.CUSTOMER if i % 4 else Role.ARTIST) for i in range(45)]
    batches = Batches()
    results = await asyncio.gather(*(service_send(client, principal(pairs[n], role), request(batched[n], f"m{i}"))
                                     for i, (n, role) in enumerate(plan)))
    assert batches.delta() == (1, 45, 0), "one gather in one tick is one batch"
    for n in range(3):
        mine = [r.message for r, (k, _) in zip(results, plan, strict=True) if k == n]
        assert [m.id for m in mine] == sorted(m.id for m in mine), "ids do not follow arrival order"
        assert [m.created_at for m in mine] == sorted(m.created_at for m in mine)
    for i, (n, role) in enumerate(plan):  # the same sends, one after the other
        await service_send(client, principal(twins[n], role), request(alone[n], f"m{i}"))
    for cid, twin in zip(batched, alone, strict=True):
        got, expected = await conversation_row(db, cid), await conversation_row(db, twin)
        assert (got["unread_count_customer"], got["unread_count_artist"], got["status"], got["archived_at"]) == \
            (expected["unread_count_customer"], expected["unread_count_artist"], expected["status"], None)
        newest = await db.fetchval("SELECT max(created_at) FROM messages WHERE conversation_id = $1", cid)
        assert got["last_message_at"] == newest
    assert (await conversation_row(db, batched[0]))["status"] == "active"


async def test_the_same_key_twice_in_one_gather_is_stored_once_then_replayed_or_refused(
        client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    other = await start(client, Pair(pair.customer, new_id()))
    customer = principal(pair, Role.CUSTOMER)
    same, moved = f"dup-{uuid.uuid4().hex}", f"dup-{uuid.uuid4().hex}"
    reqs = [request(cid, "first", same), request(cid, "again", same), request(cid, "x", moved),
            request(other, "elsewhere", moved), request(cid, "plain")]
    results = await asyncio.gather(*(service_send(client, customer, r) for r in reqs), return_exceptions=True)
    first, again, kept, refused, plain = results
    assert isinstance(first, msg_svc.SendResult) and isinstance(again, msg_svc.SendResult)
    assert first.created and not again.created and again.message == first.message
    assert first.message.body == "first"
    assert isinstance(kept, msg_svc.SendResult) and kept.created
    assert isinstance(refused, Conflict)
    assert isinstance(plain, msg_svc.SendResult) and plain.created
    counts = await db.fetch("SELECT client_message_id, count(*) AS n FROM messages WHERE sender_id = $1 "
                            "GROUP BY client_message_id", pair.customer)
    assert {r["client_message_id"]: r["n"] for r in counts} == {same: 1, moved: 1, plain.message.client_message_id: 1}
    assert (await conversation_row(db, cid))["unread_count_artist"] == 3


async def test_the_same_key_over_rest_in_one_burst_is_one_201_and_replays(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    results = await asyncio.gather(*(send(client, cid, pair.c, "once", key="gc-burst") for _ in range(10)),
                                   *(send(client, cid, pair.a, f"other {i}") for i in range(10)))
    same = results[:10]
    assert sorted(status for status, _ in same) == [200] * 9 + [201]
    assert len({m["id"] for _, m in same}) == 1
    assert [status for status, _ in results[10:]] == [201] * 10


async def test_outsiders_in_a_batch_get_404_and_the_others_are_stored(
        client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    stranger = Principal(new_id(), Role.CUSTOMER)
    wrong_role = Principal(pair.customer, Role.ARTIST)  # the customer's id with an artist token
    sends = [(principal(pair, Role.CUSTOMER), request(cid, "ok 1")), (stranger, request(cid, "intruder")),
             (principal(pair, Role.ARTIST), request(cid, "ok 2")), (wrong_role, request(cid, "wrong role")),
             (principal(pair, Role.CUSTOMER), request(2**62, "nowhere")),
             (principal(pair, Role.ARTIST), request(cid, "ok 3"))]
    batches = Batches()
    results = await asyncio.gather(*(service_send(client, who, req) for who, req in sends), return_exceptions=True)
    assert batches.delta() == (1, 6, 0)
    assert [type(r).__name__ for r in results] == ["SendResult", "NotFound", "SendResult", "NotFound", "NotFound",
                                                   "SendResult"]
    bodies = await db.fetch("SELECT body FROM messages WHERE conversation_id = $1 ORDER BY id", cid)
    assert [r["body"] for r in bodies] == ["ok 1", "ok 2", "ok 3"]
    row = await conversation_row(db, cid)
    assert (row["unread_count_artist"], row["unread_count_customer"]) == (1, 2)


@pytest.fixture
async def poison(db: asyncpg.Connection) -> AsyncIterator[str]:
    """A body the database refuses (a check constraint on messages, for this test only): one send's data that
    makes a batch statement fail, which the API's validation would otherwise never let through."""
    body = f"poison-{uuid.uuid4().hex}"
    name = f"gc_test_{uuid.uuid4().hex[:8]}"
    await db.execute(f"ALTER TABLE messages ADD CONSTRAINT {name} CHECK (body IS DISTINCT FROM '{body}') NOT VALID")
    yield body
    await db.execute(f"ALTER TABLE messages DROP CONSTRAINT {name}")


async def test_a_failing_batch_falls_back_to_single_sends_and_only_the_culprit_fails(
        client: Client, db: asyncpg.Connection, poison: str) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    customer = principal(pair, Role.CUSTOMER)
    with pytest.raises(asyncpg.CheckViolationError):  # alone, as today: a batch of one is the single send
        await service_send(client, customer, request(cid, poison))
    status, _ = await send(client, cid, pair.c, poison)
    assert status == 500
    batches = Batches()
    reqs = [request(cid, f"good {i}") for i in range(4)] + [request(cid, poison)] + [request(cid, "good 4")]
    results = await asyncio.gather(*(service_send(client, customer, r) for r in reqs), return_exceptions=True)
    assert batches.delta() == (1, 6, 1)
    assert isinstance(results[4], asyncpg.CheckViolationError)
    stored = [r for r in results if isinstance(r, msg_svc.SendResult)]
    assert len(stored) == 5 and all(r.created for r in stored)
    assert [r.message.body for r in stored] == [f"good {i}" for i in range(5)]
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 5
    assert (await conversation_row(db, cid))["unread_count_artist"] == 5


@pytest.fixture
async def own_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection, for a batcher of the test's own."""
    pool = await create_pool(dataclasses.replace(settings, db_pool_min=1, db_pool_max=1))
    yield pool
    await pool.close()


def send_args(cid: int, pair: Pair, body: str) -> dict[str, Any]:
    return {"conversation_id": cid, "sender": Role.CUSTOMER, "sender_id": pair.customer, "kind": "text",
            "body": body, "image_key": None, "booking_id": None, "client_message_id": uuid.uuid4().hex}


async def test_an_exhausted_pool_reaches_every_caller_as_unavailable(
        client: Client, own_pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    batcher = GroupCommit(own_pool, max_batch=64, max_inflight=1)
    try:
        async with own_pool.acquire():  # the only connection is taken
            results = await asyncio.gather(*(batcher.send(**send_args(cid, pair, f"m{i}"), timeout=0.2)
                                             for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, Unavailable) for r in results), results
        assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 0
        stored = await batcher.send(**send_args(cid, pair, "later"), timeout=1)
        assert stored is not None and stored.message.body == "later"
    finally:
        await batcher.close()
    assert groupcommit.for_pool(own_pool) is None


async def test_a_cancelled_caller_leaves_the_batch_and_the_others_get_their_rows(
        client: Client, own_pool: asyncpg.Pool, db: asyncpg.Connection, database_url: str) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    batcher = GroupCommit(own_pool, max_batch=64, max_inflight=1)
    blocker = await asyncpg.connect(database_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", cid)  # holds the batch
        running = [asyncio.create_task(batcher.send(**send_args(cid, pair, f"in flight {i}"), timeout=5))
                   for i in range(3)]
        await until(db, "SELECT count(*) > 0 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    blocker.get_server_pid())
        queued = [asyncio.create_task(batcher.send(**send_args(cid, pair, f"queued {i}"), timeout=5))
                  for i in range(3)]
        await asyncio.sleep(0.05)
        running[1].cancel()  # its statement is running: it still commits, its answer is dropped
        queued[1].cancel()  # still queued: it leaves before its batch
        await tx.commit()
        done: list[Stored | None] = [await t for t in (running[0], running[2], queued[0], queued[2])]
    finally:
        await blocker.close()
        await batcher.close()
    assert [s.message.body if s else None for s in done] == ["in flight 0", "in flight 2", "queued 0", "queued 2"]
    bodies = await db.fetch("SELECT body FROM messages WHERE conversation_id = $1 ORDER BY id", cid)
    assert [r["body"] for r in bodies] == ["in flight 0", "in flight 1", "in flight 2", "queued 0", "queued 2"]


@pytest.fixture
async def without_group_commit(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    return await aiohttp_client(create_app(dataclasses.replace(settings, group_commit=False)))


async def test_group_commit_off_sends_each_message_alone(without_group_commit: Client) -> None:
    client = without_group_commit
    assert client.app[keys.GROUP_COMMIT] is None and groupcommit.for_pool(client.app[keys.DB_POOL]) is None
    pair = new_pair()
    cid = await start(client, pair)
    batches = Batches()
    singles = sample("db_query_duration_seconds_count", query="message_insert")
    results = await asyncio.gather(*(send(client, cid, pair.c, f"m{i}") for i in range(20)))
    assert [status for status, _ in results] == [201] * 20
    assert batches.delta() == (0, 0, 0)
    assert sample("db_query_duration_seconds_count", query="message_insert") - singles == 20
    replay = await send(client, cid, pair.c, "again", key=results[0][1]["client_message_id"])
    assert replay == (200, results[0][1])


async def test_group_commit_is_on_by_default_and_closes_with_the_app(
        aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    pool = client.app[keys.DB_POOL]
    batcher = client.app[keys.GROUP_COMMIT]
    assert batcher is not None and groupcommit.for_pool(pool) is batcher
    await client.close()
    assert groupcommit.for_pool(pool) is None


Connect = Callable[[int, str], Awaitable[ChatClient]]


@pytest.fixture
async def sockets(client: Client) -> AsyncIterator[Connect]:
    opened: list[ChatClient] = []

    async def open_client(user_id: int, role: str) -> ChatClient:
        chat = ChatClient(str(client.server.make_url("/")), user_id, role)
        await chat.connect()
        opened.append(chat)
        return chat

    yield open_client
    for chat in opened:
        await chat.close()


async def test_sync_misses_nothing_while_batches_commit(
        client: Client, sockets: Connect, db: asyncpg.Connection) -> None:
    customer = new_id()
    pairs = [Pair(customer, new_id()) for _ in range(3)]
    cids = [await start(client, p) for p in pairs]
    chat = await sockets(customer, "customer")
    sending = asyncio.gather(*(send(client, cids[i % 3], pairs[i % 3].a if i % 2 else pairs[i % 3].c, f"m{i}")
                               for i in range(90)))
    while not sending.done():
        await chat.catch_up(limit=7)
    results = await sending
    await chat.catch_up()
    assert set(chat.synced) == {m["id"] for _, m in results}
    batched = await db.fetchval("SELECT count(*) FROM (SELECT tx_id FROM messages WHERE conversation_id = ANY($1) "
                                "GROUP BY tx_id HAVING count(*) > 1) b", cids)
    assert batched > 0, "no batch formed"


@pytest.fixture
async def slow_body(db: asyncpg.Connection) -> AsyncIterator[str]:
    """A body whose insert sleeps a second after it took its id (a trigger, for this test only)."""
    body = f"slow-{uuid.uuid4().hex}"
    name = f"gc_test_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$")
    await db.execute(f"CREATE TRIGGER {name} AFTER INSERT ON messages FOR EACH ROW "
                     f"WHEN (NEW.body = '{body}') EXECUTE FUNCTION {name}()")
    yield body
    await db.execute(f"DROP TRIGGER {name} ON messages")
    await db.execute(f"DROP FUNCTION {name}()")


async def test_sync_never_skips_a_batch_that_commits_after_a_higher_id(
        client: Client, sockets: Connect, slow_body: str, db: asyncpg.Connection) -> None:
    """A batch takes its ids, then commits after a single send with a higher id: a cursor taken in between
    still yields the batch once it commits."""
    customer = new_id()
    slow, fast = Pair(customer, new_id()), Pair(customer, new_id())
    slow_cid, fast_cid = await start(client, slow), await start(client, fast)
    chat = await sockets(customer, "customer")
    await chat.catch_up()
    artist = principal(slow, Role.ARTIST)
    batch = asyncio.gather(service_send(client, artist, request(slow_cid, "before")),
                           service_send(client, artist, request(slow_cid, slow_body)))
    await until(db, "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND datname = current_database()")  # the batch holds its ids, sleeping in the trigger
    quick = await service_send(client, principal(fast, Role.ARTIST), request(fast_cid, "committed first"))
    await chat.catch_up()
    assert quick.message.id in chat.synced and not batch.done()
    held = [r.message.id for r in await batch]
    assert all(i < quick.message.id for i in held)
    assert not set(held) & set(chat.synced)
    await chat.catch_up()
    assert set(held) <= set(chat.synced)
