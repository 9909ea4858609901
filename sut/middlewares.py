"""Cross-cutting request handling: correlation ids, access logs and metrics, security headers, CORS,
error mapping, authentication and per-user rate limits."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from sut import keys, logs, metrics
from sut.admission import RETRY_AFTER, Admission, ConnectBucket
from sut.auth import AuthError, bearer, decode_token
from sut.domain import DomainError, Principal
from sut.handlers.errors import ApiError, error_response, from_domain, from_http_exception
from sut.ratelimit import RateLimiter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("sut.access")
errlog = logging.getLogger("sut.errors")

CORRELATION_HEADER = "X-Correlation-Id"
_CID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_=-]*\.[A-Za-z0-9_=-]*\.[A-Za-z0-9_=-]*")
UNMATCHED_ROUTE = "unmatched"
SOCKETIO_PREFIX = "/socket.io"
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
ADMISSION: web.AppKey[Admission] = web.AppKey("admission", Admission)
CONNECT_BUCKET: web.AppKey[ConnectBucket] = web.AppKey("connect_bucket", ConnectBucket)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Strict-Transport-Security": "max-age=15552000; includeSubDomains",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';"
        "frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';"
        "script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"
    ),
}
CORS_METHODS = "GET,POST,OPTIONS"
CORS_HEADERS = "Authorization,Content-Type,X-Correlation-Id"


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def method_label(request: web.Request) -> str:
    """The method, or OTHER: a client inventing methods must not create series without bound."""
    return request.method if request.method in _METHODS else "OTHER"


def route_label(request: web.Request) -> str:
    """The route template (never the raw path), so label values stay bounded."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def logged_path(request: web.Request) -> str:
    """The path for the logs, with anything shaped like a JWT masked: a client that pastes its token into a URL
    must not hand it to everyone who reads the logs."""
    return _JWT_RE.sub("<jwt>", request.path)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Correlation id in and out, one access log line, and the HTTP metrics (socket.io excluded)."""
    incoming = request.headers.get(CORRELATION_HEADER, "")
    cid = incoming if _CID_RE.match(incoming) else uuid.uuid4().hex
    token = logs.correlation_id.set(cid)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:  # a websocket has sent its headers already
            response.headers[CORRELATION_HEADER] = cid
        return response
    finally:
        elapsed = time.perf_counter() - start
        if not request.path.startswith(SOCKETIO_PREFIX):
            route, method = route_label(request), method_label(request)
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(elapsed)
            log.info("request", extra={"method": method, "route": route, "path": logged_path(request),
                                       "status": status, "duration_ms": round(elapsed * 1000, 2)})
        logs.correlation_id.reset(token)


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every response; CORS only for the configured origin."""
    allowed = request.app[keys.SETTINGS].cors_origin
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if origin != allowed:
            response: web.StreamResponse = error_response(403, "cors_forbidden", "origin not allowed")
        else:
            response = web.Response(status=204, headers={
                "Access-Control-Allow-Methods": CORS_METHODS, "Access-Control-Allow-Headers": CORS_HEADERS,
                "Access-Control-Max-Age": "600"})
    else:
        response = await handler(request)
    if response.prepared:  # a websocket has sent its headers already
        return response
    response.headers.update(SECURITY_HEADERS)
    if origin is not None and origin == allowed:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = "X-Correlation-Id,Retry-After"
        response.headers["Vary"] = "Origin"
    return response


CLIENT_CLOSED = 499

# OperatorInterventionError: query cancelled, server shutting down or crashed, not accepting connections yet
UNAVAILABLE_ERRORS = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.OperatorInterventionError,
                      asyncpg.TooManyConnectionsError, OSError, asyncio.TimeoutError)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every failure to a JSON error; dependency outages become 503 with Retry-After."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except DomainError as exc:
        return from_domain(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc)
    except UNAVAILABLE_ERRORS as exc:
        if isinstance(exc, ConnectionResetError) and (request.transport is None or request.transport.is_closing()):
            # the client went away (a load balancer gave up on a slow handshake): no outage, and nobody to answer;
            # counted as nginx's 499 (client closed request), and aiohttp drops the write quietly
            return web.Response(status=CLIENT_CLOSED)
        errlog.warning("dependency unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
        return error_response(503, "unavailable", "a dependency is unavailable; retry later",
                              {"Retry-After": "1"})
    except Exception:
        errlog.exception("unhandled error", extra={"path": logged_path(request)})
        return error_response(500, "internal", "internal error")


@web.middleware
async def admit_connects(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A new socket.io connection (an engine.io handshake: no `sid` yet) past the instance's connect rate gets 503 +
    Retry-After at once; the sessions it holds are never refused here."""
    if not request.path.startswith(SOCKETIO_PREFIX) or "sid" in request.query:
        return await handler(request)
    wait = request.app[CONNECT_BUCKET].take()
    if wait:
        metrics.SIO_CONNECTS.labels("refused").inc()
        metrics.SHED.labels("connect").inc()
        seconds = ConnectBucket.retry_after(wait)
        return error_response(503, "overloaded", "this instance admits no more new connections this second; "
                                                 "retry later", {"Retry-After": str(seconds)})
    return await handler(request)


@web.middleware
async def shed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Over the instance's cap of work in flight, /messaging requests get 503 + Retry-After at once."""
    if not request.path.startswith("/messaging"):
        return await handler(request)
    admission = request.app[ADMISSION]
    if not admission.enter("http"):
        return error_response(503, "overloaded", "the service is overloaded; retry later",
                              {"Retry-After": str(RETRY_AFTER)})
    try:
        return await handler(request)
    finally:
        admission.leave()


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer JWT on every /messaging route, then the caller's token bucket."""
    if not request.path.startswith("/messaging"):
        return await handler(request)
    if request.match_info.route.resource is None:
        return await handler(request)  # 404/405 from the router: nothing to protect
    try:
        principal = decode_token(request.app[keys.SETTINGS].jwt_secret, bearer(request.headers.get("Authorization")))
    except AuthError as exc:
        return error_response(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
    decision = await request.app[RATE_LIMITER].check(principal.user_id)
    if not decision.allowed:
        retry = str(max(1, math.ceil(decision.retry_after)))
        return error_response(429, "rate_limited", "too many requests; slow down", {"Retry-After": retry})
    request[PRINCIPAL] = principal
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]
