"""The alert path after Alertmanager: the alert sink process keeps what it received and serves it
(`GET /notifications?since=`), the runner's reader writes a run's notifications.json from a real sink (waiting for
a notification still in group_wait), alerts/alertmanager.yml's routing read in Python agrees with amtool, and the
report's summary, `notification` SLO and Notifications section from a run folder holding notifications.json."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from alerts import routing
from reports.build import build
from reports.rundata import gaps, load_run
from reports.summary import summarize
from scenarios.model import ScenarioError, parse_scenario
from scenarios.notifications import NOTIFICATIONS_FILE, collect, read_sink
from stack.alertsink import Notifications
from tests.support import answers, free_port, server_port
from tests.unit.test_alerts import ROUTES
from tests.unit.test_reports import SEND, T0, slo, steady, write_run

PAGE = {"alertname": "PostgresDown", "severity": "critical", "job": "postgres", "instance": "127.0.0.1:9187"}


@contextmanager
def sink_process(tmp_path: Path) -> Iterator[str]:
    port = server_port()
    with open(tmp_path / "sink.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stack.alertsink", "--port", str(port)], stdout=log)
    try:
        url = f"http://127.0.0.1:{port}"
        assert answers(f"{url}/", proc, within=10, timeout=1, pause=0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def webhook(receiver: str, *alerts: dict[str, Any], group_key: str = "{}:{alertname=\"X\"}") -> dict[str, Any]:
    """An Alertmanager webhook notification (version 4) of `alerts` ({status, labels, annotations})."""
    return {"version": "4", "receiver": receiver, "status": alerts[0]["status"], "groupKey": group_key,
            "alerts": [{"startsAt": "2026-11-26T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "annotations": {}, **a} for a in alerts]}


def post(url: str, receiver: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(f"{url}/{receiver}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return int(resp.status)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- the sink --------------------------------------------------------------------------------------------------


def test_the_sink_serves_what_it_received_since_a_time_and_refuses_a_bad_since(tmp_path: Path) -> None:
    with sink_process(tmp_path) as url:
        first = {"status": "firing", "labels": {"alertname": "A", "severity": "warning", "job": "sut"},
                 "annotations": {"summary": "s", "description": "d"}}
        assert post(url, "tickets", webhook("tickets", first, group_key="g1")) == 200
        time.sleep(0.05)
        middle = time.time()
        time.sleep(0.05)
        second = {"status": "resolved", "labels": {"alertname": "B", "severity": "critical"},
                  "endsAt": "2026-11-26T10:05:00Z"}
        assert post(url, "pager", webhook("pager", second, group_key="g2")) == 200

        status, body = get(f"{url}/notifications")
        assert status == 200
        everything = json.loads(body)
        assert [(n["receiver"], n["alertname"], n["status"], n["severity"], n["groupKey"]) for n in everything] == [
            ("tickets", "A", "firing", "warning", "g1"), ("pager", "B", "resolved", "critical", "g2")]
        a, b = everything
        assert a["labels"] == first["labels"] and a["annotations"] == {"summary": "s", "description": "d"}
        assert a["startsAt"] == "2026-11-26T10:00:00Z" and b["endsAt"] == "2026-11-26T10:05:00Z"
        assert isinstance(a["received"], float) and a["received"] < middle < b["received"] <= time.time()

        assert [n["alertname"] for n in json.loads(get(f"{url}/notifications?since={middle}")[1])] == ["B"]
        assert json.loads(get(f"{url}/notifications?since={time.time() + 60:.3f}")[1]) == []
        assert read_sink(url, middle) == [b]
        for bad in ("since=abc", "since=-1", "since=nan", "since=inf", "since=", "since=1&since=2", "from=1"):
            status, body = get(f"{url}/notifications?{bad}")
            assert status == 400 and b"since" in body, bad
        assert get(f"{url}/alerts")[0] == 404
        assert get(f"{url}/") == (200, b"ok\n")          # the stack's health check
    lines = [json.loads(line) for line in (tmp_path / "sink.log").read_text().splitlines()]
    assert [(x["receiver"], x["alertname"], x["status"]) for x in lines] == [("tickets", "A", "firing"),
                                                                             ("pager", "B", "resolved")]


def test_the_sink_keeps_the_last_ones_only() -> None:
    kept = Notifications(keep=3)
    kept.add([{"received": float(t), "n": t} for t in range(5)])
    assert [e["n"] for e in kept.since(0)] == [2, 3, 4]
    assert [e["n"] for e in kept.since(3.5)] == [4]


# --- the runner's reader ----------------------------------------------------------------------------------------


def fired(labels: dict[str, str], active_at: float, last_seen: float | None = None) -> dict[str, Any]:
    """A prom/alerts.json entry, as the runner exports ALERTS."""
    rest = {"__name__": "ALERTS"} | {k: v for k, v in labels.items() if k != "alertname"}
    return {"alertname": labels["alertname"], "state": "firing", "labels": rest, "active_at": active_at,
            "last_seen": active_at + 60 if last_seen is None else last_seen}


def write_alerts(run_dir: Path, alerts: list[dict[str, Any]]) -> None:
    (run_dir / "prom").mkdir(parents=True, exist_ok=True)
    (run_dir / "prom" / "alerts.json").write_text(json.dumps(alerts))


def test_the_runner_writes_what_the_sink_received_from_the_runs_start(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    old = {"alertname": "TargetDown", "severity": "warning", "job": "node", "instance": "127.0.0.1:9100"}
    with sink_process(tmp_path) as url:
        assert post(url, "tickets", webhook("tickets", {"status": "firing", "labels": old})) == 200
        time.sleep(0.05)
        start = time.time()
        assert post(url, "pager", webhook("pager", {"status": "firing", "labels": PAGE})) == 200
        # PostgresDown fired long ago (not waited for); TargetDown was notified before the run and still fires
        write_alerts(run_dir, [fired(PAGE, start - 300), fired(old, start)])
        doc = collect(url, None, run_dir, start, wait_max=20)
    written = json.loads((run_dir / NOTIFICATIONS_FILE).read_text())
    assert doc == written
    assert written["sink"] == url and written["since"] == round(start, 3) and written["read_at"] >= start
    assert [(n["alertname"], n["receiver"], n["status"]) for n in written["notifications"]] == [
        ("PostgresDown", "pager", "firing")]
    assert [n["alertname"] for n in written["earlier"]] == ["TargetDown"]
    out = capsys.readouterr().out
    assert "waiting" not in out and "alert sink: 1 notifications since the run's start (pager firing 1)" in out
    assert written["waited"] < 1


def test_the_runner_waits_for_a_notification_still_in_group_wait_and_only_for_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    page_6h = {"alertname": "HTTPAvailabilityBudgetBurn", "severity": "critical", "slo": "http-availability",
               "long": "6h", "short": "30m"}
    ticket_3d = page_6h | {"severity": "warning", "long": "3d", "short": "6h"}
    watchdog = {"alertname": "Watchdog", "severity": "info"}
    with sink_process(tmp_path) as url:
        start = time.time() - 30
        assert post(url, "pager", webhook("pager", {"status": "firing", "labels": page_6h})) == 200
        now = time.time()
        # PostgresDown fired just now: the pager route holds it 10 s. The 3d ticket is inhibited by the 6h page,
        # the Watchdog routed to blackhole: neither is waited for.
        write_alerts(run_dir, [fired(PAGE, now), fired(page_6h, now - 20), fired(ticket_3d, now - 20),
                               fired(watchdog, now - 20)])
        later = threading.Timer(1.5, post, (url, "pager", webhook("pager", {"status": "firing", "labels": PAGE})))
        later.start()
        began = time.monotonic()
        try:
            doc = collect(url, None, run_dir, start, wait_max=20, poll=0.2)
        finally:
            later.join()
        took = time.monotonic() - began
    assert doc is not None
    assert 1.4 < took < 8, took                      # it waited for PostgresDown, and stopped once it came
    assert {(n["alertname"], n["receiver"]) for n in doc["notifications"]} == {
        ("HTTPAvailabilityBudgetBurn", "pager"), ("PostgresDown", "pager")}
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("waiting")]
    assert "PostgresDown (pager)" in line and "group_wait" in line
    assert "HTTPAvailabilityBudgetBurn" not in line and "Watchdog" not in line


def test_the_wait_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    with sink_process(tmp_path) as url:
        write_alerts(run_dir, [fired(PAGE, time.time())])
        began = time.monotonic()
        doc = collect(url, None, run_dir, time.time() - 10, wait_max=1.5, poll=0.2)
        took = time.monotonic() - began
    assert doc is not None and doc["notifications"] == [] and 1.4 < took < 4
    assert "waiting up to 2 s for the notifications of PostgresDown (pager)" in capsys.readouterr().out


def test_a_sink_that_does_not_answer_is_one_warning_and_no_file(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert collect(f"http://127.0.0.1:{free_port()}", None, run_dir, time.time()) is None
    assert not (run_dir / NOTIFICATIONS_FILE).exists()
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("warning: the alert sink at") and "not written" in line
    assert collect(None, None, run_dir, time.time()) is None and not (run_dir / NOTIFICATIONS_FILE).exists()


# --- alerts/alertmanager.yml read in Python ---------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=[f"{r[0]['alertname']}-{r[1]}" for r in ROUTES])
def test_the_routing_agrees_with_amtool(labels: dict[str, str], receiver: str) -> None:
    """tests/unit/test_alerts.py checks the same table with `amtool config routes test`."""
    config = routing.load()
    assert config.receivers(labels) == [receiver]
    assert config.notifies(receiver) == (receiver != "blackhole")


def test_the_inhibitions() -> None:
    config = routing.load()
    page = {"alertname": "MessageSendBudgetBurn", "severity": "critical", "slo": "message-send", "long": "1h"}
    ticket = page | {"severity": "warning", "long": "3d"}
    assert config.inhibited_by(ticket, [page]) is not None
    assert config.inhibited_by(ticket, [page | {"slo": "other"}]) is None
    assert config.inhibited_by(page, [page]) is None                       # never by itself
    down = {"alertname": "TargetDown", "severity": "warning", "job": "sut", "instance": "a:1"}
    assert config.inhibited_by({"alertname": "EventLoopLagHigh", "severity": "warning", "job": "sut",
                                "instance": "a:1"}, [down]) is not None
    assert config.inhibited_by({"alertname": "EventLoopLagHigh", "severity": "warning", "job": "sut",
                                "instance": "b:1"}, [down]) is None
    assert config.inhibited_by(PAGE, [{"alertname": "ServiceDown", "severity": "critical", "job": "sut"}]) is None
    assert config.routes(PAGE)[0].group_wait == 10 and config.routes(down)[0].group_wait == 30


# --- the report --------------------------------------------------------------------------------------------------

NOTIFY = {"kind": "notification", "alert": "PostgresDown", "receiver": "pager"}
BURN_3D = {"alertname": "DeliveryLatencyBudgetBurn", "severity": "warning", "slo": "delivery-latency", "long": "3d",
           "short": "6h", "job": "locust"}
HTTP_PAGE = {"alertname": "HTTPAvailabilityBudgetBurn", "severity": "critical", "slo": "http-availability",
             "long": "1h", "short": "5m"}
HTTP_TICKET = HTTP_PAGE | {"severity": "warning", "long": "3d", "short": "6h"}


def note(at: float, receiver: str, labels: dict[str, str], status: str = "firing") -> dict[str, Any]:
    """A sink entry received `at` seconds after the run's start."""
    return {"received": T0 + at, "receiver": receiver, "status": status, "alertname": labels["alertname"],
            "severity": labels.get("severity"), "labels": labels, "annotations": {"summary": "s"},
            "startsAt": "2026-11-26T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "groupKey": "g"}


def alert_run(run_dir: Path, notifications: list[dict[str, Any]] | None, *, slos: list[dict[str, Any]] | None = None,
              sink: str | None = "http://127.0.0.1:5001") -> Path:
    run = write_run(run_dir, slos=[NOTIFY] if slos is None else slos, hist={SEND: steady(0, 60, [5] * 10)})
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps(meta | {"alert_sink": sink}))
    burn = fired(BURN_3D, T0 + 40) | {"long_window": 259200, "long_window_held": 120.0}
    write_alerts(run, [fired(PAGE, T0 + 30), burn, fired(HTTP_PAGE, T0 + 35), fired(HTTP_TICKET, T0 + 35),
                       fired({"alertname": "Watchdog", "severity": "info"}, T0)])
    if notifications is not None:
        (run / NOTIFICATIONS_FILE).write_text(json.dumps({
            "sink": sink, "since": T0, "read_at": T0 + 70, "waited": 4.2, "notifications": notifications,
            "earlier": []}))
    return run


