"""The one send path (REST and socket.io), and history pages."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from sut import groupcommit, metrics
from sut.cache import ConversationCache
from sut.db import conversations as conv_db
from sut.db import messages as msg_db
from sut.db import sync as sync_db
from sut.db.pool import acquire
from sut.db.sync import SyncCursor
from sut.domain import Conflict, ConversationRef, DomainError, Invalid, Message, NotFound, Principal, Unavailable
from sut.services.conversations import ref_for_participant
from sut.storage import Storage, StorageError


@dataclass(frozen=True)
class SendRequest:
    conversation_id: int
    client_message_id: str
    body: str | None
    image_key: str | None
    booking_id: int | None

    @property
    def kind(self) -> str:
        return "image" if self.image_key is not None else "text"


@dataclass(frozen=True)
class SendResult:
    message: Message
    created: bool  # False: a replay of an earlier send, nothing stored
    participants: tuple[int, int]  # (customer_id, artist_id): who gets message:new


def count_refused_payload(payload: object) -> None:
    """A send refused before it reached `send` (malformed payload) still counts as rejected."""
    kind = "image" if isinstance(payload, dict) and payload.get("image_key") is not None else "text"
    metrics.MESSAGES.labels(kind, "rejected").inc()


def image_key_prefix(user_id: int) -> str:
    return f"uploads/{user_id}/"


async def send(
    pool: asyncpg.Pool, storage: Storage, principal: Principal, req: SendRequest, timeout: float
) -> SendResult:
    """Store a message once per (sender, client_message_id); count the outcome in messages_total."""
    try:
        result = await _send(pool, storage, principal, req, timeout)
    except DomainError as exc:
        outcome = "failed" if isinstance(exc, Unavailable) else "rejected"
        metrics.MESSAGES.labels(req.kind, outcome).inc()
        raise
    except Exception:
        metrics.MESSAGES.labels(req.kind, "failed").inc()
        raise
    metrics.MESSAGES.labels(req.kind, "sent" if result.created else "duplicate").inc()
    return result


async def _send(
    pool: asyncpg.Pool, storage: Storage, principal: Principal, req: SendRequest, timeout: float
) -> SendResult:
    if req.image_key is not None:
        replay = await _replay(pool, principal, req, timeout)
        if replay is not None:
            return replay
        # checked before the transaction: no S3 round trip while the conversation row is locked
        await _check_image(storage, principal, req.image_key)
    batcher = groupcommit.for_pool(pool)
    if batcher is None:
        return await _send_alone(pool, principal, req, timeout)
    stored = await batcher.send(
        conversation_id=req.conversation_id, sender=principal.role, sender_id=principal.user_id,
        kind=req.kind, body=req.body, image_key=req.image_key, booking_id=req.booking_id,
        client_message_id=req.client_message_id, timeout=timeout,
    )
    if stored is not None:
        return _created(stored)
    async with acquire(pool, timeout) as conn:
        ref, earlier = await _not_stored(conn, principal, req)
    return _replayed(req, ref, earlier)


async def _send_alone(pool: asyncpg.Pool, principal: Principal, req: SendRequest, timeout: float) -> SendResult:
    """Without group commit: the send and, when nothing was stored, the reason, on one connection."""
    async with acquire(pool, timeout) as conn:
        stored = await msg_db.send(
            conn, conversation_id=req.conversation_id, sender=principal.role, sender_id=principal.user_id,
            kind=req.kind, body=req.body, image_key=req.image_key, booking_id=req.booking_id,
            client_message_id=req.client_message_id,
        )
        if stored is not None:
            return _created(stored)
        ref, earlier = await _not_stored(conn, principal, req)
    return _replayed(req, ref, earlier)


def _created(stored: msg_db.Stored) -> SendResult:
    return SendResult(stored.message, created=True, participants=(stored.customer_id, stored.artist_id))


async def _not_stored(
    conn: asyncpg.Connection, principal: Principal, req: SendRequest
) -> tuple[ConversationRef, Message | None]:
    """Nothing stored (rare): say why. The key, once it exists, never changes conversation."""
    ref = await conv_db.get_ref(conn, conversation_id=req.conversation_id)
    if not ref.is_participant(principal):
        raise NotFound("conversation not found")
    earlier = await msg_db.by_client_id(conn, sender_id=principal.user_id, client_message_id=req.client_message_id)
    return ref, earlier


def _replayed(req: SendRequest, ref: ConversationRef, earlier: Message | None) -> SendResult:
    if earlier is None or earlier.conversation_id != req.conversation_id:
        raise Conflict("client_message_id was already used by this sender in another conversation")
    return SendResult(earlier, created=False, participants=(ref.customer_id, ref.artist_id))


async def _replay(pool: asyncpg.Pool, principal: Principal, req: SendRequest, timeout: float) -> SendResult | None:
    async with acquire(pool, timeout) as conn:
        earlier = await msg_db.by_client_id(conn, sender_id=principal.user_id,
                                            client_message_id=req.client_message_id)
        if earlier is None:
            return None
        ref = await conv_db.get_ref(conn, conversation_id=earlier.conversation_id)
    if earlier.conversation_id != req.conversation_id:
        raise Conflict("client_message_id was already used by this sender in another conversation")
    return SendResult(earlier, created=False, participants=(ref.customer_id, ref.artist_id))


async def _check_image(storage: Storage, principal: Principal, image_key: str) -> None:
    if not image_key.startswith(image_key_prefix(principal.user_id)):
        raise Invalid("image_key must be a key issued to the sender by POST /messaging/uploads")
    try:
        uploaded = await storage.exists(image_key)
    except StorageError:
        raise Unavailable("image storage is unavailable", retry_after=2) from None
    if not uploaded:
        raise Invalid("image_key: nothing has been uploaded under this key")


async def history(
    pool: asyncpg.Pool, cache: ConversationCache, principal: Principal, conversation_id: int, *,
    before_id: int | None, after_id: int | None, limit: int, timeout: float,
) -> list[Message]:
    await ref_for_participant(pool, cache, principal, conversation_id, timeout)
    async with acquire(pool, timeout) as conn:
        return await msg_db.history(conn, conversation_id=conversation_id, before_id=before_id,
                                    after_id=after_id, limit=limit)


async def sync(
    pool: asyncpg.Pool, principal: Principal, cursor: SyncCursor, *, limit: int, timeout: float
) -> tuple[list[Message], SyncCursor]:
    """What a reconnecting client missed, across its conversations, oldest first (one snapshot)."""
    async with acquire(pool, timeout) as conn:
        return await sync_db.since(conn, side=principal.role, user_id=principal.user_id, cursor=cursor,
                                   limit=limit)
