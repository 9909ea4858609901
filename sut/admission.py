"""Load shedding: a cap on the work one instance holds at once, so overload turns into quick 503s with
Retry-After instead of queues, latency and memory growing without bound.

One counter per instance covers the REST requests under /messaging and the socket.io events: both wait on the
same event loop and database pool. A request over the cap is answered at once, before any token check or query,
and changes nothing; the caller retries after Retry-After (the load generator's personas do, with the same
client_message_id). The socket.io connections an instance holds are capped apart (`max_connections`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sut import metrics

RETRY_AFTER = 1


@dataclass
class Admission:
    limit: int
    in_flight: int = 0

    def enter(self, transport: str) -> bool:
        """Take a slot; False (counted as shed) when every slot is taken. A zero limit admits everything."""
        if self.limit and self.in_flight >= self.limit:
            metrics.SHED.labels(transport).inc()
            return False
        self.in_flight += 1
        metrics.IN_FLIGHT.set(self.in_flight)
        return True

    def leave(self) -> None:
        self.in_flight -= 1
        metrics.IN_FLIGHT.set(self.in_flight)
