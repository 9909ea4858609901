"""`python -m sut seed`: bulk background data with COPY (users, bookings, conversations, messages).

Data is generated in id order with ids reserved from each sequence, so it never collides with
live traffic; message timestamps increase with ids, as the send path guarantees.
"""

from __future__ import annotations

import array
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from tqdm import tqdm

CHUNK = 50_000
_WORDS = (
    "hi hello thanks booking appointment tomorrow today nails lashes brows makeup hair colour cut "
    "balayage gel acrylic pedicure manicure studio address parking late early running minutes confirm "
    "reschedule cancel deposit price photo inspiration look natural glam bridal trial perfect great sure "
    "okay see you soon"
).split()


@dataclass(frozen=True)
class SeedPlan:
    customers: int
    artists: int
    conversations: int
    messages: int
    days: int = 90
    random_seed: int = 1

    def check(self) -> str | None:
        if min(self.customers, self.artists) < 1 or min(self.conversations, self.messages, self.days) < 0:
            return "--customers and --artists must be >= 1; other counts >= 0"
        if self.conversations > self.customers * self.artists:
            return "--conversations exceeds customers x artists (one conversation per pair)"
        if self.messages and not self.conversations:
            return "--messages needs at least one conversation"
        return None


@dataclass
class _Plan:
    """What was generated before writing: pairs, per-message conversation/sender/time."""

    pairs: list[tuple[int, int]]
    msg_conv: array.array[int]
    msg_from_customer: bytearray
    msg_offset: array.array[float]  # seconds after the start of the window


async def _reserve(conn: asyncpg.Connection, sequence: str, count: int) -> array.array[int]:
    """`count` ids taken from a sequence, ascending: taken one by one, so live traffic taking ids at
    the same time only makes them non-contiguous, never shared."""
    ids = await conn.fetchval(
        "SELECT coalesce(array_agg(n ORDER BY n), '{}') FROM (SELECT nextval($1::regclass) AS n "
        "FROM generate_series(1, $2)) s", sequence, count)
    return array.array("q", ids)


