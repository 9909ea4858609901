"""Dashboards and alerts against a live stack: two service instances (their database reached through a proxy the
test can cut), the PostgreSQL, Redis and node exporters, and the system's Prometheus with the shipped rules and a
5 s scrape interval, while a short load test runs. Then: every target up, every rule healthy, every dashboard
query answering with data, rate() only over counters; and under injected faults (an instance killed, the
database unreachable) the matching alerts reach pending/firing, with a rule set whose `for:` is shortened."""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reports.promdata import read_matrix
from reports.rundata import load_run
from reports.service_view import bucket_quantile, histograms, window_totals
from scenarios.notifications import collect, expectations
from scenarios.runner import _final_scrape_wait
from sut.settings import Settings
from tests.conftest import BUCKET
from tests.loadrun import finish, scenario_file, start_run
from tests.observability import (
    RULES,
    SCRAPE_INTERVAL_S,
    Query,
    dashboards,
    default_values,
    queries,
    rate_arguments,
    rule_groups,
)
from tests.support import (
    REDIS_URL,
    AlertmanagerServer,
    AlertSinkProcess,
    Exporter,
    MotoServer,
    PrometheusServer,
    ServiceProcess,
    TcpProxy,
    auth,
    free_port,
    instance_env,
    new_id,
    server_port,
)

JOBS = {"sut", "locust", "postgres", "redis", "node"}
RUN_SECONDS = 30
# Dashboard queries allowed to answer with no finite value on a healthy stack under a short load, and why.
FAULT_ONLY = {
    ("chat-slo-overview", "Firing alerts"): "ALERTS series exist only while an alert fires",
}


@dataclass
class Stack:
    prometheus: PrometheusServer
    instances: list[ServiceProcess]
    proxy: TcpProxy
    rules: Path
    runs: Path
    metrics_port: int
    start: float = 0.0
    end: float = 0.0
    during: dict[str, Any] = field(default_factory=dict)  # snapshots taken while the load ran


def _via(database_url: str, port: int) -> str:
    """The same database reached through the proxy on `port`."""
    parts = urllib.parse.urlsplit(database_url)
    auth = parts.netloc.rpartition("@")[0]
    via = parts._replace(netloc=f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}").geturl()
    assert urllib.parse.urlsplit(via).port == port, via
    return via


