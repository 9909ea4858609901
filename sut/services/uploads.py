"""Presigned image uploads: an allow-list of types, a size cap, a key under the sender's prefix."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sut.domain import Principal, Unavailable, Upload
from sut.services.messages import image_key_prefix
from sut.storage import Storage, StorageError

IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heic": "heic"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024


async def presign(storage: Storage, principal: Principal, *, content_type: str, size: int, ttl: int) -> Upload:
    """A PUT URL whose signature binds Content-Type and Content-Length; types and size checked upstream."""
    key = f"{image_key_prefix(principal.user_id)}{uuid.uuid4().hex}.{IMAGE_TYPES[content_type]}"
    try:
        url = await storage.presign_put(key, content_type=content_type, size=size, ttl=ttl)
    except StorageError:
        raise Unavailable("image storage is unavailable", retry_after=2) from None
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    return Upload(image_key=key, upload_url=url, content_type=content_type, size=size, expires_at=expires)
