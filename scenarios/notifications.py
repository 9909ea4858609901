"""After a run: what the alert sink received (`notifications.json`), and how much data an SLO burn-rate alert's
long window held when it fired (added to `prom/alerts.json`).

`collect` is called by the runner after the Prometheus export. With an alert sink (`--alert-sink`, the local
stack's `python -m stack.alertsink`) it reads `GET /notifications?since=<run start>`; when an alert of
prom/alerts.json should have been notified (its route reaches a receiver that notifies, no inhibition rule mutes
it, it was not notified before the run) and its notification has not arrived, it waits for it, at most
`WAIT_MAX` seconds: Alertmanager holds a group's first notification for the route's group_wait (10 s pager,
30 s tickets). A sink that does not answer: one warning line, no file.

notifications.json:

    {"sink": URL, "since": <run start>, "read_at": <epoch>, "waited": <seconds>,
     "notifications": [{"received", "receiver", "status", "alertname", "severity", "labels", "annotations",
                        "startsAt", "endsAt", "groupKey"}, ...],
     "earlier": [<the last firing notification before the run of an alert firing in it and not notified in it>]}

The report reads it with `expectations` and `why_missing` (below), with the routing of alerts/alertmanager.yml.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts import routing
from alerts.slos import WINDOW_SECONDS, held_query

NOTIFICATIONS_FILE = "notifications.json"
WAIT_MAX = 45.0         # seconds the runner waits at most for notifications still due
ARRIVAL_SLACK = 15.0    # after active_at + group_wait: Prometheus' send and Alertmanager's flush
POLL = 2.0
ALERT_STATE_LABELS = ("alertstate", "__name__")   # ALERTS' own labels, not the alert's


# --- reading ---------------------------------------------------------------------------------------------------


def _get_json(url: str, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError, http.client.HTTPException):
        return None


def read_sink(sink: str, since: float, timeout: float = 5) -> list[dict[str, Any]] | None:
    """The sink's notifications received at or after `since` (epoch seconds); None when it does not answer."""
    found = _get_json(f"{sink.rstrip('/')}/notifications?since={since:.3f}", timeout)
    return [n for n in found if isinstance(n, dict)] if isinstance(found, list) else None


def alert_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    """An alerts.json entry's labels, its name included (the labels Prometheus sends to Alertmanager)."""
    raw = alert.get("labels")
    labels: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    out = {str(k): str(v) for k, v in labels.items() if k not in ALERT_STATE_LABELS}
    out["alertname"] = str(alert.get("alertname") or labels.get("alertname") or "?")
    return out


