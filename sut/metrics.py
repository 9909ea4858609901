"""Every Prometheus metric the service exports, declared in one place (names are a contract)."""

from __future__ import annotations

import gc

from prometheus_client import Counter, Gauge, Histogram

# The latency SLO thresholds a bucket edge must hold exactly (seconds): the scenarios' (scenarios/*.yaml, judged on
# the client's histograms, and set beside the service's) and the alerts' (HTTP 0.25 s, DB 0.05/0.1 s, lag 0.1 s).
# tests/unit/test_alerts.py checks every threshold in use is here and is an edge.
SLO_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.0)
# ISO 3 preferred numbers R10: ten per decade, each about 1.26 times the last (1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3,
# 8), so 1, 2, 2.5 and 5 are edges. A quantile read from such a histogram is known to within its bucket: at most
# 28 % wide (1.25 -> 1.6), where the load generator's HDR histograms resolve 1 %.
R10 = (1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0)


def log_buckets(lowest: float, highest: float) -> tuple[float, ...]:
    """R10 edges from `lowest` to `highest` (both powers of ten times an R10 number) and every SLO threshold
    between them, ascending."""
    edges = {round(m * 10.0 ** e, 9) for e in range(-6, 4) for m in R10}
    edges |= set(SLO_THRESHOLDS)
    return tuple(sorted(e for e in edges if lowest <= e <= highest))


# The two set beside the client's latencies (requests, acks) are log-spaced from 1 ms to 10 s: 43 edges. The others,
# judged only at their alert thresholds, keep 1-2.5-5 steps.
HTTP_BUCKETS = log_buckets(0.001, 10.0)
EVENT_BUCKETS = HTTP_BUCKETS
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "HTTP request latency by route template", ["method", "route"],
    buckets=HTTP_BUCKETS,
)
MESSAGES = Counter("messages_total", "Message sends by outcome", ["type", "status"])
CONVERSATIONS = Counter("conversations_total", "Conversations created")
WS_CONNECTIONS = Gauge("websocket_connections_active", "Open socket.io connections on this instance")
SIO_CONNECTS = Counter("socketio_connects_total", "socket.io connection attempts", ["status"])
SIO_DISCONNECTS = Counter("socketio_disconnects_total", "socket.io disconnections", ["reason"])
SIO_EVENTS = Counter("socketio_events_total", "socket.io events handled", ["event", "status"])
SIO_EVENT_DURATION = Histogram(
    "socketio_event_duration_seconds", "socket.io event handling time, until the ack", ["event"],
    buckets=EVENT_BUCKETS,
)
DB_QUERY = Histogram("db_query_duration_seconds", "Database query latency", ["query"], buckets=DB_BUCKETS)
DB_POOL = Gauge("db_pool_connections", "Database pool connections", ["state"])
DB_POOL_ACQUIRE = Histogram("db_pool_acquire_seconds", "Time waiting for a pool connection", buckets=DB_BUCKETS)
SEND_BATCH_SIZE = Histogram("send_batch_size", "Sends stored per group-commit statement (one per flush)",
                            buckets=BATCH_BUCKETS)
SEND_BATCH_FALLBACKS = Counter("send_batch_fallbacks_total",
                               "Group-commit batches whose statement failed and whose sends were retried one by one")
FANOUT_BATCH = Histogram("socketio_publish_batch_size", "socket.io emits per Redis publish of the fan-out",
                         buckets=BATCH_BUCKETS)
REDIS_ERRORS = Counter("redis_errors_total", "Redis operations that failed", ["operation"])
S3_REQUESTS = Counter("s3_requests_total", "S3 requests", ["operation", "status"])
EVENT_LOOP_LAG = Histogram("event_loop_lag_seconds", "How late the event loop ran a timer", buckets=LAG_BUCKETS)
GC_PAUSE = Histogram("gc_pause_seconds", "How long each cyclic garbage collection stopped the process, by the "
                     "oldest generation it collected", ["generation"],
                     buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
GC_FROZEN = Gauge("gc_frozen_objects", "Objects frozen out of the collector's reach now (GC_FREEZE: what survived "
                  "the last full collection and is still alive; 0 right after a thaw)")
GC_FROZEN.set_function(gc.get_freeze_count)    # frozen objects freed by their reference counts leave the count
SHED = Counter("requests_shed_total", "Requests and socket.io events refused at once because the instance held as "
               "many as MAX_IN_FLIGHT, or connections refused past MAX_CONNECTIONS or the connect rate "
               "(CONNECT_ADMISSION_PER_SECOND)", ["transport"])
IN_FLIGHT = Gauge("requests_in_flight", "REST requests and socket.io events being handled on this instance")
FD_LIMIT = Gauge("fd_limit", "The process's open-file limit (RLIMIT_NOFILE): soft (what it may open, raised to hard "
                 "at start) and hard", ["kind"])
BUILD_INFO = Gauge("build_info", "Always 1; the service's version and commit", ["version", "commit"])

MESSAGE_TYPES = ("text", "image")
MESSAGE_STATUSES = ("sent", "duplicate", "rejected", "failed")
SOCKETIO_EVENTS = ("message:send", "conversation:read", "typing", "sync")
DISCONNECT_REASONS = ("client", "transport_error", "ping_timeout", "server_shutdown")
REDIS_OPERATIONS = ("ratelimit", "cache_get", "cache_set", "cache_delete", "health", "publish", "subscribe")
S3_OPERATIONS = ("presign_put", "presign_get", "head_object", "head_bucket")
DB_QUERIES = (
    "conversation_get", "conversation_ref", "conversation_by_pair", "message_newest",
    "conversation_lock", "conversation_create",
    "conversation_mark_read", "conversation_set_status", "inbox", "unread_count", "message_history",
    "message_by_client_id", "message_insert", "message_exists", "user_upsert", "retention_delete", "health",
    "sync_page", "message_insert_batch",
)
SHED_TRANSPORTS = ("http", "socketio", "connect")
HTTP_STATUSES_PREINIT = ("200", "201", "400", "401", "403", "404", "409", "413", "422", "429", "500", "503")


def preinit(routes: list[tuple[str, str]]) -> None:
    """Create label sets up front so error series exist (at 0) before the first error."""
    for method, route in routes:
        HTTP_DURATION.labels(method, route)
        for status in HTTP_STATUSES_PREINIT:
            HTTP_REQUESTS.labels(method, route, status)
    for kind in MESSAGE_TYPES:
        for outcome in MESSAGE_STATUSES:
            MESSAGES.labels(kind, outcome)
    for state in ("accepted", "refused"):
        SIO_CONNECTS.labels(state)
    for reason in DISCONNECT_REASONS:
        SIO_DISCONNECTS.labels(reason)
    for event in SOCKETIO_EVENTS:
        SIO_EVENT_DURATION.labels(event)
        for outcome in ("ok", "error"):
            SIO_EVENTS.labels(event, outcome)
    for query in DB_QUERIES:
        DB_QUERY.labels(query)
    for state in ("in_use", "idle", "max"):
        DB_POOL.labels(state)
    for op in REDIS_OPERATIONS:
        REDIS_ERRORS.labels(op)
    for transport in SHED_TRANSPORTS:
        SHED.labels(transport)
    for op in S3_OPERATIONS:
        for outcome in ("ok", "error"):
            S3_REQUESTS.labels(op, outcome)
