"""The messaging domain: immutable records and the errors services raise.

Messages and conversations are NamedTuples, the rest frozen dataclasses: an inbox page builds a few dozen of each
per request, and a frozen dataclass's __init__ (one object.__setattr__ per field) cost 4x a NamedTuple's."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    ARTIST = "artist"


@dataclass(frozen=True)
class Principal:
    """The caller, as its token says."""

    user_id: int
    role: Role


class Message(NamedTuple):
    id: int
    conversation_id: int
    sender_id: int
    kind: str
    body: str | None
    image_key: str | None
    booking_id: int | None
    client_message_id: str
    created_at: datetime


class Conversation(NamedTuple):
    id: int
    customer_id: int
    artist_id: int
    booking_id: int | None
    status: str
    last_message_at: datetime
    unread_count_customer: int
    unread_count_artist: int
    last_read_id_customer: int
    last_read_id_artist: int
    created_at: datetime
    archived_at: datetime | None
    last_message: Message | None = None

    def is_participant(self, principal: Principal) -> bool:
        """The caller is this conversation's customer (with a customer token) or artist (artist token)."""
        own = self.customer_id if principal.role is Role.CUSTOMER else self.artist_id
        return principal.user_id == own

    def last_read_id_for(self, principal: Principal) -> int:
        return self.last_read_id_customer if principal.role is Role.CUSTOMER else self.last_read_id_artist


@dataclass(frozen=True)
class ConversationRef:
    """What access checks need, cheap enough to cache: the participants and the status."""

    id: int
    customer_id: int
    artist_id: int
    status: str

    def is_participant(self, principal: Principal) -> bool:
        own = self.customer_id if principal.role is Role.CUSTOMER else self.artist_id
        return principal.user_id == own


@dataclass(frozen=True)
class Upload:
    image_key: str
    upload_url: str
    content_type: str
    size: int
    expires_at: datetime


class DomainError(Exception):
    """Base of the errors a service raises; handlers map each to a 4xx (or 503)."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class Conflict(DomainError):
    code = "conflict"


class Invalid(DomainError):
    code = "invalid"


class Unavailable(DomainError):
    """A dependency (database, storage) cannot serve the request now; retry later."""

    code = "unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
