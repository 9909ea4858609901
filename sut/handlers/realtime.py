"""socket.io transport: connection auth, the client events with acks, and the server events.

Clients connect with auth={"token": JWT} and join the room user:{id}; fan-out across instances goes
through Redis (AsyncRedisManager). Each client event answers with an ack, {"ok": true, ...} or
{"ok": false, "error": {"code", "message"}}, and never drops the connection. Sends go through the
same service function as REST, and message:new is emitted only after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web
from pydantic import ValidationError

from sut import keys, metrics
from sut.admission import RETRY_AFTER
from sut.auth import AuthError, decode_token
from sut.db.sync import SyncCursor
from sut.domain import DomainError, Principal, Role, Unavailable
from sut.handlers import schemas
from sut.handlers.errors import describe_validation
from sut.handlers.http import CACHE
from sut.handlers.publish import CONVERSATION_READ, PUBLISHER, TYPING, user_room
from sut.handlers.views import message_json
from sut.middlewares import ADMISSION, RATE_LIMITER, UNAVAILABLE_ERRORS
from sut.ratelimit import RateLimiter
from sut.services import conversations, messages

log = logging.getLogger(__name__)

MESSAGE_SEND, SYNC = "message:send", "sync"
SERVER_SHUTDOWN = "server:shutdown"
CLOSE_TIMEOUT = 2.0
Ack = dict[str, Any]

SIO: web.AppKey[socketio.AsyncServer] = web.AppKey("socketio_server", socketio.AsyncServer)
TYPING_LIMITER: web.AppKey[RateLimiter] = web.AppKey("typing_rate_limiter", RateLimiter)
CONNECT_LIMITER: web.AppKey[RateLimiter] = web.AppKey("connect_rate_limiter", RateLimiter)
NAMESPACE: web.AppKey[ChatNamespace] = web.AppKey("chat_namespace")


def error_ack(code: str, message: str, **extra: Any) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message, **extra}}


def refusal(code: str, message: str, **extra: Any) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connect: clients get `message` and, as `data`, the code and message (an error ack's shape).
    A dict as the only argument would reach them as its repr in `message`."""
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code, "message": message, **extra})




# a client closing its websocket cleanly shows as "transport close": a normal, client-side end
_DISCONNECT_REASONS = {
    "client disconnect": "client", "transport close": "client", "ping timeout": "ping_timeout",
    "transport error": "transport_error", "server disconnect": "server_shutdown",
}


