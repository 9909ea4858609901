"""The local stack's stand-in for a pager and a ticket queue: it takes Alertmanager's webhook notifications
(alerts/alertmanager.yml's receivers) and writes one JSON line per alert to stdout, which supervisord keeps in
.stack/logs/alert-sink.log (`make logs LOGS=alert-sink`).

    python -m stack.alertsink --port 5001
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20


class Sink(BaseHTTPRequestHandler):
    server_version = "chatload-alert-sink"

    def do_GET(self) -> None:
        self._reply(200, b"ok\n")           # the stack's health check

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._reply(400, b"a JSON body of at most 1 MiB\n")
            return
        try:
            payload: dict[str, Any] = json.loads(self.rfile.read(length))
            alerts = payload["alerts"]
        except (ValueError, KeyError, TypeError):
            self._reply(400, b"not an Alertmanager webhook notification\n")
            return
        receiver = self.path.strip("/") or str(payload.get("receiver", ""))
        for alert in alerts:
            labels = alert.get("labels", {})
            line = {"received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "receiver": receiver,
                    "status": alert.get("status"), "alertname": labels.get("alertname"),
                    "severity": labels.get("severity"), "summary": alert.get("annotations", {}).get("summary"),
                    "labels": labels, "startsAt": alert.get("startsAt")}
            sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
        sys.stdout.flush()
        self._reply(200, b"ok\n")

    def log_message(self, format: str, *args: Any) -> None:   # the notifications are the log
        return

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.alertsink", description="Take Alertmanager's webhook "
                                     "notifications and print one JSON line per alert.")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    with ThreadingHTTPServer((args.host, args.port), Sink) as server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
