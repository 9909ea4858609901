"""What every response shares: security headers, CORS for the one configured origin, correlation ids,
and the per-user rate limit."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from sut import middlewares
from sut.app import create_app
from sut.settings import Settings
from tests.support import auth, new_id, new_pair

Client = TestClient[Request, Application]
AiohttpClient = Callable[[Application], Awaitable[Client]]
ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.com"
HEX32 = re.compile(r"^[0-9a-f]{32}$")

# (method, path, whether to send a valid token, the status it gets): successes and errors alike
RESPONSES = [
    ("GET", "/messaging/unread-count", True, 200),
    ("GET", "/messaging/conversations", True, 200),
    ("GET", "/openapi.json", False, 200),
    ("GET", "/messaging/unread-count", False, 401),
    ("GET", "/messaging/conversations/abc", True, 400),
    ("GET", f"/messaging/conversations/{2**63 - 1}", True, 404),
    ("GET", "/messaging/conversations?limit=0", True, 422),
    ("GET", "/nope", False, 404),
    ("DELETE", "/messaging/unread-count", True, 405),
]
RESPONSE_IDS = [f"{m} {p} {s}" for m, p, _, s in RESPONSES]


def caller() -> dict[str, str]:
    return auth(new_id(), "customer")


@pytest.mark.parametrize(("method", "path", "with_token", "status"), RESPONSES, ids=RESPONSE_IDS)
async def test_security_headers_on_every_response(
        client: Client, method: str, path: str, with_token: bool, status: int) -> None:
    resp = await client.request(method, path, headers=caller() if with_token else {})
    assert resp.status == status
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] in ("DENY", "SAMEORIGIN")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "object-src 'none'" in csp and "frame-ancestors" in csp


@pytest.mark.parametrize(("with_token", "status"), [(True, 200), (False, 401)])
async def test_cors_answers_the_configured_origin(
        client: Client, settings: Settings, with_token: bool, status: int) -> None:
    assert settings.cors_origin == ALLOWED
    headers = {"Origin": ALLOWED, **(caller() if with_token else {})}
    resp = await client.get("/messaging/unread-count", headers=headers)
    assert resp.status == status
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in resp.headers.get("Vary", "")


@pytest.mark.parametrize("origin", [OTHER, "null", "https://app.example.com.evil.com", "http://app.example.com"])
async def test_cors_ignores_any_other_origin(client: Client, origin: str) -> None:
    resp = await client.get("/messaging/unread-count", headers={"Origin": origin, **caller()})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_no_cors_headers_without_an_origin(client: Client) -> None:
    resp = await client.get("/messaging/unread-count", headers=caller())
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.mark.parametrize("path", ["/messaging/conversations", "/messaging/conversations/1/messages"])
async def test_preflight_from_the_allowed_origin_is_204_without_a_token(client: Client, path: str) -> None:
    resp = await client.options(path, headers=preflight(ALLOWED))
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods
    allowed_headers = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("origin", [OTHER, None])
async def test_preflight_from_another_origin_is_403(client: Client, origin: str | None) -> None:
    headers = preflight(origin or ALLOWED)
    if origin is None:
        del headers["Origin"]
    resp = await client.options("/messaging/conversations", headers=headers)
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Methods" not in resp.headers
    error = (await resp.json())["error"]
    assert error["code"] and error["message"]


@pytest.mark.parametrize(("path", "with_token"), [("/messaging/unread-count", True), ("/messaging/unread-count", False),
                                                  ("/nope", False)])
async def test_a_valid_correlation_id_is_echoed(client: Client, path: str, with_token: bool) -> None:
    cid = "req-1234.abc_DEF"
    headers = {"X-Correlation-Id": cid, **(caller() if with_token else {})}
    resp = await client.get(path, headers=headers)
    assert resp.headers["X-Correlation-Id"] == cid


@pytest.mark.parametrize("incoming", [None, "", "has spaces", "x" * 129, "semi;colon", "<script>"])
async def test_a_missing_or_invalid_correlation_id_is_replaced(client: Client, incoming: str | None) -> None:
    headers = caller() if incoming is None else {"X-Correlation-Id": incoming, **caller()}
    first = await client.get("/messaging/unread-count", headers=headers)
    second = await client.get("/messaging/unread-count", headers=headers)
    assert first.status == second.status == 200
    generated = first.headers["X-Correlation-Id"]
    assert HEX32.match(generated) and generated != incoming
    assert second.headers["X-Correlation-Id"] != generated


async def limited_client(aiohttp_client: AiohttpClient, settings: Settings, **limits: Any) -> Client:
    return await aiohttp_client(create_app(dataclasses.replace(settings, **limits)))


async def test_the_fourth_quick_request_of_one_user_gets_429_and_others_are_unaffected(
        aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await limited_client(aiohttp_client, settings, rate_limit_per_second=1, rate_limit_burst=3)
    busy, other = new_pair(), new_pair()
    statuses = [(await client.get("/messaging/unread-count", headers=busy.c)).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp = await client.get("/messaging/unread-count", headers=busy.c)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"]["code"] == "rate_limited"
    assert (await client.get("/messaging/unread-count", headers=other.c)).status == 200
    assert (await client.get("/messaging/unread-count", headers=busy.a)).status == 200


async def test_a_rate_limited_write_stores_nothing(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await limited_client(aiohttp_client, settings, rate_limit_per_second=1, rate_limit_burst=3)
    pair = new_pair()
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    cid = (await resp.json())["id"]
    statuses = []
    for i in range(3):
        resp = await client.post(f"/messaging/conversations/{cid}/messages",
                                 json={"client_message_id": f"k{i}", "body": "hi"}, headers=pair.c)
        statuses.append(resp.status)
    assert statuses == [201, 201, 429]
    history = await client.get(f"/messaging/conversations/{cid}/messages", headers=pair.a)
    assert [m["client_message_id"] for m in (await history.json())["items"]] == ["k1", "k0"]


async def test_zero_per_second_disables_the_limit(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await limited_client(aiohttp_client, settings, rate_limit_per_second=0, rate_limit_burst=3)
    headers = caller()
    statuses = [(await client.get("/messaging/unread-count", headers=headers)).status for _ in range(10)]
    assert statuses == [200] * 10


async def test_unauthenticated_routes_are_not_rate_limited(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await limited_client(aiohttp_client, settings, rate_limit_per_second=1, rate_limit_burst=1)
    statuses = [(await client.get("/openapi.json")).status for _ in range(5)]
    assert statuses == [200] * 5


async def test_a_client_gone_before_its_answer_is_no_dependency_outage(aiohttp_client: AiohttpClient,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A reset from a client that closed (nginx giving up on a slow handshake) is dropped quietly; the same error
    with the client still there is still an unavailable dependency, 503."""
    async def gone(request: Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        raise ClientConnectionResetError("Cannot write to closing transport")

    async def reset(request: Request) -> web.StreamResponse:
        raise ConnectionResetError("a dependency's socket was reset")

    async def moved(request: Request) -> web.StreamResponse:
        raise web.HTTPFound("/reset")

    app = Application(middlewares=[middlewares.errors])
    app.router.add_get("/gone", gone)
    app.router.add_get("/reset", reset)
    app.router.add_get("/moved", moved)
    client = await aiohttp_client(app)
    redirect = await client.get("/moved", allow_redirects=False)   # a redirect still passes through as it is
    assert redirect.status == 302 and redirect.headers["Location"] == "/reset"
    with pytest.raises(aiohttp.ClientError):
        await client.get("/gone")
    assert not [r for r in caplog.records if r.getMessage() == "dependency unavailable" or r.levelname == "ERROR"]
    response = await client.get("/reset")
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert [r for r in caplog.records if r.getMessage() == "dependency unavailable"]
