"""The alert path of a run: what the alert sink received (notifications.json) against what Prometheus had firing
(prom/alerts.json), with alerts/alertmanager.yml's routing to say why a fired alert has no notification.

- `notifications_summary`: summary.json's `notifications`: counts by receiver and status, the list, and the fired
  alerts without a notification with the likeliest reason; None when the run folder has no notifications.json.
- `notification_value`: the `notification` SLO's value, seconds from the run's start to the first firing
  notification of an alert at a receiver; None when none came or notifications.json is absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reports.rundata import RunData
from scenarios.notifications import Expectation, expectations, long_window_note, why_missing

SAME_FOR_ALL = ("alertname", "severity")


def received(run: RunData) -> list[dict[str, Any]]:
    doc = run.notifications or {}
    items = doc.get("notifications")
    return [n for n in items if isinstance(n, dict)] if isinstance(items, list) else []


def notification_value(run: RunData, alert: str, receiver: str) -> float | None:
    """Seconds from the run's start to the first firing notification of `alert` received at `receiver`."""
    times = [float(n["received"]) for n in received(run)
             if n.get("status") == "firing" and n.get("receiver") == receiver and n.get("alertname") == alert
             and isinstance(n.get("received"), int | float)]
    return round(min(times) - run.timeline.t0, 1) if times else None


def unnotified(run: RunData) -> list[tuple[Expectation, str]]:
    """The alerts Prometheus had firing (prom/alerts.json) without a firing notification, each with why."""
    if run.notifications is None or not run.alerts:
        return []
    doc = run.notifications
    earlier = [n for n in doc.get("earlier") or [] if isinstance(n, dict)]
    read_at = doc.get("read_at") if isinstance(doc.get("read_at"), int | float) else None
    return [(e, why_missing(e, read_at)) for e in expectations(run.alerts, received(run), earlier)
            if not e.notified]


def telling_labels(notes: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Per notification, the labels that tell it from the others of the same alert (all but the alert's name and
    severity when it is the only one)."""
    by_name: dict[str, list[dict[str, str]]] = {}
    labels = [{str(k): str(v) for k, v in (n.get("labels") or {}).items()} for n in notes]
    for n, lab in zip(notes, labels, strict=True):
        by_name.setdefault(str(n.get("alertname")), []).append(lab)
    out = []
    for n, lab in zip(notes, labels, strict=True):
        group = by_name[str(n.get("alertname"))]
        keys = {k for other in group for k in other}
        differ = {k for k in keys if len({other.get(k) for other in group}) > 1}
        shown = differ if differ else set(lab) - set(SAME_FOR_ALL)
        out.append({k: v for k, v in sorted(lab.items()) if k in shown and k not in SAME_FOR_ALL})
    return out


def notifications_summary(run: RunData) -> dict[str, Any] | None:
    if run.notifications is None:
        return None
    notes = received(run)
    counts: dict[str, dict[str, int]] = {}
    for n in notes:
        per = counts.setdefault(str(n.get("receiver")), {})
        per[str(n.get("status"))] = per.get(str(n.get("status")), 0) + 1
    t0 = run.timeline.t0
    listed = []
    for n in notes:
        at = n.get("received")
        entry = {"at": round(float(at) - t0, 1) if isinstance(at, int | float) else None,
                 **{k: n.get(k) for k in ("received", "receiver", "status", "alertname", "severity", "labels",
                                          "startsAt", "endsAt", "groupKey")}}
        note = long_window_note(n.get("labels") or {}, run.alerts or [])
        if note:
            entry["note"] = note
        listed.append(entry)
    return {"count": len(notes), "by_receiver": counts, "list": listed, "waited": run.notifications.get("waited"),
            "not_notified": [{"alertname": e.labels["alertname"], "labels": e.labels, "receivers": e.receivers,
                              "why": why} for e, why in unnotified(run)]}
