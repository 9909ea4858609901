"""/openapi.json: the same routes as the app in both directions, a valid OpenAPI document, and the 401
every /messaging operation answers without a token."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from sut.app import route_templates

Client = TestClient  # type: ignore[type-arg]
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


async def openapi(client: Client) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    document: dict[str, Any] = await resp.json()
    return document


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in METHODS}


async def test_every_route_is_documented_and_every_documented_path_is_a_route(client: Client) -> None:
    routes = set(route_templates(client.app))
    docs = documented(await openapi(client))
    assert routes - docs == set(), "routes missing from the document"
    assert docs - routes == set(), "documented operations the app does not serve"


async def test_the_document_is_valid_openapi(client: Client) -> None:
    validate(await openapi(client))


async def test_every_messaging_operation_documents_401_and_answers_it(client: Client) -> None:
    document = await openapi(client)
    operations = sorted(op for op in documented(document) if op[1].startswith("/messaging"))
    assert operations
    for method, path in operations:
        assert "401" in document["paths"][path][method.lower()]["responses"], (method, path)
        resp = await client.request(method, path.replace("{id}", "1"), json={})
        assert resp.status == 401, (method, path, resp.status)
        assert (await resp.json())["error"]["code"] == "unauthorized"