def _generate(plan: SeedPlan, customer_base: int, artist_base: int) -> _Plan:
    rng = random.Random(plan.random_seed)
    flat = rng.sample(range(plan.customers * plan.artists), plan.conversations)
    pairs = [(customer_base + i // plan.artists, artist_base + i % plan.artists) for i in flat]
    # a few busy conversations and a long tail, as inboxes are
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(plan.conversations)]
    rng.shuffle(weights)
    conv = rng.choices(range(plan.conversations), weights=weights, k=plan.messages)
    window = plan.days * 86400.0
    offsets = sorted(rng.random() * window for _ in range(plan.messages))
    senders = bytearray(rng.getrandbits(1) for _ in range(plan.messages))
    return _Plan(pairs, array.array("I", conv), senders, array.array("d", offsets))


def _bodies(rng: random.Random, n: int = 4000) -> list[str]:
    return [" ".join(rng.choices(_WORDS, k=rng.randint(2, 14))).capitalize() for _ in range(n)]


async def seed(database_url: str, plan: SeedPlan, *, progress: bool = True) -> int:
    problem = plan.check()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        made = await _seed(conn, plan, progress)
    finally:
        await conn.close()
    elapsed = time.perf_counter() - started
    print(f"seeded in {elapsed:.1f} s: {made}")
    return 0


async def _seed(conn: asyncpg.Connection, plan: SeedPlan, progress: bool) -> str:
    base = int(await conn.fetchval(
        "SELECT GREATEST((SELECT max(id) FROM users), (SELECT max(customer_id) FROM conversations), "
        "(SELECT max(artist_id) FROM conversations), 0)")) + 1
    customer_base, artist_base = base, base + plan.customers
    gen = _generate(plan, customer_base, artist_base)
    total = plan.customers + plan.artists + 2 * plan.conversations + plan.messages
    bar = tqdm(total=total, unit="rows", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    now = datetime.now(UTC)
    start = now - timedelta(days=plan.days)
    with bar:
        await _copy_users(conn, plan, customer_base, artist_base, now, bar)
        conv_ids = await _reserve(conn, "conversations_id_seq", plan.conversations)
        msg_ids = await _reserve(conn, "messages_id_seq", plan.messages)
        booking_ids = await _copy_bookings(conn, gen, start, bar)
        await _copy_conversations(conn, plan, gen, conv_ids, booking_ids, msg_ids, start, bar)
        await _copy_messages(conn, plan, gen, conv_ids, msg_ids, start, bar)
    await conn.execute("ANALYZE users; ANALYZE bookings; ANALYZE conversations; ANALYZE messages")
    return (f"{plan.customers} customers (ids {customer_base}..{artist_base - 1}), {plan.artists} artists "
            f"(ids {artist_base}..{artist_base + plan.artists - 1}), {plan.conversations} conversations "
            f"(ids {_span(conv_ids)}), {plan.conversations} bookings, "
            f"{plan.messages} messages (ids {_span(msg_ids)})")


def _span(ids: array.array[int]) -> str:
    return f"{ids[0]}..{ids[-1]}" if ids else "none"


async def _copy_users(conn: asyncpg.Connection, plan: SeedPlan, customer_base: int, artist_base: int,
                      now: datetime, bar: tqdm[Any]) -> None:
    rows = [(customer_base + i, "customer", f"Customer {i + 1}", now, now) for i in range(plan.customers)]
    rows += [(artist_base + i, "artist", f"Artist {i + 1}", now, now) for i in range(plan.artists)]
    await conn.copy_records_to_table("users", records=rows,
                                     columns=["id", "role", "display_name", "created_at", "updated_at"])
    bar.update(len(rows))


async def _copy_bookings(conn: asyncpg.Connection, gen: _Plan, start: datetime,
                         bar: tqdm[Any]) -> array.array[int]:
    ids = await _reserve(conn, "bookings_id_seq", len(gen.pairs))
    rng = random.Random(7)
    rows = []
    for i, (customer, artist) in enumerate(gen.pairs):
        created = start - timedelta(hours=rng.randint(1, 240))
        rows.append((ids[i], customer, artist, rng.choice(("confirmed", "completed", "pending")),
                     created + timedelta(days=rng.randint(1, 60)), created, created))
    await conn.copy_records_to_table(
        "bookings", records=rows,
        columns=["id", "customer_id", "artist_id", "status", "starts_at", "created_at", "updated_at"])
    bar.update(len(rows))
    return ids


def _conversation_rows(plan: SeedPlan, gen: _Plan, conv_ids: array.array[int], booking_ids: array.array[int],
                       msg_ids: array.array[int],
                       start: datetime) -> Iterator[tuple[object, ...]]:
    """Aggregates from the generated messages: last activity, read cursors, unread tails."""
    recent: list[list[int]] = [[] for _ in range(plan.conversations)]  # each one's newest 3 messages
    for m, c in enumerate(gen.msg_conv):
        newest = recent[c]
        newest.append(m)
        if len(newest) > 3:
            del newest[0]
    last = [r[-1] if r else -1 for r in recent]
    rng = random.Random(11)
    tail = {c: recent[c][len(recent[c]) - min(len(recent[c]), rng.choice((0, 0, 0, 1, 2, 3))):]
            for c in range(plan.conversations)}
    for c, (customer, artist) in enumerate(gen.pairs):
        created = start - timedelta(minutes=rng.randint(1, 600))
        last_at = start + timedelta(seconds=gen.msg_offset[last[c]]) if last[c] >= 0 else created
        unread_customer = sum(1 for m in tail[c] if not gen.msg_from_customer[m])
        unread_artist = len(tail[c]) - unread_customer
        read_upto = msg_ids[min(tail[c])] - 1 if tail[c] else (msg_ids[last[c]] if last[c] >= 0 else 0)
        yield (conv_ids[c], customer, artist, booking_ids[c], "active", last_at, created, created,
               unread_customer, unread_artist, read_upto, read_upto)


async def _copy_conversations(conn: asyncpg.Connection, plan: SeedPlan, gen: _Plan, conv_ids: array.array[int],
                              booking_ids: array.array[int], msg_ids: array.array[int], start: datetime,
                              bar: tqdm[Any]) -> None:
    rows = list(_conversation_rows(plan, gen, conv_ids, booking_ids, msg_ids, start))
    await conn.copy_records_to_table("conversations", records=rows, columns=[
        "id", "customer_id", "artist_id", "booking_id", "status", "last_message_at", "created_at", "updated_at",
        "unread_count_customer", "unread_count_artist", "last_read_id_customer", "last_read_id_artist"])
    bar.update(2 * len(rows))  # counted with bookings' share in the total


async def _copy_messages(conn: asyncpg.Connection, plan: SeedPlan, gen: _Plan, conv_ids: array.array[int],
                         msg_ids: array.array[int], start: datetime, bar: tqdm[Any]) -> None:
    rng = random.Random(13)
    bodies = _bodies(rng)
    # tx_id NULL: history, long committed (as rows from before migration 0011). The seeder's one transaction id on
    # every row would tell the planner that a tx_id matches all of them, and sync's late-message lookup by tx_id
    # would walk messages_pkey instead of idx_messages_tx
    columns = ["id", "conversation_id", "sender_id", "kind", "body", "client_message_id", "created_at", "tx_id"]
    for lo in range(0, plan.messages, CHUNK):
        rows = []
        for m in range(lo, min(lo + CHUNK, plan.messages)):
            c = gen.msg_conv[m]
            customer, artist = gen.pairs[c]
            sender = customer if gen.msg_from_customer[m] else artist
            rows.append((msg_ids[m], conv_ids[c], sender, "text", bodies[m % len(bodies)],
                         f"seed-{msg_ids[m]}", start + timedelta(seconds=gen.msg_offset[m]), None))
        await conn.copy_records_to_table("messages", records=rows, columns=columns)
        bar.update(len(rows))
