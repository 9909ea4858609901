"""Conversation use cases: get-or-create, inbox, access checks, read state, archival."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from sut import metrics
from sut.cache import ConversationCache
from sut.db import conversations as conv_db
from sut.db import messages as msg_db
from sut.db import users as users_db
from sut.db.pool import acquire
from sut.domain import Conversation, ConversationRef, Forbidden, Invalid, NotFound, Principal, Role


async def get_or_create(
    pool: asyncpg.Pool, principal: Principal, *, customer_id: int | None, artist_id: int | None,
    booking_id: int | None, timeout: float,
) -> tuple[Conversation, bool]:
    """The caller's conversation with the other party; a caller may only act as itself."""
    customer, artist = _pair_for(principal, customer_id, artist_id)
    async with acquire(pool, timeout) as conn, conn.transaction():
        await users_db.upsert(conn, users=[(customer, Role.CUSTOMER), (artist, Role.ARTIST)])
        conversation, created = await conv_db.get_or_create(
            conn, customer_id=customer, artist_id=artist, booking_id=booking_id
        )
    if created:
        metrics.CONVERSATIONS.inc()
    return conversation, created


def _pair_for(principal: Principal, customer_id: int | None, artist_id: int | None) -> tuple[int, int]:
    if principal.role is Role.CUSTOMER:
        if customer_id is not None and customer_id != principal.user_id:
            raise Forbidden("a customer may only start conversations as itself (customer_id)")
        if artist_id is None:
            raise Invalid("artist_id is required")
        customer, artist = principal.user_id, artist_id
    else:
        if artist_id is not None and artist_id != principal.user_id:
            raise Forbidden("an artist may only start conversations as itself (artist_id)")
        if customer_id is None:
            raise Invalid("customer_id is required")
        customer, artist = customer_id, principal.user_id
    if customer == artist:
        raise Invalid("customer_id and artist_id must differ")
    return customer, artist


async def ref_for_participant(
    pool: asyncpg.Pool, cache: ConversationCache, principal: Principal, conversation_id: int, timeout: float
) -> ConversationRef:
    """The conversation's participants (cached); NotFound for outsiders, so existence is not leaked."""
    ref = await cache.get(conversation_id)
    if ref is None:
        async with acquire(pool, timeout) as conn:
            ref = await conv_db.get_ref(conn, conversation_id=conversation_id)
        await cache.put(ref)
    if not ref.is_participant(principal):
        raise NotFound("conversation not found")
    return ref


async def get(pool: asyncpg.Pool, principal: Principal, conversation_id: int, timeout: float) -> Conversation:
    async with acquire(pool, timeout) as conn:
        conversation = await conv_db.get(conn, conversation_id=conversation_id)
    if not conversation.is_participant(principal):
        raise NotFound("conversation not found")
    return conversation


async def inbox(
    pool: asyncpg.Pool, principal: Principal, *, status: str | None, after: tuple[datetime, int] | None,
    limit: int, timeout: float,
) -> list[Conversation]:
    async with acquire(pool, timeout) as conn:
        return await conv_db.inbox(conn, side=principal.role, user_id=principal.user_id, status=status,
                                   after=after, limit=limit)


async def unread_count(pool: asyncpg.Pool, principal: Principal, timeout: float) -> int:
    async with acquire(pool, timeout) as conn:
        return await conv_db.unread_total(conn, side=principal.role, user_id=principal.user_id)


async def mark_read(
    pool: asyncpg.Pool, principal: Principal, conversation_id: int, up_to: int | None, timeout: float
) -> Conversation:
    """Mark the other side's messages read up to a message (default: the newest)."""
    async with acquire(pool, timeout) as conn, conn.transaction():
        locked = await conv_db.lock(conn, conversation_id=conversation_id)
        if not locked.is_participant(principal):
            raise NotFound("conversation not found")
        if up_to is None:
            up_to = await msg_db.newest_id(conn, conversation_id=conversation_id)
        elif not await msg_db.in_conversation(conn, conversation_id=conversation_id, message_id=up_to):
            raise Invalid("up_to_message_id is not a message of this conversation")
        side = principal.role
        await conv_db.mark_read(conn, conversation_id=conversation_id, side=side,
                                reader_id=principal.user_id, up_to=up_to)
        return await conv_db.get(conn, conversation_id=conversation_id)


async def set_status(
    pool: asyncpg.Pool, cache: ConversationCache, principal: Principal, conversation_id: int, status: str,
    timeout: float,
) -> Conversation:
    async with acquire(pool, timeout) as conn, conn.transaction():
        locked = await conv_db.lock(conn, conversation_id=conversation_id)
        if not locked.is_participant(principal):
            raise NotFound("conversation not found")
        if locked.status != status:
            await conv_db.set_status(conn, conversation_id=conversation_id, status=status)
        conversation = await conv_db.get(conn, conversation_id=conversation_id)
    await cache.invalidate(conversation_id)
    return conversation
