"""S3 image storage: presigned PUTs bound to type and length, presigned GETs, HEAD checks."""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sut import metrics


class StorageError(Exception):
    """S3 could not be reached or refused the request."""


class Storage:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    async def presign_put(self, key: str, *, content_type: str, size: int, ttl: int) -> str:
        # ContentType and ContentLength become signed headers: a PUT with another type or size fails.
        url: str = await self._call(
            "presign_put", self._client.generate_presigned_url, "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size},
            ExpiresIn=ttl, HttpMethod="PUT",
        )
        return url

    async def presign_get(self, key: str, *, ttl: int) -> str:
        url: str = await self._call(
            "presign_get", self._client.generate_presigned_url, "get_object",
            Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl,
        )
        return url

    async def exists(self, key: str) -> bool:
        try:
            await self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                metrics.S3_REQUESTS.labels("head_object", "ok").inc()
                return False
            metrics.S3_REQUESTS.labels("head_object", "error").inc()
            raise StorageError(str(exc)) from exc
        except (BotoCoreError, OSError) as exc:
            metrics.S3_REQUESTS.labels("head_object", "error").inc()
            raise StorageError(str(exc)) from exc
        metrics.S3_REQUESTS.labels("head_object", "ok").inc()
        return True

    async def check_bucket(self) -> None:
        """head_bucket: needs only s3:ListBucket on this bucket, not ListAllMyBuckets."""
        await self._call("head_bucket", self._client.head_bucket, Bucket=self.bucket)

    async def _call(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await fn(*args, **kwargs)
        except (BotoCoreError, ClientError, OSError) as exc:
            metrics.S3_REQUESTS.labels(operation, "error").inc()
            raise StorageError(str(exc)) from exc
        metrics.S3_REQUESTS.labels(operation, "ok").inc()
        return result


def client_config(timeout: float = 2.0) -> Config:
    return Config(
        signature_version="s3v4", connect_timeout=timeout, read_timeout=timeout,
        retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
    )
