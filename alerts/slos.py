"""The service's SLOs and the Prometheus rules generated from them: SLI error ratios per window, SLO meta
(objective, budget, budget remaining) and multi-window multi-burn-rate alerts (Google SRE workbook, 30 days)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# one base in every rule file and dashboard; docs/runbooks.md says how to change it
RUNBOOKS = "https://chatload.example.com/docs/runbooks.md"
WINDOWS = ("5m", "30m", "1h", "6h", "3d")
PERIOD = "30d"


@dataclass(frozen=True)
class BurnTier:
    """Fire when both windows burn the budget `factor` times faster than the period allows."""

    long: str
    short: str
    factor: float
    severity: str
    exhausts: str  # how long the 30-day budget lasts at this burn rate


# Workbook table: 2% of the budget in 1 h or 5% in 6 h page; 10% in 3 days opens a ticket.
TIERS = (
    BurnTier("1h", "5m", 14.4, "critical", "about two days"),
    BurnTier("6h", "30m", 6, "critical", "five days"),
    BurnTier("3d", "6h", 1, "warning", "30 days"),
)


@dataclass(frozen=True)
class SLO:
    """`errors` and `total` are event rates over `$window` (PromQL with that placeholder)."""

    name: str
    alert: str
    objective: float
    events: str  # what is counted: "HTTP requests to the /messaging API"
    bad: str  # what makes one bad: "answered with a 5xx"
    errors: str
    total: str
    paging: bool = True  # False: every tier is a warning (a ticket, never a page)
    job: str = ""  # a `job` label on the alerts, for routing (the recorded series are summed over jobs)

    @property
    def budget(self) -> float:
        return round(1 - self.objective, 10)

    def rate(self, expr: str, window: str) -> str:
        return expr.replace("$window", window)


API = 'job="sut",route=~"/messaging/.*"'
SLOS = (
    SLO("http-availability", "HTTPAvailabilityBudgetBurn", 0.999,
        "HTTP requests to the /messaging API", "answered with a 5xx",
        f'sum(rate(http_requests_total{{{API},status=~"5.."}}[$window]))',
        f"sum(rate(http_requests_total{{{API}}}[$window]))"),
    SLO("http-latency", "HTTPLatencyBudgetBurn", 0.99,
        "HTTP requests to the /messaging API", "took longer than 250 ms",
        f"sum(rate(http_request_duration_seconds_count{{{API}}}[$window]))"
        f' - sum(rate(http_request_duration_seconds_bucket{{{API},le="0.25"}}[$window]))',
        f"sum(rate(http_request_duration_seconds_count{{{API}}}[$window]))"),
    # Refusals for a bad or expired token count too (the metric has no reason): one client stuck reconnecting
    # with an expired token could burn this budget, so it opens tickets rather than paging.
    SLO("socketio-connect", "SocketIOConnectBudgetBurn", 0.999,
        "socket.io connection attempts", "were refused",
        'sum(rate(socketio_connects_total{job="sut",status="refused"}[$window]))',
        'sum(rate(socketio_connects_total{job="sut"}[$window]))', paging=False),
    SLO("message-send", "MessageSendBudgetBurn", 0.999,
        "message sends (not counting those refused for the caller's input)", "failed on a dependency",
        'sum(rate(messages_total{job="sut",status="failed"}[$window]))',
        'sum(rate(messages_total{job="sut",status=~"sent|duplicate|failed"}[$window]))'),
    SLO("delivery-latency", "DeliveryLatencyBudgetBurn", 0.99,
        "messages a running load test delivered", "reached the receiver later than 100 ms after the send",
        'sum(rate(loadgen_message_delivery_seconds_count{job="locust"}[$window]))'
        ' - sum(rate(loadgen_message_delivery_seconds_bucket{job="locust",le="0.1"}[$window]))',
        'sum(rate(loadgen_message_delivery_seconds_count{job="locust"}[$window]))',
        paging=False, job="locust"),
)


def ratio(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


WINDOW_SECONDS = {"5m": 300, "30m": 1800, "1h": 3600, "6h": 21600, "3d": 259200}


def held_query(slo: str, window: str) -> str:
    """PromQL: how many seconds of data the SLO's SLI holds over `window`, to the minute: the one-minute steps at
    which slo:sli_requests:rate5m has a sample, times 60. The recorded series ends with a staleness marker when its
    inputs go (no load test scraped, say), so gaps do not count; right for any evaluation interval up to a minute.
    One series, one step a minute: 4,320 steps over 3 days."""
    return f'count_over_time(slo:sli_requests:rate5m{{slo="{slo}"}}[{window}:1m]) * 60'


def held_sentence(slo: str, window: str) -> str:
    """The burn-rate description's last sentence, only when the long window held less data than it spans (a
    fresh Prometheus, an SLI that exists only while a load test runs): a template query of `held_query`."""
    full = WINDOW_SECONDS[window]
    return (f"{{{{ with query `{held_query(slo, window)}` }}}}{{{{ with first . }}}}{{{{ if lt .Value {full}.0 }}}}"
            f" The {window} window held only {{{{ humanizeDuration .Value }}}} of data: the ratio covers that, not "
            f"{window}.{{{{ end }}}}{{{{ end }}}}{{{{ else }}}} The {window} window held less than a minute of data."
            "{{ end }}")


def recording_rules(slo: SLO) -> list[dict[str, Any]]:
    labels = {"slo": slo.name}
    rules: list[dict[str, Any]] = [
        {"record": ratio(w), "expr": f"({slo.rate(slo.errors, w)})\n/\n({slo.rate(slo.total, w)})", "labels": labels}
        for w in WINDOWS
    ]
    rules += [
        {"record": "slo:sli_errors:rate5m", "expr": slo.rate(slo.errors, "5m"), "labels": labels},
        {"record": "slo:sli_requests:rate5m", "expr": slo.rate(slo.total, "5m"), "labels": labels},
        # traffic-weighted over the period: sums of the 5m rates, not an average of ratios
        {"record": ratio(PERIOD), "labels": labels,
         "expr": f'sum_over_time(slo:sli_errors:rate5m{{slo="{slo.name}"}}[{PERIOD}])\n/\n'
                 f'sum_over_time(slo:sli_requests:rate5m{{slo="{slo.name}"}}[{PERIOD}])'},
        {"record": "slo:objective:ratio", "expr": f"vector({slo.objective})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector({slo.budget})", "labels": labels},
        {"record": "slo:error_budget_remaining:ratio", "labels": labels,
         "expr": f'1 - {ratio(PERIOD)}{{slo="{slo.name}"}} / {slo.budget}'},
    ]
    return rules


def alert_rules(slo: SLO) -> list[dict[str, Any]]:
    rules = []
    for tier in TIERS:
        threshold = round(tier.factor * slo.budget, 10)
        severity = tier.severity if slo.paging else "warning"
        long_, short = (f'{ratio(w)}{{slo="{slo.name}"}} > {threshold}' for w in (tier.long, tier.short))
        rules.append({
            "alert": slo.alert,
            "expr": f"{long_}\nand\n{short}",
            "labels": {"severity": severity, "slo": slo.name, "long": tier.long, "short": tier.short,
                       **({"job": slo.job} if slo.job else {})},
            "annotations": {
                "summary": f"The {slo.name} SLO is burning its error budget.",
                "description": (
                    f"{{{{ $value | humanizePercentage }}}} of {slo.events} {slo.bad} over the last {tier.long} "
                    f"(and over {tier.short} too): at least {tier.factor:g}x what the {slo.objective:.1%} objective "
                    f"allows. At this rate the whole 30-day error budget is gone within {tier.exhausts}."
                    + held_sentence(slo.name, tier.long)),
                "runbook_url": runbook_url(slo.alert),
            },
        })
    return rules


def runbook_url(alert: str) -> str:
    return f"{RUNBOOKS}#{alert.lower()}"


def rule_file() -> dict[str, Any]:
    groups = [{"name": f"slo-{slo.name}", "rules": recording_rules(slo)} for slo in SLOS]
    groups.append({"name": "slo-alerts", "rules": [r for slo in SLOS for r in alert_rules(slo)]})
    return {"groups": groups}