def _upstream(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _stop_all(processes: list[Any]) -> None:
    """Stop every process even if one of them fails to stop."""
    for process in processes:
        with contextlib.suppress(Exception):  # the others must still be stopped
            process.stop()


def _snapshot_while_running(prometheus: PrometheusServer, out: dict[str, Any], stop: threading.Event) -> None:
    """Targets and metric metadata while the load generator's series are in, i.e. while the run lasts (the
    last such snapshot: by then every exporter has served every family)."""
    while not stop.wait(2):
        try:
            metadata, targets = prometheus.api("metadata"), prometheus.api("targets")["activeTargets"]
        except (OSError, AssertionError):
            continue
        if "loadgen_users" in metadata and all(t["health"] == "up" for t in targets):
            out["metadata"], out["targets"] = metadata, targets
        elif "targets" not in out and not any(t["health"] == "unknown" for t in targets):
            out["targets"] = targets  # a target down: kept, unless a later snapshot has them all up


def _scraped(prometheus: PrometheusServer, instances: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while len(prometheus.api("query", query='up{job="sut"} == 1')["result"]) < instances:
        assert time.monotonic() < deadline, "Prometheus did not scrape the instances"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(database_url: str, s3_server: MotoServer, base_settings: Settings,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("observability")
    proxy = TcpProxy(_upstream(database_url))
    proxy.start()
    env = instance_env(_via(database_url, proxy.port), s3_server.url, BUCKET, SHUTDOWN_GRACE_SECONDS="2")
    instances = [ServiceProcess(env, str(work / f"sut-{name}.log")) for name in "ab"]
    exporters = {
        "postgres": Exporter("prometheus-postgres-exporter", env={
            "DATA_SOURCE_NAME": _via(database_url, proxy.port) + "?sslmode=disable"}),
        "redis": Exporter("prometheus-redis-exporter", f"--redis.addr={REDIS_URL}"),
        "node": Exporter("prometheus-node-exporter", "--collector.disable-defaults", "--collector.cpu",
                         "--collector.meminfo", "--collector.loadavg"),
    }
    rules = work / "rules"
    shutil.copytree(RULES, rules)
    metrics_port = server_port()
    prometheus = PrometheusServer(
        str(work), {"sut": [i.url.removeprefix("http://") for i in instances],
                    "locust": [f"127.0.0.1:{metrics_port}"], **{k: [e.address] for k, e in exporters.items()}},
        scrape_interval=f"{SCRAPE_INTERVAL_S}s", rule_files=[str(rules / "*.yml")])
    stack = Stack(prometheus, instances, proxy, rules, runs=work / "runs", metrics_port=metrics_port)
    stop = threading.Event()
    run = None
    try:
        for instance in instances:
            instance.start()
        for name, exporter in exporters.items():
            exporter.start(str(work / f"{name}-exporter.log"))
        prometheus.start()
        _scraped(prometheus, len(instances))    # the service's totals then span the send window
        watcher = threading.Thread(target=_snapshot_while_running, args=(prometheus, stack.during, stop))
        watcher.start()
        stack.start = time.time()
        run = start_run(scenario_file(work, seconds=RUN_SECONDS, slos="  - {kind: checker, counter: lost, max: 0}",
                                      pairs=6, rate=20, rest=3, upload=1),
                        instances, work, "--prometheus", prometheus.url, metrics_port=metrics_port)
        code, out = finish(run, timeout=240)
        stack.end = time.time()
        stop.set()
        watcher.join()
        assert code == 0, out
        time.sleep(2 * SCRAPE_INTERVAL_S)  # the rules evaluate over the last scrapes
        yield stack
    finally:
        stop.set()
        if run is not None and run.poll() is None:
            run.kill()  # a run that overran: its Locust processes die with their parent's pipe
            run.wait(timeout=30)
        _stop_all([prometheus, *exporters.values(), *instances])
        proxy.cut()


def test_every_target_was_up_during_the_load(stack: Stack) -> None:
    targets = stack.during.get("targets")
    assert targets, "the load generator's series never reached Prometheus"
    assert {t["labels"]["job"] for t in targets} == JOBS
    assert [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets if t["health"] != "up"] == []


def test_every_rule_is_healthy(stack: Stack) -> None:
    groups = stack.prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == sum(len(g["rules"]) for g in rule_groups())
    assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []


def test_the_checkers_final_counts_reach_prometheus(stack: Stack) -> None:
    """They exist only once the run ends: the master serves them until Prometheus has scraped them."""
    [run] = list(stack.runs.iterdir())
    checker = json.loads((run / "checker.json").read_text())
    for counter in ("acked", "delivered", "lost", "duplicated"):
        query = f'max_over_time(loadgen_messages_{counter}_total{{run_id="{run.name}"}}[5m])'
        answer = stack.prometheus.api("query", query=query)
        assert [float(s["value"][1]) for s in answer["result"]] == [checker[counter]], counter
    assert checker["acked"] > 100
    # the last scrape came after the master wrote its final checker.json, when the run had ended
    query = f'timestamp(last_over_time(loadgen_messages_acked_total{{run_id="{run.name}"}}[5m]))'
    [last] = stack.prometheus.api("query", query=query)["result"]
    assert float(last["value"][1]) >= (run / "checker.json").stat().st_mtime - 0.5


def test_the_runner_keeps_the_master_up_one_scrape_interval_more(stack: Stack) -> None:
    """What makes the final counts reach Prometheus every time, not only when a scrape happens to fall between the
    master's last write and its exit."""
    assert _final_scrape_wait(stack.prometheus.url, stack.metrics_port) == SCRAPE_INTERVAL_S + 1
    assert _final_scrape_wait(stack.prometheus.url, free_port()) == 0   # a port Prometheus does not scrape
    assert _final_scrape_wait("http://127.0.0.1:1", stack.metrics_port) == 0   # no Prometheus


def test_the_export_takes_its_rate_window_from_the_scrape_interval(stack: Stack) -> None:
    """Four scrape intervals, as Grafana's $__rate_interval: a 1 min window on a 30 s run mixed the idle time
    before the run into every point of the service's CPU and rates."""
    [run] = list(stack.runs.iterdir())
    facts = json.loads((run / "prom" / "export.json").read_text())
    assert facts["scrape_interval"] == SCRAPE_INTERVAL_S and facts["step"] == SCRAPE_INTERVAL_S
    assert facts["rate_window"] == 4 * SCRAPE_INTERVAL_S < facts["end"] - facts["start"]
    cpu = read_matrix(run / "prom" / "process_cpu.json")
    assert cpu and {s.labels.get("job") for s in cpu} >= {"sut"}


def test_the_send_window_totals_are_the_counters_own_difference(stack: Stack) -> None:
    """window.json: every total answered, each instance's two samples a send window apart (to a scrape), the
    acks' buckets adding up to the events counted, and the quantile the report reads from them the one
    Prometheus' histogram_quantile gives."""
    [run] = list(stack.runs.iterdir())
    totals = json.loads((run / "prom" / "window.json").read_text())
    length = totals["end"] - totals["start"]
    assert all(entry["result"] is not None for entry in totals["queries"].values()), totals["queries"]
    samples = [float(s["value"][1]) for s in totals["queries"]["samples"]["result"]]
    last = [float(s["value"][1]) for s in totals["queries"]["last_sample"]["result"]]
    assert len(samples) == len(last) == 2, totals["queries"]
    assert all(totals["end"] - SCRAPE_INTERVAL_S - 1 <= t <= totals["end"] for t in last), (last, totals["end"])
    assert all(length / SCRAPE_INTERVAL_S - 1 <= n <= length / SCRAPE_INTERVAL_S + 1 for n in samples), samples
    acks = {s["metric"]["le"]: float(s["value"][1]) for s in totals["queries"]["socketio_buckets"]["result"]
            if s["metric"]["event"] == "message:send"}
    events = sum(float(s["value"][1]) for s in totals["queries"]["socketio_events"]["result"]
                 if s["metric"]["event"] == "message:send")
    assert acks["+Inf"] == events > 100
    query = totals["queries"]["http_buckets"]["query"]
    answer = stack.prometheus.api("query", query=f"histogram_quantile(0.99, {query})", time=totals["end"])
    theirs: dict[tuple[str, ...], float] = {
        (s["metric"]["method"], s["metric"]["route"]): float(s["value"][1]) for s in answer["result"]
        if math.isfinite(float(s["value"][1]))}
    loaded = load_run(run)
    ours = {key: q.value for key, pairs in histograms(window_totals(loaded) or {}, "http").items()
            if (q := bucket_quantile(0.99, pairs)) is not None}
    assert theirs and ours.keys() == theirs.keys()
    assert all(math.isclose(ours[k], theirs[k], rel_tol=1e-9) for k in ours), (ours, theirs)


def test_no_request_shows_the_service_slower_than_its_client_beyond_the_bucket(stack: Stack) -> None:
    [run] = list(stack.runs.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    compared = summary["client_vs_service"]
    assert compared["window_seconds"] - 2 * SCRAPE_INTERVAL_S <= compared["service_seconds"] <= \
        compared["window_seconds"], compared
    entries = compared["requests"]
    assert {e["request"] for e in entries} >= {"message:send"}, entries
    assert [e for e in entries if e["finding"] == "client_below"] == []
    send = next(e for e in entries if e["request"] == "message:send")
    assert send["finding"] in ("inside", "client_above"), send          # the same sends, counted by both


def _has_data(result: dict[str, Any]) -> bool:
    if result["resultType"] == "matrix":
        values = [v for series in result["result"] for _, v in series["values"]]
    else:
        values = [series["value"][1] for series in result["result"]]
    return any(math.isfinite(float(v)) for v in values)


def _answer(stack: Stack, query: Query, variables: dict[str, str]) -> dict[str, Any]:
    expr = query.substituted(variables)
    middle = (stack.start + stack.end) / 2
    if query.instant:
        answer: dict[str, Any] = stack.prometheus.api("query", query=expr, time=middle)
        return answer
    answer = stack.prometheus.api("query_range", query=expr, start=stack.start, end=stack.end,
                                  step=SCRAPE_INTERVAL_S)
    return answer


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_every_dashboard_query_returns_data(stack: Stack, name: str) -> None:
    board = dashboards()[name]
    variables = default_values(board)
    empty = [(q.panel, q.expr) for q in queries(board)
             if (q.dashboard, q.panel) not in FAULT_ONLY and not _has_data(_answer(stack, q, variables))]
    assert empty == []


def _rated_metrics() -> Iterator[tuple[str, str]]:
    for board in dashboards().values():
        for query in queries(board):
            yield from ((f"{board['uid']}: {query.panel}", m) for _, m, _ in rate_arguments(query.expr))
    for group in rule_groups():
        for rule in group["rules"]:
            where = rule.get("alert") or rule.get("record")
            yield from ((where, m) for _, m, _ in rate_arguments(rule["expr"]))


def test_rate_is_applied_only_to_counters(stack: Stack) -> None:
    """Per the metadata API: a counter, or a histogram's _bucket/_count/_sum series."""
    metadata = stack.during["metadata"]
    wrong = []
    for where, metric in _rated_metrics():
        # OpenMetrics names a counter's family without _total, a histogram's without _bucket/_count/_sum
        family = re.sub(r"_(total|bucket|count|sum)$", "", metric)
        types = {m["type"] for name in {metric, family} for m in metadata.get(name, [])}
        if metric.endswith("_total") and family in metadata:
            types = {m["type"] for m in metadata[family]} & {"counter"}
        if not types or not types <= {"counter", "histogram"}:
            wrong.append((where, metric, types))
    assert wrong == []


def _shorten_for(rules: Path) -> None:
    for path in rules.glob("*.yml"):
        path.write_text(re.sub(r"(\n\s+for:) \S+", r"\1 10s", path.read_text()))


def _api_errors(url: str, seconds: float, stop: threading.Event) -> None:
    """A bounded stream of API reads while the database is unreachable: each answers 503."""
    headers = auth(new_id(), "customer")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        request = urllib.request.Request(f"{url}/messaging/conversations", headers=headers)
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except urllib.error.HTTPError as error:
            error.close()
        except OSError:
            pass
        time.sleep(0.05)


@dataclass
class AlertPath:
    sink: str
    alertmanager: AlertmanagerServer
    work: Path


@pytest.fixture(scope="module")
def alert_path(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertPath]:
    """The system's Alertmanager with the shipped alerts/alertmanager.yml, its webhooks sent to the stack's alert
    sink, and the test Prometheus' alerting pointed at it."""
    work = tmp_path_factory.mktemp("alert-path")
    sink = AlertSinkProcess(str(work / "alert-sink.log"))
    alertmanager = AlertmanagerServer(str(work), sink.url)
    try:
        sink.start()
        alertmanager.start()
        stack.prometheus.send_alerts_to(alertmanager.address)
        yield AlertPath(sink.url, alertmanager, work)
    finally:
        _stop_all([alertmanager, sink])


def _export_alerts(prometheus: PrometheusServer, run_dir: Path, start: float) -> None:
    """prom/alerts.json as the runner exports it: the ALERTS Prometheus had firing since `start`."""
    answer = prometheus.api("query_range", query='ALERTS{alertstate="firing"}', start=start, end=time.time(),
                            step=SCRAPE_INTERVAL_S)
    fired = []
    for series in answer["result"]:
        labels = dict(series["metric"])
        fired.append({"alertname": labels.pop("alertname"), "state": labels.pop("alertstate"), "labels": labels,
                      "active_at": series["values"][0][0], "last_seen": series["values"][-1][0]})
    (run_dir / "prom").mkdir(parents=True)
    (run_dir / "prom" / "alerts.json").write_text(json.dumps(fired))


def _active(prometheus: PrometheusServer) -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["state"]) for a in prometheus.api("alerts")["alerts"]}


@pytest.mark.timeout(240)
def test_injected_faults_fire_the_matching_alerts(stack: Stack, alert_path: AlertPath) -> None:
    """... and Alertmanager notifies them to the sink, where the runner's reader collects them (waiting for those
    still in their route's group_wait) while the faults last."""
    expected = {"TargetDown", "PostgresDown", "HighErrorRate", "HTTPAvailabilityBudgetBurn"}
    before = {name for name, _ in _active(stack.prometheus)}
    assert not before & expected, f"before any fault: {sorted(before)}"
    _shorten_for(stack.rules)
    stack.prometheus.reload()
    survivor, victim = stack.instances
    faulted = time.time()
    victim.kill9()
    stack.proxy.cut()
    stop = threading.Event()
    traffic = threading.Thread(target=_api_errors, args=(survivor.url, 100, stop))
    traffic.start()
    seen: set[tuple[str, str]] = set()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not expected <= {a for a, state in seen if state == "firing"}:
            time.sleep(SCRAPE_INTERVAL_S)
            seen |= _active(stack.prometheus)
        run_dir = alert_path.work / "run"
        _export_alerts(stack.prometheus, run_dir, faulted)
        notified = collect(alert_path.sink, stack.prometheus.url, run_dir, faulted)
    finally:
        stop.set()
        traffic.join()
        stack.proxy.restore()
    firing = {a for a, state in seen if state == "firing"}
    assert expected <= firing, f"seen: {sorted(seen)}"
    assert ("ServiceDown", "firing") not in seen  # one of the two instances is still up
    assert notified is not None
    got = {(n["alertname"], n["receiver"], n["status"]) for n in notified["notifications"]}
    # PostgresDown is critical: the pager; TargetDown a warning: tickets (alerts/alertmanager.yml)
    assert {("PostgresDown", "pager", "firing"), ("TargetDown", "tickets", "firing")} <= got, got
    [down] = [n for n in notified["notifications"] if n["alertname"] == "TargetDown"]
    assert down["labels"]["instance"] == victim.url.removeprefix("http://") and down["groupKey"]
    assert all(n["received"] >= faulted for n in notified["notifications"])
    # everything routed to someone and not inhibited was notified: the reader stopped waiting once it had come
    exported = json.loads((run_dir / "prom" / "alerts.json").read_text())
    due = expectations(exported, notified["notifications"])
    assert [e.labels for e in due if e.due and not e.notified] == []
    assert [e.labels["long"] for e in due if e.inhibited] == ["3d"]    # the ticket tier, muted by the page
    # the burn-rate page fired on the few minutes this Prometheus has recorded: the alert and the export say so
    burns = [n for n in notified["notifications"] if n["alertname"] == "HTTPAvailabilityBudgetBurn"]
    assert burns and all(n["receiver"] == "pager" for n in burns), got
    assert all("window held" in n["annotations"]["description"] for n in burns), burns
    held = [a["long_window_held"] for a in exported if a["alertname"] == "HTTPAvailabilityBudgetBurn"]
    assert held and all(0 <= h < 3600 for h in held), exported
