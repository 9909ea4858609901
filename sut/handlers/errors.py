"""Error responses: every failure as {"error": {"code", "message"}} with the right status."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from sut.domain import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable

_STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, Invalid: 422, Unavailable: 503}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


class ApiError(Exception):
    """Raised by handlers for a 4xx decided at the transport (bad JSON, bad query, bad cursor)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.headers)


def from_domain(exc: DomainError) -> web.Response:
    status = _STATUS.get(type(exc), 400)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
    return error_response(status, exc.code, exc.message, headers)


def describe_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)[:1000]


_HTTP_CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
    413: "payload_too_large", 415: "unsupported_media_type", 429: "rate_limited",
}


def from_http_exception(exc: web.HTTPException) -> web.Response:
    headers: dict[str, Any] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ",".join(sorted(exc.allowed_methods))
    message = exc.reason if exc.status != 404 else "no such route"
    if exc.text and exc.status == 413:
        message = exc.text.strip()
    return error_response(exc.status, _HTTP_CODES.get(exc.status, "error"), message, headers or None)