def test_the_summary_counts_the_notifications_and_says_why_a_fired_alert_has_none(tmp_path: Path) -> None:
    run = alert_run(tmp_path / "run", [note(42, "pager", PAGE), note(52, "loadtest", BURN_3D),
                                       note(45, "pager", HTTP_PAGE), note(65, "pager", PAGE, "resolved")])
    summary = summarize(load_run(run))
    found = summary["notifications"]
    assert found["count"] == 4
    assert found["by_receiver"] == {"pager": {"firing": 2, "resolved": 1}, "loadtest": {"firing": 1}}
    assert [(n["at"], n["alertname"], n["status"]) for n in found["list"]] == [
        (42, "PostgresDown", "firing"), (52, "DeliveryLatencyBudgetBurn", "firing"),
        (45, "HTTPAvailabilityBudgetBurn", "firing"), (65, "PostgresDown", "resolved")]
    assert found["list"][1]["note"] == "the 3d window held only 2m of data"
    whys = {n["alertname"] + "/" + n["labels"].get("long", ""): n["why"] for n in found["not_notified"]}
    assert set(whys) == {"HTTPAvailabilityBudgetBurn/3d", "Watchdog/"}
    assert whys["HTTPAvailabilityBudgetBurn/3d"].startswith("inhibited while HTTPAvailabilityBudgetBurn")
    assert "blackhole, which notifies no one" in whys["Watchdog/"]
    entry = slo(summary, "PostgresDown notified to pager")
    assert entry["passed"] and entry["value"] == 42 and entry["kind"] == "notification"
    assert summary["verdict"] == "pass" and "notifications" not in summary["missing"]


