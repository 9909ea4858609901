"""/openapi.json: the same routes as the app in both directions, a valid OpenAPI document, and the 401
every /messaging operation answers without a token."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import ValidationError

from sut.app import route_templates
from sut.handlers import schemas
from sut.openapi import document
from tests.support import new_pair

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


async def test_a_request_body_is_required_exactly_where_the_document_says(client: Client) -> None:
    """Mark-read takes no body (read up to the newest), so its body is documented optional; the others refuse none."""
    pair = new_pair()
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    conversation_id = (await resp.json())["id"]
    operations = [(method, path, op) for path, item in (await openapi(client))["paths"].items()
                  for method, op in item.items() if "requestBody" in op]
    assert any(not op["requestBody"]["required"] for _, _, op in operations)
    for method, path, op in operations:
        resp = await client.request(method, path.replace("{id}", str(conversation_id)), headers=pair.c)
        assert (resp.status == 422) == op["requestBody"]["required"], (method, path, resp.status)


async def test_no_query_parameter_is_documented_as_null(client: Client) -> None:
    """A query parameter is absent or a string: the models' `| None` must not document a null."""
    document = await openapi(client)
    parameters = [p for item in document["paths"].values() for op in item.values()
                  for p in op.get("parameters", []) if p["in"] == "query"]
    assert parameters
    for parameter in parameters:
        assert not Draft202012Validator(parameter["schema"]).is_valid(None), parameter


KEY = f"uploads/1/{'a' * 32}.png"
SEND_BODIES = [
    ({"body": "hi"}, True), ({"image_key": KEY}, True), ({"body": "hi", "image_key": None}, True),
    ({"body": None, "image_key": KEY}, True), ({"body": "\ufeff"}, True), ({"body": "hi", "image_key": KEY}, False),
    ({}, False), ({"body": None, "image_key": None}, False), ({"body": " \t\n\u3000\x1c\x85"}, False),
    ({"body": "a\x00b"}, False),
]


@pytest.mark.parametrize(("fields", "valid"), SEND_BODIES, ids=[repr(f) for f, _ in SEND_BODIES])
def test_the_documented_send_body_takes_what_the_service_takes(fields: dict[str, Any], valid: bool) -> None:
    """Exactly one of body and image_key, a body not blank and without NUL: in the document as in the model."""
    body = {"client_message_id": "k", **fields}
    assert Draft202012Validator(document()["components"]["schemas"]["SendMessage"]).is_valid(body) is valid
    try:
        schemas.SendMessage.model_validate(body)
    except ValidationError:
        assert not valid
    else:
        assert valid


def test_the_documented_body_pattern_is_the_blank_and_nul_rule_for_every_character() -> None:
    pattern = re.compile(schemas.TEXT_PATTERN)
    for code in range(0x110000):
        if not 0xD800 <= code <= 0xDFFF:
            char = chr(code)
            assert (pattern.search(char) is not None) == (char.strip() != "" and char != "\x00"), hex(code)


async def test_a_request_line_too_long_for_the_http_parser_gets_the_documented_plain_400(client: Client) -> None:
    resp = await client.get(f"/messaging/conversations?cursor={'A' * 9000}", headers=new_pair().c)
    assert resp.status == 400
    assert resp.content_type in document()["paths"]["/messaging/conversations"]["get"]["responses"]["400"]["content"]
