"""Group commit for sends: concurrent sends on one instance share one statement, one transaction, one round trip.

No timer: a send queues, and a flush starts at once (in the next loop iteration, so sends of the same tick join
it) while fewer than `max_inflight` batches run; what queues while they run goes in the next one. At low load a
send goes alone, through the single-send statement and with no added delay; under load batches grow by
themselves. Every caller is answered after its batch's commit, with what `sut.db.messages.send` would have
returned it, or the exception it would have raised.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import asyncpg

from sut import metrics
from sut.db import messages as msg_db
from sut.db.messages import NewMessage, Stored
from sut.db.pool import acquire
from sut.domain import Role, Unavailable

_BY_POOL: dict[int, GroupCommit] = {}


def for_pool(pool: asyncpg.Pool) -> GroupCommit | None:
    """The batcher sending on this pool while group commit is on: the handlers give the send path the pool only."""
    found = _BY_POOL.get(id(pool))
    return found if found is not None and found.pool is pool else None


@dataclass(eq=False, slots=True)
class _Pending:
    request: NewMessage
    key: tuple[int, str]
    future: asyncio.Future[Stored | None]
    timeout: float
    deadline: float
    expiry: asyncio.TimerHandle | None = None


class GroupCommit:
    """The batcher of one pool. It registers itself for `for_pool`; `close` drains it and unregisters it."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int, max_inflight: int) -> None:
        self.pool = pool
        self._max_batch, self._max_inflight = max_batch, max_inflight
        self._queue: deque[_Pending] = deque()
        self._busy: set[tuple[int, str]] = set()  # (sender_id, client_message_id) of the running batches
        self._running = 0  # flushes started, including the one scheduled
        self._scheduled = False  # a flush is started but has not taken its batch yet
        self._tasks: set[asyncio.Task[None]] = set()
        # the pool's loop, looked up once: on Python 3.11 each get_running_loop() is a getpid() system call, and
        # that was 2 % of the service's samples at the send benchmark's maximum
        self._loop = asyncio.get_running_loop()
        _BY_POOL[id(pool)] = self

    async def send(
        self, *, conversation_id: int, sender: Role, sender_id: int, kind: str, body: str | None,
        image_key: str | None, booking_id: int | None, client_message_id: str, timeout: float,
    ) -> Stored | None:
        """`sut.db.messages.send`, batched. Waiting more than `timeout` for a connection (queued behind running
        batches, then acquiring) is Unavailable, as in `sut.db.pool.acquire`; once the statement runs, the
        answer waits for it. A caller cancelled before that leaves the batch; after, its answer is dropped."""
        loop = self._loop
        request = NewMessage(conversation_id, sender, sender_id, kind, body, image_key, booking_id, client_message_id)
        pending = _Pending(request, (sender_id, client_message_id), loop.create_future(), timeout,
                           loop.time() + timeout)
        pending.expiry = loop.call_at(pending.deadline, _expire, pending)
        self._queue.append(pending)
        self._kick()
        try:
            return await pending.future
        finally:
            pending.expiry.cancel()

    async def close(self) -> None:
        """Stop taking sends, then let the queued and running batches finish: their callers await the commit."""
        if _BY_POOL.get(id(self.pool)) is self:
            del _BY_POOL[id(self.pool)]
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _kick(self) -> None:
        if self._queue and not self._scheduled and self._running < self._max_inflight:
            self._scheduled = True
            self._running += 1
            task = self._loop.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        self._scheduled = False
        batch = self._take()
        if not batch:  # all held back for a running batch, whose end kicks again
            self._running -= 1
            return
        self._kick()
        try:
            await self._commit(batch)
        finally:
            self._busy.difference_update(p.key for p in batch)
            self._running -= 1
            self._kick()

    def _take(self) -> list[_Pending]:
        """Up to max_batch queued sends, oldest first. A send whose (sender_id, client_message_id) is already in
        this batch or a running one waits for a later batch, so the two go one after the other as they would
        without batching (the second is then a replay or a conflict), and no two transactions of this instance
        wait on each other's keys."""
        batch: list[_Pending] = []
        held: list[_Pending] = []
        keys: set[tuple[int, str]] = set()
        while self._queue and len(batch) < self._max_batch:
            pending = self._queue.popleft()
            if pending.future.done():
                continue
            if pending.key in keys or pending.key in self._busy:
                held.append(pending)
            else:
                keys.add(pending.key)
                batch.append(pending)
        self._queue.extendleft(reversed(held))
        self._busy |= keys
        return batch

    async def _commit(self, batch: list[_Pending]) -> None:
        """Answer every caller of the batch: a failure before the statement (no connection) reaches them all."""
        try:
            retry = await self._attempt(batch)
            if retry:
                metrics.SEND_BATCH_FALLBACKS.inc()
                for pending in retry:   # one by one: a failed batch must not take a pool connection per send
                    await self._alone(pending)
        except Exception as exc:
            _fail(batch, exc)
        except BaseException:
            _fail(batch, Unavailable("the send was interrupted; retry with the same client_message_id"))
            raise

    async def _attempt(self, batch: list[_Pending]) -> list[_Pending]:
        """Run the batch on one connection; the sends to retry one by one when the batch statement failed (one
        send's data, a timeout, the connection): each then gets the outcome it gets alone."""
        wait = max(p.deadline for p in batch) - self._loop.time()
        async with acquire(self.pool, max(wait, 0.001)) as conn:
            live = _seal(batch)
            if not live:
                return []
            metrics.SEND_BATCH_SIZE.observe(len(live))
            if len(live) == 1:
                _settle(live[0], await _send_one(conn, live[0].request))
                return []
            try:
                stored = await msg_db.send_batch(conn, [p.request for p in live])
            except Exception:
                return live
            for pending, outcome in zip(live, stored, strict=True):
                _settle(pending, outcome)
        return []

    async def _alone(self, pending: _Pending) -> None:
        """The send on a connection of its own, as without group commit (its own wait for a connection too)."""
        if pending.future.done():
            return
        try:
            async with acquire(self.pool, pending.timeout) as conn:
                _settle(pending, await _send_one(conn, pending.request))
        except Exception as exc:
            _fail([pending], exc)


async def _send_one(conn: asyncpg.Connection, r: NewMessage) -> Stored | None:
    return await msg_db.send(
        conn, conversation_id=r.conversation_id, sender=r.sender, sender_id=r.sender_id, kind=r.kind, body=r.body,
        image_key=r.image_key, booking_id=r.booking_id, client_message_id=r.client_message_id,
    )


def _expire(pending: _Pending) -> None:
    if not pending.future.done():
        pending.future.set_exception(Unavailable("database pool exhausted", retry_after=1))


def _seal(batch: list[_Pending]) -> list[_Pending]:
    """The sends still awaited, now bound to the statement about to run: their deadline no longer applies."""
    live = [p for p in batch if not p.future.done()]
    for pending in live:
        if pending.expiry is not None:
            pending.expiry.cancel()
    return live


def _settle(pending: _Pending, outcome: Stored | None) -> None:
    if not pending.future.done():
        pending.future.set_result(outcome)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)