def test_the_report_shows_the_notifications_and_the_long_windows_data(tmp_path: Path) -> None:
    run = alert_run(tmp_path / "run", [note(42, "pager", PAGE), note(52, "loadtest", BURN_3D),
                                       note(45, "pager", HTTP_PAGE)])
    build(run)
    page = (run / "report.html").read_text()
    section = page[page.index("<h2>Notifications</h2>"):]
    assert page.index("<h2>Alerts</h2>") < page.index("<h2>Notifications</h2>")
    assert "<td>+42 s</td><td class='text'>pager</td><td class='text'>PostgresDown</td>" in section
    assert "it waited 4 s for notifications still due" in section
    assert section.count("the 3d window held only 2m of data") == 1
    alerts = page[page.index("<h2>Alerts</h2>"):page.index("<h2>Notifications</h2>")]
    assert alerts.count("the 3d window held only 2m of data") == 1
    assert "Fired without a notification" in section and "inhibited while" in section and "blackhole" in section
    assert "PostgresDown notified to pager" in page


def test_a_notification_slo_fails_without_a_firing_one_at_that_receiver(tmp_path: Path) -> None:
    run = alert_run(tmp_path / "a", [note(42, "tickets", PAGE), note(50, "pager", PAGE, "resolved")])
    entry = slo(summarize(load_run(run)), "PostgresDown notified to pager")
    assert not entry["passed"] and entry["value"] is None
    run = alert_run(tmp_path / "b", [])
    summary = summarize(load_run(run))
    assert not slo(summary, "PostgresDown notified to pager")["passed"] and summary["verdict"] == "fail"
    assert summary["notifications"]["count"] == 0
    assert "The alert sink received no notification during the run." in (build(run) and
                                                                          (run / "report.html").read_text())


