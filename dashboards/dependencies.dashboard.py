"""Dependencies: the database pool and queries, Redis and S3 as the service sees them, and PostgreSQL and Redis
as their exporters see them (jobs `postgres` and `redis`)."""

from dashboards.style import (
    RATE,
    SEL,
    Q,
    board,
    gauge,
    instance_variable,
    job_variable,
    quantile,
    row,
    runbook,
    stat,
    timeseries,
)

DB = f'{SEL},query!="retention_delete"'

panels = [
    row("Database pool"),
    gauge("Pool in use", "Share of each instance's pool connections in use (the highest instance).",
          "percentunit", [Q(f'max(db_pool_connections{{{SEL},state="in_use"}} / ignoring (state) '
                            f'db_pool_connections{{{SEL},state="max"}})', "in use")],
          steps=((None, "green"), (0.7, "orange"), (0.9, "red"))),
    timeseries("Pool connections", "Connections per instance: in use, idle, and the pool's maximum.", "short",
               [Q(f"db_pool_connections{{{SEL}}}", "{{instance}} {{state}}")], w=9, h=6),
    timeseries("Pool acquire wait p99", "99th percentile of the time a request waits for a pool connection.", "s",
               [Q(quantile(0.99, "db_pool_acquire_seconds", SEL, "instance"), "{{instance}}")], w=9, h=6),
    row("Queries"),
    timeseries("Query p99 by query", "99th percentile of each SQL statement's duration (fixed query names).", "s",
               [Q(quantile(0.99, "db_query_duration_seconds", SEL, "query"), "{{query}}")], w=24, log=True,
               min_value=None),
    timeseries("Queries per second", "Statements executed per second, by query name.", "ops",
               [Q(f"sum by (query) (rate(db_query_duration_seconds_count{{{SEL}}}{RATE}))", "{{query}}")],
               stack=True),
    timeseries("Queries slower than 100 ms", "Share of each query's executions slower than 100 ms "
               "(what DatabaseHighLatency reads; retention_delete excluded).", "percentunit",
               [Q(f"(sum by (query) (rate(db_query_duration_seconds_count{{{DB}}}{RATE})) - sum by (query) "
                  f'(rate(db_query_duration_seconds_bucket{{{DB},le="0.1"}}{RATE}))) / sum by (query) '
                  f"(rate(db_query_duration_seconds_count{{{DB}}}{RATE}))", "{{query}}")]),
    row("Redis and S3 (the service's view)"),
    timeseries("Redis errors", "Redis operations that failed, per second, by operation (publish: a fan-out "
               "that timed out; clients catch up by sync).", "ops",
               [Q(f"sum by (operation) (rate(redis_errors_total{{{SEL}}}{RATE}))", "{{operation}}")]),
    timeseries("S3 requests", "S3 requests per second by operation and outcome.", "ops",
               [Q(f"sum by (operation, status) (rate(s3_requests_total{{{SEL}}}{RATE}))",
                  "{{operation}} {{status}}")]),
    row("PostgreSQL (postgres_exporter)"),
    stat("PostgreSQL up", "1 when the exporter reaches PostgreSQL.", "none",
         [Q('min(pg_up{job="postgres"})', "up")], steps=((None, "red"), (1, "green")), graph=False),
    timeseries("Backends by state", "PostgreSQL backends by state, all databases.", "short",
               [Q('sum by (state) (pg_stat_activity_count{job="postgres"})', "{{state}}")], w=9, h=6),
    timeseries("Transactions", "Commits and rollbacks per second, all databases.", "ops",
               [Q(f'sum(rate(pg_stat_database_xact_commit{{job="postgres"}}{RATE}))', "commits"),
                Q(f'sum(rate(pg_stat_database_xact_rollback{{job="postgres"}}{RATE}))', "rollbacks")], w=9, h=6),
    row("Redis (redis_exporter)"),
    stat("Redis up", "1 when the exporter reaches Redis.", "none",
         [Q('min(redis_up{job="redis"})', "up")], steps=((None, "red"), (1, "green")), graph=False),
    timeseries("Redis clients", "Clients connected to Redis (every service instance holds a few).", "short",
               [Q('sum(redis_connected_clients{job="redis"})', "clients")], w=9, h=6),
    timeseries("Redis commands", "Commands processed per second.", "ops",
               [Q(f'sum(rate(redis_commands_processed_total{{job="redis"}}{RATE}))', "commands")], w=9, h=6),
    timeseries("Redis memory", "Memory Redis uses.", "bytes",
               [Q('sum(redis_memory_used_bytes{job="redis"})', "used")], w=24, h=6),
]

dashboard = board(
    title="Chat service / Dependencies", uid="chat-dependencies",
    description="PostgreSQL, Redis and S3 as the chat service and the exporters see them.",
    panels=panels, variables=[job_variable("sut", "build_info"), instance_variable("build_info")],
    links=[runbook("DatabaseHighLatency"), runbook("DatabasePoolSaturated"), runbook("RedisErrors"),
           runbook("S3Errors"), runbook("PostgresDown"), runbook("RedisDown")],
)
