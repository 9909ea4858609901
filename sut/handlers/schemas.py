"""Request bodies and query strings as pydantic models: strict types, unknown fields refused."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from sut.services.uploads import MAX_IMAGE_BYTES

BIGINT_MAX = 2**63 - 1
Id = Annotated[StrictInt, Field(gt=0, le=BIGINT_MAX)]
ClientMessageId = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
ImageKey = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=r"^uploads/\d+/[a-f0-9]{32}\.[a-z]+$")]
SyncCursorText = Annotated[StrictStr, Field(min_length=1, max_length=200_000)]
MAX_BODY_CHARS = 4000
# what str.strip() removes, spelled out: the \s of JSON Schema's regexes (ECMA-262) is not Python's
_SPACE = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# SendMessage's body rule below as a regex, for the document: something besides whitespace, and no NUL
TEXT_PATTERN = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateConversation(Body):
    customer_id: Id | None = None
    artist_id: Id | None = None
    booking_id: Id | None = None


class SendMessage(Body):
    # documents _one_content: a null body or image_key counts as absent
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": [name], "properties": {name: {"type": "string"}}} for name in ("body", "image_key")]})

    client_message_id: ClientMessageId
    body: Annotated[StrictStr, Field(min_length=1, max_length=MAX_BODY_CHARS,
                                     json_schema_extra={"pattern": TEXT_PATTERN})] | None = None
    image_key: ImageKey | None = None
    booking_id: Id | None = None

    @model_validator(mode="after")
    def _one_content(self) -> SendMessage:
        if (self.body is None) == (self.image_key is None):
            raise ValueError("exactly one of body or image_key is required")
        if self.body is not None:
            if not self.body.strip():
                raise ValueError("body must not be blank")
            if "\x00" in self.body:
                raise ValueError("body must not contain NUL characters")
        return self


class MarkRead(Body):
    up_to_message_id: Id | None = None


class CreateUpload(Body):
    content_type: Literal["image/jpeg", "image/png", "image/webp", "image/heic"]
    size: Annotated[StrictInt, Field(gt=0, le=MAX_IMAGE_BYTES)]


class InboxQuery(Body):
    status: Literal["active", "archived", "all"] = "active"
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class HistoryQuery(Body):
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    before_id: Annotated[int, Field(gt=0, le=BIGINT_MAX)] | None = None
    after_id: Annotated[int, Field(ge=0, le=BIGINT_MAX)] | None = None
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _one_start(self) -> HistoryQuery:
        given = [n for n in ("before_id", "after_id", "cursor") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"use only one of before_id, after_id, cursor (got {', '.join(given)})")
        return self


class SocketSend(SendMessage):
    conversation_id: Id


class SocketRead(MarkRead):
    conversation_id: Id


class SocketTyping(Body):
    conversation_id: Id


class SocketSync(Body):
    after_id: Annotated[StrictInt, Field(ge=0, le=BIGINT_MAX)] | SyncCursorText
    limit: Annotated[StrictInt, Field(ge=1, le=500)] = 100
