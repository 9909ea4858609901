"""The chat persona: a customer <-> artist pair over socket.io, both ends in one Locust user (one process).

Sends follow an open-model schedule (the scenario's target messages/s shared by the active pairs), not the acks:
a slow service makes acks late, never sends fewer. How late each send ran against its schedule is recorded
(`LAG schedule`); the process warns when it falls behind, so coordinated omission is visible.

Per send: `message:send` ack latency at the sender; at the receiver, `message:new` delivery latency from the
send timestamp carried in the payload (same process clock), and the delivery checker's bookkeeping. After the
last send and the grace period both ends `sync` from their cursor and the checker declares what is still missing
lost. A dropped connection reconnects and catches up with `sync`, as a real client does, and so does a side told
`server:resync` (the service's fan-out was down for a while). Reconnects are jittered: the first within a second
of the loss, then after the service's Retry-After plus a random share of a ceiling doubling per failure (1 s to
16 s, "full jitter"), so the users of a dead instance do not come back in step. `reconnect` records, per user back,
the time from the loss to connected and caught up.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.lock
import jwt
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import RescheduleTask, StopUser

from loadtests.checker import Checker, Seen
from loadtests.config import (
    ACK_TIMEOUT,
    LAG_WARNING,
    RECONNECT_BACKOFF,
    RETRY_BACKOFF,
    RUN,
    SEND_TRIES,
    Config,
    Pacer,
    active_pairs,
)
from loadtests.recorder import LAG, Recorder
from loadtests.sioclient import ConnectError, SioClient, elapsed_ms

log = logging.getLogger("loadtests.chat")

PROCESS_TAG = secrets.token_hex(4)   # client_message_ids carry it: latency is computed only on this clock
CHECKER = Checker()
RECORDER = Recorder()
PAIRS: weakref.WeakSet[ChatPair] = weakref.WeakSet()   # this process's pairs, for the count of open connections
# final syncs one process runs at once: after the grace every pair syncs both ends, and 10,000 pairs doing it at
# once were a storm of their own (the instances shed most of them, and pairs past FINAL_SYNC_LIMIT left `lost`
# undeclared); at a sync's ~0.25 s, 128 at once finish 10,000 pairs in well under the limit
FINAL_SYNCS = gevent.lock.BoundedSemaphore(128)
_WORDS = ("hi", "thanks", "see", "you", "at", "3pm", "running", "late", "nails", "lashes", "booking", "photo",
          "perfect", "tomorrow", "studio", "parking", "sure", "great")
_last_lag_warning = 0.0


class AckError(Exception):
    """An `ok: false` ack (its error code) or no ack in time."""


class LostMessage(Exception):
    """Acked, but the receiver never saw it, live or by sync, by the end of the grace period."""


class DuplicatedMessage(Exception):
    """One client_message_id stored under two message ids."""


def mint(config: Config, user_id: int, role: str, ttl: int = 24 * 3600) -> str:
    return jwt.encode({"sub": str(user_id), "role": role, "exp": int(time.time()) + ttl}, config.jwt_secret,
                      algorithm="HS256")


@dataclass
class _Attempt:
    seq: int
    cmid: str
    body: str
    sent: float        # perf_counter at this attempt
    tries: int = 1


@dataclass
class Side:
    role: str
    user_id: int
    token: str
    target: str
    client: SioClient | None = None
    cursor: int | str = 0
    seq: int = 0
    received: int = 0
    inflight: dict[int, _Attempt] = field(default_factory=dict)
    retry_connect_at: float = 0.0
    source: str | None = None
    lost_at: float = 0.0          # perf_counter when the connection was lost; 0 while connected or never connected
    connect_failures: int = 0


def reconnect_delay(failures: int, retry_after: float | None) -> float:
    """Seconds before the next connect after `failures` failed ones in a row: the service's Retry-After (if it
    gave one) plus full jitter under a ceiling doubling per failure."""
    first, cap = RECONNECT_BACKOFF
    return (retry_after or 0.0) + random.uniform(0.0, min(cap, first * 2 ** max(failures - 1, 0)))


def _parse(message: dict[str, Any]) -> tuple[int, float] | None:
    """(seq, send perf_counter) of a message this process sent, else None."""
    cmid = message.get("client_message_id") or ""
    parts = cmid.split("-")
    if len(parts) != 5 or parts[0] != "lt" or parts[1] != PROCESS_TAG:
        return None
    body = message.get("body") or ""
    at = body.rfind("@")
    try:
        return int(parts[4]), float(body[at + 1:])
    except ValueError:
        return None


_PACERS: dict[int, Pacer] = {}


def connect_pacer(cfg: Config) -> Pacer:
    """This process's pacer of first connects: its share of the persona's connect_rate."""
    pacer = _PACERS.get(id(cfg))
    if pacer is None:
        persona = cfg.scenario.personas.chat
        rate = (persona.connect_rate or 0.0) if persona else 0.0
        pacer = _PACERS[id(cfg)] = Pacer(rate / max(cfg.pair_stride, 1))
    return pacer


class ChatPair(FastHttpUser):
    """One customer and one artist chatting in their conversation (get-or-create over REST)."""

    abstract = True          # the locustfile makes it concrete with the scenario's pair count
    wait_time = constant(0)  # the open-model schedule paces sends
    config: Config           # set by the locustfile

    def on_start(self) -> None:
        cfg = self.config
        runner = self.environment.runner
        worker = getattr(runner, "worker_index", 0)
        self.index = RUN.next_index("pair", worker, cfg.pair_stride)
        PAIRS.add(self)
        # this process's own count: Locust balances users per worker, not per class, so the global indexes
        # of one process's pairs need not be 0..n-1; which pairs are active is decided per process
        self.rank = RUN.indexes["pair"] - 1
        self.stages = cfg.scenario.resolved_stages()   # once: each step asks which stage runs
        self.most_pairs = max(s.pairs for s in self.stages)
        persona = cfg.scenario.personas.chat
        self.typing_ratio = persona.typing_ratio if persona else 0.0
        self.read_every = persona.read_every if persona else 0
        customer, artist = cfg.pair_ids(self.index)
        host = self.host or ""
        self.sides = [Side("customer", customer, mint(cfg, customer, "customer"), cfg.target(self.index, host),
                           source=cfg.source_address(2 * self.index)),
                      Side("artist", artist, mint(cfg, artist, "artist"), cfg.target(self.index + 1, host),
                           source=cfg.source_address(2 * self.index + 1))]
        self.turn = self.index % 2
        self.next_at: float | None = None
        self.finalized = False
        self.conversation_id = 0      # got or created when the pair is first active (_set_up)
        RUN.pairs_started += 1

    # --- setup
    def _set_up(self) -> None:
        """The pair's conversation, when it is first active: the users of a later stage do not load the service
        before their stage (20,000 users of which 5,000 active made 10,000 get-or-creates in the first stage)."""
        for attempt in range(5):   # a busy service (503, 429) gets a few tries, as an app would give it
            try:
                self.conversation_id, last = self._get_or_create()
                break
            except RescheduleTask:
                gevent.sleep(1.0 + attempt)
        else:
            self.finalized = True        # nothing sent, nothing to check: the run need not wait for this pair
            RUN.pairs_finalized += 1
            raise StopUser()
        for side in self.sides:
            side.cursor = last

    def _get_or_create(self) -> tuple[int, int]:
        customer, artist = self.sides
        # Connection: close: a pair makes no other REST call, and a kept-alive socket would hold a file per pair
        with self.client.post("/messaging/conversations", json={"artist_id": artist.user_id},
                              headers={"Authorization": f"Bearer {customer.token}", "Connection": "close"},
                              name="POST /messaging/conversations", catch_response=True) as resp:
            body = resp.json() if resp.status_code in (200, 201) else None
            if not body or body.get("customer_id") != customer.user_id or body.get("artist_id") != artist.user_id:
                resp.failure(f"get-or-create: HTTP {resp.status_code} {str(resp.text)[:200]}")
                raise RescheduleTask()
        last = (body.get("last_message") or {}).get("id") or 0
        return int(body["id"]), int(last)

    def _connect(self, side: Side) -> bool:
        started = time.perf_counter()
        client = SioClient(side.target, side.token, lambda event, data: self._on_event(side, event, data),
                           on_disconnect=lambda why: self._on_disconnect(side, why), source_address=side.source)
        try:
            client.connect()
        except ConnectError as exc:
            self._fire("connect", elapsed_ms(started), exc)
            side.connect_failures += 1
            side.retry_connect_at = time.time() + reconnect_delay(side.connect_failures, exc.retry_after)
            return False
        self._fire("connect", elapsed_ms(started))
        side.client = client
        side.connect_failures = 0
        try:
            self._sync(side)       # catch up on what was missed while away
        except (AckError, ConnectionError, gevent.Timeout) as exc:
            log.info("sync after connect failed for user %s: %s", side.user_id, exc)
        if side.lost_at and client.connected:
            self._fire("reconnect", elapsed_ms(side.lost_at))
            side.lost_at = 0.0
        return True

    def _on_disconnect(self, side: Side, why: str) -> None:
        side.client = None
        side.lost_at = side.lost_at or time.perf_counter()
        side.retry_connect_at = time.time() + random.uniform(0.0, RECONNECT_BACKOFF[0])
        log.debug("user %s disconnected: %s", side.user_id, why)
        # acks travel on the connection: those of the sends in flight will never come. Retried after the
        # reconnect with the same client_message_id (the service stores each once).
        for attempt in list(side.inflight.values()):
            del side.inflight[attempt.seq]
            self._fire("message:send", elapsed_ms(attempt.sent), ConnectionError(f"connection lost: {why}"))
            self._retry_or_fail(side, attempt, retry_after=1.0)   # after the reconnect (0.2-1 s from now)

    def _ensure_connected(self) -> bool:
        ok = True
        for side in self.sides:
            if side.client is None or not side.client.connected:
                side.client = None
                due = time.time() >= side.retry_connect_at
                ok = (self._connect(side) if due else False) and ok
        return ok

    # --- the schedule
    def _stage(self) -> tuple[float, int]:
        """(messages/s, pairs) of the stage running now."""
        elapsed = time.time() - RUN.t0
        stages = self.stages
        current = stages[-1]
        for stage in stages:
            if elapsed < stage.offset + stage.duration:
                current = stage
                break
        return current.messages_per_second, current.pairs

    def _next_stage_at(self, now: float) -> float:
        """When the stage after the one running at `now` begins (the end of the sends after the last)."""
        elapsed = now - RUN.t0
        for stage in self.stages:
            if elapsed < stage.offset:
                return RUN.t0 + stage.offset
        return self.send_end()

    def send_end(self) -> float:
        return RUN.send_end()

    def _sleep_until(self, t: float) -> None:
        """Wait for `t`, reconnecting a side that is down when its retry is due (at one send a minute, the next send
        may be far off: a user comes back when its backoff says, not at its next send)."""
        while (now := time.time()) < t:
            due = [s.retry_connect_at for s in self.sides if s.client is None or not s.client.connected]
            wake = min([t, *(max(d, now) for d in due)])
            if wake > now:
                gevent.sleep(wake - now)
            if due and time.time() < t and time.time() >= min(due):
                self._ensure_connected()

    @task
    def step(self) -> None:
        """One scheduled send (or a wait for the next stage), as the user's only task."""
        if not RUN.started.is_set():    # spawned before the run's clock (PRESPAWN): nothing to do until it starts
            RUN.started.wait()
            return
        now = time.time()
        if now >= self.send_end():
            self._finalize()
            gevent.sleep(1.0)
            return
        rate, pairs = self._stage()
        # this process's share of the stage's pairs is active; the rest is parked (no connections, no sends)
        active = self.rank < active_pairs(pairs, self.most_pairs, RUN.indexes["pair"], self.config.pair_stride,
                                          spawned=RUN.spawned)
        if not active or rate <= 0:
            self._park()
            self.next_at = None
            # until the next stage (or the end of the sends), in steps of at most 5 s: thousands of parked pairs
            # waking twice a second cost a generator process more than its connected users did
            gevent.sleep(min(5.0, max(min(self._next_stage_at(now), self.send_end()) - now, 0.01)))
            return
        self._sweep()
        if self.next_at is None:         # just active (the start, or a stage that asks for more users)
            gevent.sleep(connect_pacer(self.config).delay(2, time.time()))
            if not self.conversation_id:
                self._set_up()
        # reconnects what is down (at most once a second a side); the schedule goes on regardless: a send due
        # while its sender is disconnected fails, as it would for a user, instead of silently not happening
        self._ensure_connected()
        interval = pairs / rate
        if self.next_at is None:         # from after the connects: setting up is not lag
            self.next_at = time.time() + random.uniform(0, interval)
        self._sleep_until(self.next_at)
        lag = time.time() - self.next_at
        RECORDER.record(*LAG, max(lag, 0.0))
        if lag > LAG_WARNING:
            _warn_lag(lag)
        self.next_at += interval
        if time.time() < self.send_end():
            self._send()

    def _park(self) -> None:
        for side in self.sides:
            if side.client is not None and not side.inflight:
                side.client.close()
                side.client = None

    # --- sending
    def _send(self) -> None:
        side = self.sides[self.turn]
        self.turn ^= 1
        side.seq += 1
        seq = side.seq
        cmid = f"lt-{PROCESS_TAG}-{self.conversation_id}-{side.user_id}-{seq}"
        words = " ".join(random.choices(_WORDS, k=random.randint(3, 12)))
        # the send time twice: this process's perf_counter (what the receiver here measures against) and the
        # wall clock (for an observer in another process on the same machine: benchmarks/harness_accuracy.py)
        body = f"{words} #{seq} ~{time.time():.6f} @{time.perf_counter():.6f}"
        if self.typing_ratio and random.random() < self.typing_ratio:
            self._emit_timed(side, "typing", {"conversation_id": self.conversation_id})
        CHECKER.sent()
        self._attempt(side, _Attempt(seq, cmid, body, time.perf_counter()))

    def _attempt(self, side: Side, attempt: _Attempt) -> None:
        side.inflight[attempt.seq] = attempt
        attempt.sent = time.perf_counter()
        payload = {"conversation_id": self.conversation_id, "client_message_id": attempt.cmid, "body": attempt.body}
        client = side.client
        try:
            if client is None:
                raise ConnectionError("not connected")
            tries = attempt.tries
            client.emit("message:send", payload, lambda ack: self._on_ack(side, attempt, tries, ack))
        except ConnectionError as exc:
            if side.inflight.pop(attempt.seq, None) is attempt:   # else the disconnect handler retried it already
                self._fire("message:send", elapsed_ms(attempt.sent), exc)
                self._retry_or_fail(side, attempt, retry_after=1.0)

    def _on_ack(self, side: Side, attempt: _Attempt, tries: int, ack: Any) -> None:
        if side.inflight.get(attempt.seq) is not attempt or attempt.tries != tries:
            # an earlier try's late ack: its send was already failed and retried; the stored id still counts
            if isinstance(ack, dict) and ack.get("ok"):
                message = ack.get("message") or {}
                CHECKER.acked(self.conversation_id, side.user_id, attempt.seq, int(message.get("id", 0)),
                              attempt.sent)
            return
        del side.inflight[attempt.seq]
        took = elapsed_ms(attempt.sent)
        if isinstance(ack, dict) and ack.get("ok"):
            message = ack.get("message") or {}
            self._fire("message:send", took)
            send_at = _parse(message)
            seen = CHECKER.acked(self.conversation_id, side.user_id, attempt.seq, int(message.get("id", 0)),
                                 send_at[1] if send_at else attempt.sent)
            if seen is Seen.DUPLICATED:
                self._fire("message:new", took, DuplicatedMessage(attempt.cmid))
            return
        error = ack.get("error") if isinstance(ack, dict) else None
        if not isinstance(error, dict):
            error = {}
        code = str(error.get("code", "bad_ack"))
        self._fire("message:send", took, AckError(code))
        if code in ("unavailable", "overloaded", "rate_limited", "internal"):
            self._retry_or_fail(side, attempt, retry_after=float(error.get("retry_after") or 1))
        else:
            CHECKER.send_failed()

    def _retry_or_fail(self, side: Side, attempt: _Attempt, retry_after: float) -> None:
        """Retry with the same client_message_id, as a client should: after the service's retry_after or an
        exponential backoff capped at 8 s (the longer), with jitter so retries do not come back in step; give up after
        SEND_TRIES or when the retry would land past the grace period."""
        first, cap = RETRY_BACKOFF
        delay = max(retry_after, min(first * 2 ** (attempt.tries - 1), cap)) * random.uniform(1.0, 1.5)
        if attempt.tries >= SEND_TRIES or time.time() + delay >= self.send_end() + self.config.scenario.grace:
            CHECKER.send_failed()
            return
        attempt.tries += 1
        gevent.spawn_later(delay, self._attempt, side, attempt)

    def _sweep(self) -> None:
        """Sends without an ack in ACK_TIMEOUT fail (and are retried)."""
        now = time.perf_counter()
        for side in self.sides:
            for attempt in [a for a in side.inflight.values() if now - a.sent > ACK_TIMEOUT]:
                del side.inflight[attempt.seq]
                self._fire("message:send", elapsed_ms(attempt.sent), AckError("no ack in time"))
                self._retry_or_fail(side, attempt, retry_after=0.0)

    def _emit_timed(self, side: Side, event: str, data: dict[str, Any]) -> None:
        started = time.perf_counter()

        def done(ack: Any) -> None:
            ok = isinstance(ack, dict) and ack.get("ok")
            self._fire(event, elapsed_ms(started), None if ok else AckError(str(ack)[:200]))

        try:
            if side.client is not None:
                side.client.emit(event, data, done)
        except ConnectionError:
            pass

    # --- receiving
    def _on_event(self, side: Side, event: str, data: Any) -> None:
        if event == "server:resync":     # the fan-out was down: what other instances sent never came live
            gevent.spawn(self._resync, side)
            return
        if event != "message:new" or not isinstance(data, dict):
            return
        message = data.get("message") or {}
        if message.get("sender_id") == side.user_id:
            return                       # its own message, echoed to its other devices
        self._receive(side, message, live=True)

    def _receive(self, side: Side, message: dict[str, Any], *, live: bool) -> None:
        parsed = _parse(message)
        if parsed is None:
            return
        seq, sent_at = parsed
        latency = elapsed_ms(sent_at)
        seen = CHECKER.received(side.user_id, int(message["conversation_id"]), int(message["sender_id"]), seq,
                                int(message["id"]), live=live)
        if seen is Seen.DUPLICATED:
            self._fire("message:new", latency, DuplicatedMessage(message.get("client_message_id")))
        elif seen is not Seen.REDELIVERED and live:
            self._fire("message:new", latency)
            side.received += 1
            if self.read_every and side.received % self.read_every == 0:
                self._emit_timed(side, "conversation:read",
                                 {"conversation_id": self.conversation_id, "up_to_message_id": message["id"]})

    def _resync(self, side: Side) -> None:
        try:
            self._sync(side)
        except (AckError, ConnectionError, gevent.Timeout) as exc:
            log.info("resync failed for user %s: %s", side.user_id, exc)

    def _sync(self, side: Side) -> int:
        """Page through `sync` from the side's cursor until an empty page; returns the messages read."""
        client = side.client
        total = 0
        refusals = 0
        for _ in range(1000):
            if client is None:
                raise ConnectionError("not connected")
            started = time.perf_counter()
            try:
                ack = client.call("sync", {"after_id": side.cursor, "limit": 500}, timeout=ACK_TIMEOUT)
            except (gevent.Timeout, ConnectionError) as exc:
                # one failure name per cause (a gevent Timeout's text holds its address: one row each)
                why = AckError(f"no ack in {ACK_TIMEOUT:g} s") if isinstance(exc, gevent.Timeout) else exc
                self._fire("sync", elapsed_ms(started), why)
                raise
            ok = isinstance(ack, dict) and ack.get("ok")
            self._fire("sync", elapsed_ms(started), None if ok else AckError(str(ack)[:200]))
            if not ok:
                error = ack.get("error") if isinstance(ack, dict) else None
                error = error if isinstance(error, dict) else {}
                if error.get("code") in ("rate_limited", "unavailable", "overloaded"):
                    # after the service's retry_after, jittered under a doubling ceiling: users shed together
                    # (all that reconnected in the same second) must not all come back in the same second again
                    refusals += 1
                    gevent.sleep(reconnect_delay(refusals, float(error.get("retry_after") or 1)))
                    continue
                raise AckError(str(error))
            for message in ack["items"]:
                if message.get("sender_id") != side.user_id:
                    self._receive(side, message, live=False)
            side.cursor = ack["next_after_id"]
            total += len(ack["items"])
            if not ack["items"]:
                return total
        return total

    # --- the end
    def _finalize(self) -> None:
        """After the grace period: sync both ends, declare the rest lost, close."""
        if self.finalized:
            return
        self.finalized = True
        deadline = self.send_end() + self.config.scenario.grace
        while time.time() < deadline:
            self._sweep()
            gevent.sleep(min(0.5, max(deadline - time.time(), 0.01)))
        for side in self.sides:
            for attempt in list(side.inflight.values()):
                self._fire("message:send", elapsed_ms(attempt.sent), AckError("no ack by the end of the grace"))
                CHECKER.send_failed()
            side.inflight.clear()
        if any(side.seq for side in self.sides):   # a pair that never sent (parked all along) has nothing to check
            with FINAL_SYNCS:
                self._final_sync()
        now = time.perf_counter()
        for side in self.sides:
            for lost in CHECKER.finish(self.conversation_id, side.user_id):
                self._fire("message:new", (now - lost.sent_at) * 1000.0,
                           LostMessage(f"conversation {lost.conversation_id} sender {lost.sender_id} seq {lost.seq}"))
        for side in self.sides:
            if side.client is not None:
                side.client.close()
                side.client = None
        RUN.pairs_finalized += 1

    def _final_sync(self) -> None:
        for _ in range(3):
            if self._ensure_connected():
                break
            gevent.sleep(1.0)
        for side in self.sides:
            try:
                self._sync(side)
            except (AckError, ConnectionError, gevent.Timeout) as exc:
                log.warning("final sync failed for user %s: %s", side.user_id, exc)

    def on_stop(self) -> None:
        if not self.finalized and RUN.t0 and time.time() >= self.send_end():
            self._finalize()
        for side in getattr(self, "sides", ()):
            if side.client is not None:
                side.client.close()
                side.client = None

    def _fire(self, name: str, ms: float, exc: BaseException | None = None) -> None:
        self.environment.events.request.fire(request_type="WS", name=name, response_time=ms, response_length=0,
                                             exception=exc, context={})


def _warn_lag(lag: float) -> None:
    global _last_lag_warning
    now = time.time()
    if now - _last_lag_warning > 10:
        _last_lag_warning = now
        log.warning("the load generator is %.0f ms behind its send schedule: the service gets less load than the "
                    "scenario asks (add workers or lower the rate)", lag * 1000)


def open_connections() -> int:
    """socket.io connections this process holds open now."""
    return sum(1 for pair in list(PAIRS) for side in getattr(pair, "sides", ())
               if side.client is not None and side.client.connected)