def test_without_notifications_json_the_slo_fails_with_no_value_and_missing_says_why(tmp_path: Path) -> None:
    run = alert_run(tmp_path / "a", None)
    summary = summarize(load_run(run))
    entry = slo(summary, "PostgresDown notified to pager")
    assert not entry["passed"] and entry["value"] is None and summary["notifications"] is None
    assert "notifications" in summary["missing"] and summary["verdict"] == "fail"
    [gap] = [g for g in gaps(load_run(run)) if g.key == "notifications"]
    assert "the alert sink at http://127.0.0.1:5001 did not answer" in gap.text
    build(run)
    assert "did not answer after the run" in (run / "report.html").read_text()
    # no sink, a notification SLO: still missing; no sink and no such SLO: nothing was asked for, nothing lacks
    no_sink = alert_run(tmp_path / "b", None, sink=None)
    [gap] = [g for g in gaps(load_run(no_sink)) if g.key == "notifications"]
    assert "the run had no alert sink" in gap.text
    plain = alert_run(tmp_path / "c", None, slos=[], sink=None)
    assert "notifications" not in summarize(load_run(plain))["missing"]
    build(plain)
    assert "Not read: the run had no alert sink" in (plain / "report.html").read_text()


def test_the_notification_slo_kind_in_the_schema() -> None:
    base = ("name: x\ndescription: d\npersonas: {chat: {pairs: 1}}\nload: {stages: [{duration: 10s, "
            "messages_per_second: 1}]}\n")
    ok = parse_scenario(base + "slos:\n  - {kind: notification, alert: PostgresDown, receiver: pager}\n")
    assert ok.slos[0].display_name == "PostgresDown notified to pager"
    for bad, words in (("{kind: notification, alert: PostgresDown, receiver: pager, stage: 0}", "whole run"),
                       ("{kind: notification, alert: ' ', receiver: pager}", "must not be empty"),
                       ("{kind: notification, alert: PostgresDown}", "receiver")):
        with pytest.raises(ScenarioError, match=words):
            parse_scenario(base + f"slos:\n  - {bad}\n")