class ChatNamespace(socketio.AsyncNamespace):
    """The default namespace: one short method per event, per-connection principal kept here."""

    def __init__(self, app: web.Application) -> None:
        super().__init__("/")
        self.app = app
        self.principals: dict[str, Principal] = {}
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._events: dict[str, Callable[[str, Principal, Any], Awaitable[Ack]]] = {
            MESSAGE_SEND: self._send, CONVERSATION_READ: self._read, TYPING: self._typing, SYNC: self._sync,
        }

    @property
    def client_events(self) -> frozenset[str]:
        """The events a client may emit (each answers with an ack)."""
        return frozenset(self._events)

    async def trigger_event(self, event: object, *args: Any) -> Any:
        if event in ("connect", "disconnect") and not self._connected(args[0]):
            return await super().trigger_event(event, *args)
        sid, data = args[0], (args[1] if len(args) > 1 else None)
        # a client names events freely: a list is unhashable, and "connect" or "disconnect" sent on an open
        # connection must not reach on_connect/on_disconnect (that would log the socket out or in again)
        if not isinstance(event, str) or (handler := self._events.get(event)) is None:
            return error_ack("unknown_event", f"unknown event {repr(event)[:100]}")
        return await self._handle(event, sid, data, handler)

    def _connected(self, sid: str) -> bool:
        """Past the handshake: during its own connect and disconnect the server holds the socket as pending."""
        return bool(self.server.manager.is_connected(sid, self.namespace))

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if self.draining:
            metrics.SIO_CONNECTS.labels("refused").inc()
            raise refusal("unavailable", "server shutting down")
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if not isinstance(token, str) or not token:
                raise AuthError("missing token: connect with auth={'token': JWT}")
            principal = decode_token(self.app[keys.SETTINGS].jwt_secret, token)
        except AuthError as exc:
            metrics.SIO_CONNECTS.labels("refused").inc()
            raise refusal("unauthorized", str(exc)) from None
        await self._admit(principal)
        if self.server.manager.eio_sid_from_sid(sid, self.namespace) not in self.server.environ:
            raise refusal("gone", "the client left during the connect")   # its disconnect came and went already
        if self.app[keys.SETTINGS].max_connections and len(self.principals) >= self.app[keys.SETTINGS].max_connections:
            metrics.SIO_CONNECTS.labels("refused").inc()
            metrics.SHED.labels("connect").inc()
            raise refusal("overloaded", "this instance holds as many connections as it may; retry later",
                          retry_after=RETRY_AFTER)
        self.principals[sid] = principal
        await self.enter_room(sid, user_room(principal.user_id))
        metrics.SIO_CONNECTS.labels("accepted").inc()
        metrics.WS_CONNECTIONS.inc()

    async def _admit(self, principal: Principal) -> None:
        """The user's connect token bucket: one client's reconnect loop cannot keep the instance busy."""
        decision = await self.app[CONNECT_LIMITER].check(principal.user_id)
        if decision.allowed:
            return
        metrics.SIO_CONNECTS.labels("refused").inc()
        raise refusal("rate_limited", "too many connection attempts; slow down",
                      retry_after=max(1, math.ceil(decision.retry_after)))

    async def on_disconnect(self, sid: str, reason: str = "client disconnect") -> None:
        if self.principals.pop(sid, None) is None:
            return
        metrics.WS_CONNECTIONS.dec()
        label = "server_shutdown" if self.draining else _DISCONNECT_REASONS.get(reason, "transport_error")
        metrics.SIO_DISCONNECTS.labels(label).inc()

    async def _handle(self, event: str, sid: str, data: Any,
                      handler: Callable[[str, Principal, Any], Awaitable[Ack]]) -> Ack:
        admission = self.app[ADMISSION]
        if not admission.enter("socketio"):
            metrics.SIO_EVENTS.labels(event, "error").inc()
            return error_ack("overloaded", "the service is overloaded; retry later", retry_after=RETRY_AFTER)
        try:
            return await self._timed(event, sid, data, handler)
        finally:
            admission.leave()

    async def _timed(self, event: str, sid: str, data: Any,
                     handler: Callable[[str, Principal, Any], Awaitable[Ack]]) -> Ack:
        start = time.perf_counter()
        self.in_flight += 1
        self._idle.clear()
        try:
            ack = await self._guarded(event, sid, data, handler)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
            metrics.SIO_EVENT_DURATION.labels(event).observe(time.perf_counter() - start)
        metrics.SIO_EVENTS.labels(event, "ok" if ack.get("ok") else "error").inc()
        return ack

    async def _guarded(self, event: str, sid: str, data: Any,
                       handler: Callable[[str, Principal, Any], Awaitable[Ack]]) -> Ack:
        principal = self.principals.get(sid)
        if principal is None:
            return error_ack("unauthorized", "not connected")
        if self.draining:
            return error_ack("unavailable", "server shutting down; reconnect and retry", retry_after=1)
        limited = await self._rate_limited(event, principal)
        if limited is not None:
            return limited
        try:
            return await handler(sid, principal, data)
        except ValidationError as exc:
            return error_ack("validation_error", describe_validation(exc))
        except Unavailable as exc:
            return error_ack(exc.code, exc.message, retry_after=exc.retry_after)
        except DomainError as exc:
            return error_ack(exc.code, exc.message)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("dependency unavailable", extra={"event": event, "error": f"{type(exc).__name__}: {exc}"})
            return error_ack("unavailable", "a dependency is unavailable; retry later", retry_after=1)
        except Exception:
            log.exception("unhandled error in socket.io event", extra={"event": event})
            return error_ack("internal", "internal error")

    async def _rate_limited(self, event: str, principal: Principal) -> Ack | None:
        limiter = self.app[TYPING_LIMITER] if event == TYPING else self.app[RATE_LIMITER]
        decision = await limiter.check(principal.user_id)
        if decision.allowed:
            return None
        return error_ack("rate_limited", "too many events; slow down",
                         retry_after=max(1, math.ceil(decision.retry_after)))

    def _timeout(self) -> float:
        return self.app[keys.SETTINGS].db_acquire_timeout

    async def _send(self, sid: str, principal: Principal, data: Any) -> Ack:
        try:
            body = schemas.SocketSend.model_validate(data)
        except ValidationError:
            messages.count_refused_payload(data)
            raise
        req = messages.SendRequest(conversation_id=body.conversation_id, client_message_id=body.client_message_id,
                                   body=body.body, image_key=body.image_key, booking_id=body.booking_id)
        result = await messages.send(self.app[keys.DB_POOL], self.app[keys.STORAGE], principal, req,
                                     self._timeout())
        # committed: tell both participants (a replay tells them again; receivers de-duplicate by id), all their
        # connections but this one, whose ack carries the message
        message = await message_json(result.message, self.app[keys.STORAGE])
        await self.app[PUBLISHER].message_new(message, result.participants, skip_sid=sid)
        return {"ok": True, "duplicate": not result.created, "message": message}

    async def _read(self, sid: str, principal: Principal, data: Any) -> Ack:
        body = schemas.SocketRead.model_validate(data)
        conversation = await conversations.mark_read(self.app[keys.DB_POOL], principal, body.conversation_id,
                                                     body.up_to_message_id, self._timeout())
        up_to = conversation.last_read_id_for(principal)
        await self.app[PUBLISHER].conversation_read(conversation.id, principal.user_id, up_to,
                                                    (conversation.customer_id, conversation.artist_id))
        return {"ok": True, "conversation_id": conversation.id, "up_to_message_id": up_to}

    async def _typing(self, sid: str, principal: Principal, data: Any) -> Ack:
        body = schemas.SocketTyping.model_validate(data)
        ref = await conversations.ref_for_participant(self.app[keys.DB_POOL], self.app[CACHE], principal,
                                                      body.conversation_id, self._timeout())
        other = ref.artist_id if principal.role is Role.CUSTOMER else ref.customer_id
        await self.app[PUBLISHER].typing(ref.id, principal.user_id, other)
        return {"ok": True}

    async def _sync(self, sid: str, principal: Principal, data: Any) -> Ack:
        body = schemas.SocketSync.model_validate(data)
        cursor = SyncCursor.decode(body.after_id)
        items, following = await messages.sync(self.app[keys.DB_POOL], principal, cursor, limit=body.limit,
                                               timeout=self._timeout())
        storage = self.app[keys.STORAGE]
        return {"ok": True, "items": [await message_json(m, storage) for m in items],
                "next_after_id": following.encode()}

    async def drain(self, grace: float) -> None:
        """Shutdown: refuse new work, let in-flight events finish, then ask clients to reconnect elsewhere."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        sio = self.app[SIO]
        if self.principals:  # an empty `to` would mean everyone, on every instance
            await sio.emit(SERVER_SHUTDOWN, {"reconnect": True}, to=list(self.principals), ignore_queue=True)
        # abort: drop the transport without a close packet, so clients see a lost connection and
        # reconnect (to another instance behind the balancer); a close packet would tell them to stay
        # away. wait=False: a polling client that never polls again must not hold the shutdown.
        closing = [_drop(sock) for sock in list(sio.eio.sockets.values())]
        if closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), CLOSE_TIMEOUT)


async def _drop(sock: Any) -> None:
    """Close an engine.io socket without a close packet; a None in its queue makes its writer task
    close the websocket itself, so the handler (and the server's shutdown) finish at once."""
    await sock.close(wait=False, abort=True)
    await sock.queue.put(None)