def is_of(notification: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """The notification is of the alert with these labels (Alertmanager may add external labels: a superset)."""
    have = notification.get("labels")
    return isinstance(have, dict) and all(have.get(k) == v for k, v in labels.items())


# --- what was due, and why something did not come --------------------------------------------------------------


@dataclass
class Expectation:
    """One alert of prom/alerts.json, what alerts/alertmanager.yml does with it, and what the sink received."""

    alert: dict[str, Any]
    labels: dict[str, str]
    receivers: list[str]
    group_wait: float
    group_by: tuple[str, ...]
    group_interval: float
    repeat_interval: float
    notifying: bool                                  # one of its receivers notifies someone
    inhibited: tuple[str, dict[str, str]] | None     # (rule, source alert's labels)
    notified: list[dict[str, Any]] = field(default_factory=list)   # its firing notifications in the run
    earlier: dict[str, Any] | None = None            # its last firing notification before the run

    @property
    def active_at(self) -> float | None:
        value = self.alert.get("active_at")
        return float(value) if isinstance(value, int | float) else None

    @property
    def due(self) -> bool:
        """A notification should come: routed to someone, not muted, not already sent before the run."""
        return self.notifying and self.inhibited is None and self.earlier is None

    def due_by(self) -> float | None:
        """When its first notification should have arrived at the latest (None: its firing time is unknown)."""
        return None if self.active_at is None else self.active_at + self.group_wait + ARRIVAL_SLACK


def _overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def span(x: Mapping[str, Any]) -> tuple[float, float] | None:
        start, end = x.get("active_at"), x.get("last_seen")
        if not isinstance(start, int | float):
            return None
        return float(start), float(end) if isinstance(end, int | float) else float("inf")

    sa, sb = span(a), span(b)
    return sa is None or sb is None or (sa[0] <= sb[1] and sb[0] <= sa[1])


def expectations(alerts: Sequence[Mapping[str, Any]], notifications: Sequence[Mapping[str, Any]],
                 earlier: Sequence[Mapping[str, Any]] = (), config: routing.Config | None = None) -> list[Expectation]:
    """For each fired alert: its route, whether it is due a notification, and the firing notifications of it."""
    config = config or routing.load()
    out = []
    for alert in alerts:
        labels = alert_labels(alert)
        routes = config.routes(labels)
        others = [alert_labels(other) for other in alerts if other is not alert and _overlap(alert, other)]
        muted = config.inhibited_by(labels, others)
        out.append(Expectation(
            alert=dict(alert), labels=labels, receivers=[r.receiver for r in routes],
            group_wait=max(r.group_wait for r in routes), group_by=routes[0].group_by,
            group_interval=routes[0].group_interval, repeat_interval=routes[0].repeat_interval,
            notifying=any(config.notifies(r.receiver) for r in routes),
            inhibited=(muted[0].text, dict(muted[1])) if muted else None,
            notified=[dict(n) for n in notifications if n.get("status") == "firing" and is_of(n, labels)],
            earlier=next((dict(n) for n in reversed(earlier) if n.get("status") == "firing" and is_of(n, labels)),
                         None)))
    return out


def why_missing(exp: Expectation, read_at: float | None) -> str:
    """Why a fired alert has no firing notification in the run: the likeliest reasons, from the routing."""
    name = exp.labels["alertname"]
    receivers = ", ".join(exp.receivers)
    if not exp.notifying:
        return (f"routed to {receivers}, which notifies no one (alerts/alertmanager.yml): no notification is "
                "sent for it")
    if exp.inhibited is not None:
        rule, source = exp.inhibited
        shown = ", ".join(f"{k}={v}" for k, v in source.items() if k != "alertname")
        return (f"inhibited while {source.get('alertname')} ({shown}) fired: alerts/alertmanager.yml's rule "
                f"{rule}")
    if exp.earlier is not None:
        when = exp.earlier.get("received")
        ago = f" at {time.strftime('%H:%M:%S', time.gmtime(when))} UTC" if isinstance(when, int | float) else ""
        return (f"notified to {exp.earlier.get('receiver')} before the run{ago}: Alertmanager sends a firing alert "
                f"again only after repeat_interval ({exp.repeat_interval / 60:g} min)")
    due = exp.due_by()
    if due is not None and read_at is not None and read_at < due:
        return (f"still in group_wait: it fired {read_at - float(exp.active_at or 0):.0f} s before the sink was "
                f"read, and {receivers}'s route holds a group's first notification {exp.group_wait:g} s")
    group = ", ".join(exp.group_by) or "everything"
    return (f"not received by the sink although routed to {receivers}: its group ({group}) may have been notified "
            f"already, and an alert joining it goes out with the next group_interval ({exp.group_interval / 60:g} "
            f"min); or it resolved before the group_wait ({exp.group_wait:g} s) was over; or {name} never reached "
            "Alertmanager (Prometheus' alerting)")


# --- after the run ----------------------------------------------------------------------------------------------


def collect(sink: str | None, prometheus: str | None, run_dir: Path, start: float, *,
            wait_max: float = WAIT_MAX, poll: float = POLL) -> dict[str, Any] | None:
    """Add the long windows' data to prom/alerts.json, then write notifications.json from the sink (when one is
    given and answers). Returns what was written, or None."""
    alerts = _read_alerts(run_dir / "prom" / "alerts.json")
    if prometheus and alerts:
        annotate_long_windows(prometheus, run_dir / "prom" / "alerts.json", alerts)
    if not sink:
        return None
    sink = sink.rstrip("/")
    everything = read_sink(sink, 0)
    if everything is None:
        print(f"warning: the alert sink at {sink} does not answer; {NOTIFICATIONS_FILE} is not written")
        return None
    before = [n for n in everything if _received(n) < start]
    received = [n for n in everything if _received(n) >= start]
    began = time.time()
    pending = _pending(alerts, received, before)
    if pending:
        until = min(began + wait_max, max(e.due_by() or began for e in pending))
        if until > began:
            names = ", ".join(sorted({f"{e.labels['alertname']} ({', '.join(e.receivers)})" for e in pending}))
            print(f"waiting up to {until - began:.0f} s for the notifications of {names}: they fired during the run "
                  "and Alertmanager holds a group's first notification for its route's group_wait", flush=True)
            while time.time() < until and pending:
                time.sleep(min(poll, max(until - time.time(), 0)))
                fresh = read_sink(sink, start)
                if fresh is not None:
                    received = fresh
                pending = _pending(alerts, received, before)
    read_at = time.time()
    doc = {"sink": sink, "since": round(start, 3), "read_at": round(read_at, 3), "waited": round(read_at - began, 1),
           "notifications": received,
           "earlier": [e.earlier for e in expectations(alerts, received, before) if e.earlier and not e.notified]}
    (run_dir / NOTIFICATIONS_FILE).write_text(json.dumps(doc, indent=1) + "\n")
    counts: dict[str, int] = {}
    for n in received:
        key = f"{n.get('receiver')} {n.get('status')}"
        counts[key] = counts.get(key, 0) + 1
    print(f"alert sink: {len(received)} notifications since the run's start"
          + (f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else "")
          + f" written to {run_dir / NOTIFICATIONS_FILE}")
    return doc


def _received(notification: Mapping[str, Any]) -> float:
    value = notification.get("received")
    return float(value) if isinstance(value, int | float) else 0.0


def _pending(alerts: Sequence[Mapping[str, Any]], received: Sequence[Mapping[str, Any]],
             before: Sequence[Mapping[str, Any]]) -> list[Expectation]:
    return [e for e in expectations(alerts, received, before) if e.due and not e.notified]


def _read_alerts(path: Path) -> list[dict[str, Any]]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [a for a in raw if isinstance(a, dict)] if isinstance(raw, list) else []


def annotate_long_windows(prometheus: str, path: Path, alerts: list[dict[str, Any]]) -> None:
    """For each SLO burn-rate alert (labels `slo` and `long`): `long_window_held`, the seconds of data its long
    window held when it fired (alerts/slos.py held_query at its active_at), and `long_window` in seconds."""
    changed = False
    for alert in alerts:
        labels = alert.get("labels") or {}
        window, slo, at = labels.get("long"), labels.get("slo"), alert.get("active_at")
        if window not in WINDOW_SECONDS or not slo or not isinstance(at, int | float):
            continue
        params = urllib.parse.urlencode({"query": held_query(str(slo), str(window)), "time": f"{at:.3f}"})
        found = _get_json(f"{prometheus.rstrip('/')}/api/v1/query?{params}", 10)
        result = ((found or {}).get("data") or {}).get("result") if isinstance(found, dict) else None
        if not isinstance(result, list):
            continue   # Prometheus did not answer: unknown, not zero
        held = float(result[0]["value"][1]) if result else 0.0
        alert["long_window"] = WINDOW_SECONDS[window]
        alert["long_window_held"] = min(held, float(WINDOW_SECONDS[window]))
        changed = True
    if changed:
        path.write_text(json.dumps(alerts, indent=1) + "\n")


def long_window_note(labels: Mapping[str, Any], alerts: Iterable[Mapping[str, Any]]) -> str | None:
    """'the 3d window held only 2m 00s of data' for an alert with a `long` label whose window held less than it
    spans (from prom/alerts.json's long_window_held); None otherwise."""
    want = {str(k): str(v) for k, v in labels.items() if k not in ALERT_STATE_LABELS}
    if "long" not in want:
        return None
    for alert in alerts:
        if all(want.get(k) == v for k, v in alert_labels(alert).items()):
            held, window = alert.get("long_window_held"), alert.get("long_window")
            if isinstance(held, int | float) and isinstance(window, int | float) and held < window:
                return (f"the {want['long']} window held less than a minute of data" if held < 60 else
                        f"the {want['long']} window held only {_duration(held)} of data")
    return None


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return " ".join(p for p in parts if p)
