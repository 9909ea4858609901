"""socket.io fan-out across instances: python-socketio's AsyncRedisManager, with its Redis
connections owned and closed by the app.

The stock manager makes a new Redis client each time it (re)connects, both when it first publishes
and when its listener subscribes, dropping the previous client with its open connections, and its
publish has no time bound, and its listener waits up to 60 s between resubscribe attempts. Here the
manager keeps one client (its pool reconnects by itself), renews only the pub/sub object after an
error (closing the old one), bounds each publish by the Redis timeout, retries the subscription at
most 5 s apart, and `close()` releases everything.

While the fan-out is down, an emit still reaches the sockets on the sending instance (python-socketio
hands every emit to this instance first), but not those on the others. So once the listener is
subscribed again after a failure, it tells this instance's sockets `server:resync`: a `sync` from
their cursor fetches what they missed, instead of at their next reconnect.

Publishes are batched: the emits made while a publish is on its way (group commit acks a whole batch of sends in one
loop iteration) go to Redis together as one `{"method": "batch", "messages": [...]}`, in order, one publish at a time;
a lone emit goes alone, in python-socketio's own format. Every instance must run this manager: the stock one ignores
batches (docs/realtime.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import socketio

from sut import metrics

RESYNC = "server:resync"
MAX_RETRY_SLEEP = 5.0
BATCH = "batch"


class _Pending:
    """The sids of one namespace still connecting or disconnecting, for python-socketio's manager, which keeps them
    in a list and asks `sid in` it on every event (is_connected): the same append / remove / in / len, in O(1)."""

    def __init__(self, sids: Iterable[str] = ()) -> None:
        self._sids = dict.fromkeys(sids)

    def append(self, sid: str) -> None:
        self._sids[sid] = None

    def remove(self, sid: str) -> None:
        try:
            del self._sids[sid]
        except KeyError:
            raise ValueError(f"{sid!r} is not pending") from None

    def __contains__(self, sid: object) -> bool:
        return sid in self._sids

    def __len__(self) -> int:
        return len(self._sids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._sids)

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, _Pending)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


class _PendingByNamespace(dict[str, _Pending]):
    """namespace -> _Pending; the manager stores a new list here, which becomes a _Pending."""

    def __setitem__(self, namespace: str, sids: Iterable[str]) -> None:
        super().__setitem__(namespace, sids if isinstance(sids, _Pending) else _Pending(sids))


class IndexedRooms:
    """The rooms of each sid, kept beside python-socketio's rooms (a mixin before its manager class).

    The stock manager finds a sid's rooms by copying and scanning every room of the namespace (basic_disconnect,
    get_rooms): with 10,000 sockets (each in its sid room and its user's room) one disconnect cost 2.6 ms of CPU,
    and the disconnects of a generator's end or of a network partition blocked the event loop for as long as
    10,000 x that. Here entering and leaving also update a sid -> rooms index, and a disconnect leaves exactly the
    rooms the index holds. Every room change goes through basic_enter_room / basic_leave_room, so the two agree.

    The sids still connecting or disconnecting are kept in lists the manager scans on every event (is_connected):
    during a connect storm, with hundreds of handshakes waiting on their connect handler, each event paid for all
    of them. Here they are _Pending, the same operations in O(1).
    """

    rooms: dict[Any, dict[Any, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, _Pending]
    pending_disconnect: dict[str, _Pending]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rooms_of: dict[tuple[str, str], set[str | None]] = {}
        self.pending_connect = _PendingByNamespace()
        self.pending_disconnect = _PendingByNamespace()

    def basic_enter_room(self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: str | None) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            if sid in pending.get(namespace, ()):
                pending[namespace].remove(sid)
                if not pending[namespace]:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[str]:
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]


class RedisManager(IndexedRooms, socketio.AsyncRedisManager):  # type: ignore[misc]
    def __init__(self, url: str, *, channel: str, timeout: float) -> None:
        super().__init__(url, channel=channel, redis_options={"socket_connect_timeout": timeout})
        self._timeout = timeout
        self._closing: set[asyncio.Task[None]] = set()
        self._outbox: list[Any] = []
        self._outbox_sent: asyncio.Future[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None   # the app's, once known (a lookup is a getpid() on 3.11)

    def _redis_connect(self) -> None:
        if self.redis is None:
            super()._redis_connect()
            return
        previous: Any = getattr(self, "pubsub", None)
        if previous is not None and previous.connection is not None:
            task = asyncio.get_running_loop().create_task(previous.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def _publish(self, data: Any) -> None:
        """Queue `data` for the next publish; return once it has gone (or failed: the stock manager logs and drops)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._outbox.append(data)
        if self._outbox_sent is None:
            self._outbox_sent = loop.create_future()
        sent = self._outbox_sent
        if self._publisher is None or self._publisher.done():
            self._publisher = loop.create_task(self._drain_outbox())   # starts next iteration: this one's emits join
        await asyncio.shield(sent)   # a cancelled emitter must not cancel the publish of the others

    async def _drain_outbox(self) -> None:
        while self._outbox:
            batch, sent = self._outbox, self._outbox_sent
            self._outbox, self._outbox_sent = [], None
            try:
                message = batch[0] if len(batch) == 1 else {"method": BATCH, "host_id": self.host_id, "messages": batch}
                await self._publish_now(message)
            finally:
                if sent is not None and not sent.done():
                    sent.set_result(None)

    async def _publish_now(self, message: Any) -> None:
        metrics.FANOUT_BATCH.observe(len(message["messages"]) if message.get("method") == BATCH else 1)
        try:
            await asyncio.wait_for(super()._publish(message), self._timeout)
        except TimeoutError:
            metrics.REDIS_ERRORS.labels("publish").inc()
            self._get_logger().warning("socket.io publish timed out; receivers catch up with sync")

    async def _listen(self) -> Any:
        """The stock listener's messages, a batch's one by one (decoded here: the stock loop takes dicts as is)."""
        async for raw in super()._listen():
            try:
                data = self.json.loads(raw)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("method") == BATCH and isinstance(data.get("messages"), list):
                for message in data["messages"]:
                    yield message
            else:
                yield data

    async def _redis_listen_with_retries(self) -> Any:
        retry_sleep = 1.0
        subscribed = failed = False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed, retry_sleep = True, 1.0
                    if failed:
                        failed = False
                        await self._resync()
                async for message in self.pubsub.listen():
                    yield message
                # listen() ended without an error: its pub/sub object was replaced (a publish reconnected) or
                # closed. Subscribe again, after a pause (an ended listen() returns at once: no hot loop), and
                # resync: messages may have gone by meanwhile
                subscribed, failed = False, True
                await asyncio.sleep(retry_sleep)
            except Exception as exc:  # any failure of Redis: resubscribe, as the stock listener does
                self._get_logger().error(f"socket.io fan-out: cannot receive from Redis; retrying in {retry_sleep:g} s",
                                         extra={"redis_exception": str(exc)})
                metrics.REDIS_ERRORS.labels("subscribe").inc()
                subscribed, failed = False, True
                await asyncio.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, MAX_RETRY_SLEEP)

    async def _resync(self) -> None:
        """Every socket of this instance (no room: all of them; ignore_queue: this instance only)."""
        self._get_logger().warning("socket.io fan-out is back: asking this instance's sockets to sync")
        await self.emit(RESYNC, {"reason": "fanout_restored"}, namespace="/", ignore_queue=True)

    async def close(self) -> None:
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publisher, self._timeout)
        if self._outbox:   # the publisher timed out: these never reach the other instances (receivers sync)
            self._get_logger().warning(f"socket.io fan-out closing: {len(self._outbox)} emits not published")
            self._outbox = []
        if self._outbox_sent is not None and not self._outbox_sent.done():
            self._outbox_sent.set_result(None)   # their emitters go on
        self._outbox_sent = None
        listener = getattr(self, "thread", None)  # started with the first client connection
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self.pubsub is not None:
            await self.pubsub.aclose()
        if self.redis is not None:
            await self.redis.aclose()
