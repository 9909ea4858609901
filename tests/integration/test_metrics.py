"""/metrics: every contract name, error series before the first error, route templates as labels,
socket.io outside the HTTP histogram, SLO thresholds as bucket edges. The registry is process-global,
so the tests assert on deltas between two scrapes."""

from __future__ import annotations

import uuid
from collections import defaultdict

from aiohttp.test_utils import TestClient
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support import new_pair

Client = TestClient  # type: ignore[type-arg]
Key = tuple[str, frozenset[tuple[str, str]]]
MESSAGES_ROUTE = "/messaging/conversations/{id}/messages"
CONTRACT = (
    "http_requests_total", "http_request_duration_seconds", "messages_total", "conversations_total",
    "websocket_connections_active", "socketio_connects_total", "socketio_disconnects_total",
    "socketio_events_total", "socketio_event_duration_seconds", "db_query_duration_seconds",
    "db_pool_connections", "db_pool_acquire_seconds", "redis_errors_total", "s3_requests_total",
    "event_loop_lag_seconds", "build_info",
)


async def families(client: Client) -> list[Metric]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    return list(text_string_to_metric_families(await resp.text()))


def samples(found: list[Metric]) -> dict[Key, float]:
    return {(s.name, frozenset(s.labels.items())): s.value for f in found for s in f.samples}


def key(name: str, **labels: str) -> Key:
    return name, frozenset(labels.items())


def delta(before: dict[Key, float], after: dict[Key, float], name: str, **labels: str) -> float:
    k = key(name, **labels)
    return after[k] - before.get(k, 0.0)


async def test_every_contract_metric_is_exported_before_any_traffic(client: Client) -> None:
    found = await families(client)
    names = {f.name for f in found} | {s.name for f in found for s in f.samples}
    missing = [name for name in CONTRACT if name not in names]
    assert not missing, missing
    assert any(n.startswith("process_") for n in names)
    assert any(n.startswith("python_gc_") for n in names)
    build = [s for f in found if f.name == "build_info" for s in f.samples]
    assert build and all(s.value == 1 and {"version", "commit"} <= set(s.labels) for s in build)


async def test_error_series_exist_before_the_first_error(client: Client) -> None:
    # present from startup; their values may be above 0 if an earlier test in this process made errors
    now = samples(await families(client))
    expected = [
        key("http_requests_total", method="POST", route=MESSAGES_ROUTE, status="500"),
        key("http_requests_total", method="POST", route=MESSAGES_ROUTE, status="503"),
        key("http_requests_total", method="GET", route="/messaging/conversations/{id}", status="429"),
        key("http_request_duration_seconds_count", method="POST", route="/messaging/uploads"),
        key("messages_total", type="text", status="failed"),
        key("messages_total", type="image", status="rejected"),
        key("socketio_connects_total", status="refused"),
        key("socketio_disconnects_total", reason="ping_timeout"),
        key("socketio_events_total", event="message:send", status="error"),
        key("redis_errors_total", operation="ratelimit"),
        key("s3_requests_total", operation="head_object", status="error"),
        key("db_query_duration_seconds_count", query="message_insert"),
    ]
    missing = [k for k in expected if k not in now]
    assert not missing, missing


async def test_traffic_grows_the_route_template_series(client: Client) -> None:
    before = samples(await families(client))
    pair = new_pair()
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    cid = (await resp.json())["id"]
    path = f"/messaging/conversations/{cid}/messages"
    for body in ("one", "two"):
        resp = await client.post(path, json={"client_message_id": uuid.uuid4().hex, "body": body}, headers=pair.c)
        assert resp.status == 201
    assert (await client.get(path, headers=pair.a)).status == 200
    found = await families(client)
    after = samples(found)
    assert delta(before, after, "http_requests_total", method="POST", route=MESSAGES_ROUTE, status="201") == 2
    assert delta(before, after, "http_requests_total", method="GET", route=MESSAGES_ROUTE, status="200") == 1
    assert delta(before, after, "http_request_duration_seconds_count", method="POST", route=MESSAGES_ROUTE) == 2
    assert delta(before, after, "messages_total", type="text", status="sent") == 2
    assert delta(before, after, "conversations_total") == 1
    assert delta(before, after, "db_query_duration_seconds_count", query="message_insert") == 2
    raw = [(name, v) for (name, labels) in after for _, v in labels
           if any(part.isdigit() for part in v.split("/")) and "/" in v]
    assert not raw, raw


async def test_the_socketio_path_stays_out_of_the_http_histogram(client: Client) -> None:
    before = samples(await families(client))
    opened = await client.get("/socket.io/?EIO=4&transport=polling")  # an engine.io handshake
    assert opened.status == 200 and '"sid"' in await opened.text()
    assert (await client.get("/no-such-route")).status == 404  # the control: counted as unmatched
    found = await families(client)
    after = samples(found)
    http = [s for f in found if f.name == "http_request_duration_seconds" for s in f.samples]
    assert not [s.labels for s in http if "socket.io" in s.labels.get("route", "")]
    assert delta(before, after, "http_request_duration_seconds_count", method="GET", route="unmatched") == 1
    assert delta(before, after, "http_requests_total", method="GET", route="unmatched", status="404") == 1


def bucket_edges(found: list[Metric], family: str) -> list[set[float]]:
    """The `le` edges of each series of a histogram family."""
    series: dict[frozenset[tuple[str, str]], set[float]] = defaultdict(set)
    for f in found:
        if f.name == family:
            for s in f.samples:
                if s.name.endswith("_bucket"):
                    rest = frozenset((k, v) for k, v in s.labels.items() if k != "le")
                    series[rest].add(float(s.labels["le"]))
    assert series, f"{family} has no series"
    return list(series.values())


async def test_histogram_buckets_include_the_slo_thresholds(client: Client) -> None:
    found = await families(client)
    thresholds = {
        "http_request_duration_seconds": {0.1, 0.25, 0.5, 1.0},
        "socketio_event_duration_seconds": {0.25},
        "db_query_duration_seconds": {0.05, 0.1},
        "db_pool_acquire_seconds": {0.05, 0.1},
    }
    for family, slo in thresholds.items():
        for edges in bucket_edges(found, family):
            assert slo <= edges, (family, sorted(edges))
