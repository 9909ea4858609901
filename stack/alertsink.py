"""The local stack's stand-in for a pager and a ticket queue: it takes Alertmanager's webhook notifications
(alerts/alertmanager.yml's receivers), writes one JSON line per alert to stdout, which supervisord keeps in
.stack/logs/alert-sink.log (`make logs LOGS=alert-sink`), and keeps the last 10,000 in memory for
`GET /notifications?since=<epoch seconds>` (what the scenario runner reads into a run folder's notifications.json).

    python -m stack.alertsink --port 5001

Standard library only: compose runs it too.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20
KEEP = 10_000


class Notifications:
    """The alerts notified so far, oldest first, at most `keep` of them (the oldest go first)."""

    def __init__(self, keep: int = KEEP) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            self._entries.extend(entries)

    def since(self, t: float) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._entries if e["received"] >= t]


def entries(receiver: str, payload: dict[str, Any], received: float) -> list[dict[str, Any]]:
    """One entry per alert of a webhook notification."""
    out = []
    for alert in payload["alerts"]:
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        out.append({"received": received, "receiver": receiver, "status": alert.get("status"),
                    "alertname": labels.get("alertname"), "severity": labels.get("severity"), "labels": labels,
                    "annotations": annotations, "startsAt": alert.get("startsAt"), "endsAt": alert.get("endsAt"),
                    "groupKey": payload.get("groupKey")})
    return out


class Sink(BaseHTTPRequestHandler):
    server_version = "chatload-alert-sink"
    kept: Notifications = Notifications()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/":
            self._reply(200, b"ok\n")           # the stack's health check
            return
        if url.path != "/notifications":
            self._reply(404, b"GET / (health) or GET /notifications?since=<epoch seconds>\n")
            return
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"since"})
        values = query.get("since", ["0"])
        if unknown or len(values) != 1:
            self._reply(400, f"one parameter at most: since=<epoch seconds> (got {url.query!r})\n".encode())
            return
        try:
            since = float(values[0])
        except ValueError:
            since = math.nan
        if not math.isfinite(since) or since < 0:
            self._reply(400, f"since must be epoch seconds, a finite number >= 0 (got {values[0]!r})\n".encode())
            return
        body = json.dumps(self.kept.since(since)).encode()
        self._reply(200, body, "application/json")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if not 0 < length <= MAX_BODY:
            self._reply(400, b"a JSON body of at most 1 MiB\n")
            return
        try:
            payload: dict[str, Any] = json.loads(self.rfile.read(length))
            received = entries(self.path.strip("/") or str(payload.get("receiver", "")), payload, time.time())
        except (ValueError, KeyError, TypeError, AttributeError):
            self._reply(400, b"not an Alertmanager webhook notification\n")
            return
        self.kept.add(received)
        for entry in received:
            line = {"received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["received"])),
                    "receiver": entry["receiver"], "status": entry["status"], "alertname": entry["alertname"],
                    "severity": entry["severity"], "summary": entry["annotations"].get("summary"),
                    "labels": entry["labels"], "startsAt": entry["startsAt"]}
            sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
        sys.stdout.flush()
        self._reply(200, b"ok\n")

    def log_message(self, format: str, *args: Any) -> None:   # the notifications are the log
        return

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.alertsink", description="Take Alertmanager's webhook "
                                     "notifications, print one JSON line per alert and serve the last "
                                     f"{KEEP:,} at GET /notifications?since=<epoch seconds>.")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    with ThreadingHTTPServer((args.host, args.port), Sink) as server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
