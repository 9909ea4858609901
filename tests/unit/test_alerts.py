"""The alert rules and Alertmanager's configuration, offline: promtool's checks and unit tests, the generated SLO
rules current, the mixins' hygiene (names, severities, summaries, descriptions, runbooks, `for:`), thresholds
on exact bucket edges, and a table of routing cases through `amtool config routes test`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from prometheus_client.utils import floatToGoString

from alerts.slos import RUNBOOKS, SLOS
from loadtests.recorder import BUCKETS as LOADGEN_BUCKETS
from sut import metrics
from tests.observability import ROOT, RULES, alerts, dashboards, queries, rule_groups

ALERTS = alerts()
AM_CONFIG = ROOT / "alerts" / "alertmanager.yml"
HISTOGRAM_BUCKETS = {
    "http_request_duration_seconds": metrics.HTTP_BUCKETS,
    "socketio_event_duration_seconds": metrics.EVENT_BUCKETS,
    "db_query_duration_seconds": metrics.DB_BUCKETS,
    "db_pool_acquire_seconds": metrics.DB_BUCKETS,
    "event_loop_lag_seconds": metrics.LAG_BUCKETS,
    "loadgen_message_delivery_seconds": LOADGEN_BUCKETS,
    "loadgen_schedule_lag_seconds": LOADGEN_BUCKETS,
    "loadgen_request_duration_seconds": LOADGEN_BUCKETS,
}


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_generated_slo_rules_are_current() -> None:
    done = run(sys.executable, "-m", "alerts", "--check")
    assert done.returncode == 0, done.stderr


def test_promtool_check_rules() -> None:
    files = sorted(str(p) for p in RULES.glob("*.yml"))
    assert len(files) >= 3
    done = run("promtool", "check", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "WARNING" not in done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    files = sorted(str(p) for p in (ROOT / "alerts" / "tests").glob("*.yml"))
    assert len(files) >= 3
    done = run("promtool", "test", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files)


def test_every_alert_is_tested_firing_and_not_firing_by_promtool() -> None:
    fired, quiet = set(), set()
    for path in (ROOT / "alerts" / "tests").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in ALERTS}
    assert names <= fired and names <= quiet, (names - fired, names - quiet)


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: f"{r['alert']}-{r['labels'].get('long', '')}")
def test_alert_hygiene(rule: dict[str, object]) -> None:
    name, labels, notes = rule["alert"], rule["labels"], rule["annotations"]
    assert isinstance(name, str) and isinstance(labels, dict) and isinstance(notes, dict)
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), name
    assert labels["severity"] in ("critical", "warning", "info")
    assert notes["summary"] and "{{" not in notes["summary"] and notes["summary"].endswith(".")
    assert "{{" in notes["description"], "the description says what this instance of the alert saw"
    assert notes["runbook_url"] == f"{RUNBOOKS}#{name.lower()}"
    if "slo" not in labels:  # burn-rate alerts are debounced by their short window instead
        assert "for" in rule, f"{name} has no for:"


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    text = (ROOT / "docs" / "runbooks.md").read_text()
    sections = {line[3:].strip() for line in text.splitlines() if line.startswith("## ")}
    names = {a["alert"] for a in ALERTS}
    assert names <= sections
    camel = {s for s in sections if re.fullmatch(r"[A-Z][a-z]+[A-Z][A-Za-z0-9]+", s)}
    assert camel <= names, f"sections for alerts that do not exist: {camel - names}"


def test_the_seed_alerts_are_kept_by_name() -> None:
    assert {"HighErrorRate", "WebSocketConnectionsLow", "DatabaseHighLatency"} <= {a["alert"] for a in ALERTS}


def _le_labels(metric: str) -> set[str]:
    """The `le` label values as exposed: prometheus_client writes Go's float format, the load generator repr()."""
    if metric.startswith("loadgen_"):
        return {repr(b) for b in HISTOGRAM_BUCKETS[metric]}
    return {floatToGoString(b) for b in HISTOGRAM_BUCKETS[metric]}


def _bucket_selectors() -> list[tuple[str, str, str]]:
    """(where, metric, le) for every `..._bucket{..., le="X"}` in the rules and the dashboards."""
    found = []
    exprs = [(r.get("alert") or r.get("record"), r["expr"]) for g in rule_groups() for r in g["rules"]]
    exprs += [(f"{b['uid']}: {q.panel}", q.expr) for b in dashboards().values() for q in queries(b)]
    for where, expr in exprs:
        found += [(where, metric, le) for metric, le in re.findall(r'(\w+)_bucket\{[^}]*le="([^"]+)"', expr)]
    return found


def test_thresholds_on_buckets_are_exact_bucket_labels() -> None:
    """A `le` no series has (`1` where the exposition says `1.0`) matches nothing: the ratio would be empty."""
    selectors = _bucket_selectors()
    assert len(selectors) > 10
    for where, metric, le in selectors:
        assert le in _le_labels(metric), (where, metric, le)


def test_each_slo_has_its_three_burn_tiers() -> None:
    for slo in SLOS:
        tiers = {(a["labels"]["long"], a["labels"]["short"], a["labels"]["severity"])
                 for a in ALERTS if a["labels"].get("slo") == slo.name}
        top = "critical" if slo.paging else "warning"
        assert tiers == {("1h", "5m", top), ("6h", "30m", top), ("3d", "6h", "warning")}, slo.name


def test_amtool_check_config() -> None:
    done = run("amtool", "check-config", str(AM_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


ROUTES = [
    # labels of an alert -> the receiver it reaches
    ({"alertname": "HTTPAvailabilityBudgetBurn", "severity": "critical", "slo": "http-availability"}, "pager"),
    ({"alertname": "ServiceDown", "severity": "critical", "job": "sut"}, "pager"),
    ({"alertname": "HTTPAvailabilityBudgetBurn", "severity": "warning", "slo": "http-availability"}, "tickets"),
    ({"alertname": "DatabaseHighLatency", "severity": "warning", "job": "sut"}, "tickets"),
    ({"alertname": "TargetDown", "severity": "warning", "job": "node"}, "tickets"),
    ({"alertname": "LoadTestMessagesLost", "severity": "warning", "job": "locust"}, "loadtest"),
    ({"alertname": "DeliveryLatencyBudgetBurn", "severity": "warning", "job": "locust"}, "loadtest"),
    ({"alertname": "Watchdog", "severity": "info"}, "blackhole"),
    ({"alertname": "Unlabelled"}, "tickets"),
]


@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=[f"{r[0]['alertname']}-{r[1]}" for r in ROUTES])
def test_alertmanager_routes(labels: dict[str, str], receiver: str) -> None:
    pairs = [f"{k}={v}" for k, v in labels.items()]
    done = run("amtool", "config", "routes", "test", f"--config.file={AM_CONFIG}", f"--verify.receivers={receiver}",
               *pairs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver


def test_alertmanager_inhibitions_use_equal() -> None:
    config = yaml.safe_load(AM_CONFIG.read_text())
    rules = config["inhibit_rules"]
    assert rules and all(rule.get("equal") for rule in rules)
    critical_over_warning = [r for r in rules if r["source_matchers"] == ['severity="critical"']]
    assert critical_over_warning and "slo" in critical_over_warning[0]["equal"]
