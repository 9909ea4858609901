"""Load shedding: a cap on the work one instance holds at once, so overload turns into quick 503s with
Retry-After instead of queues, latency and memory growing without bound.

One counter per instance covers the REST requests under /messaging and the socket.io events: both wait on the
same event loop and database pool. A request over the cap is answered at once, before any token check or query,
and changes nothing; the caller retries after Retry-After (the load generator's personas do, with the same
client_message_id). The socket.io connections an instance holds are capped apart (`max_connections`).

New socket.io connections also pass a token bucket of the whole instance (`ConnectBucket`, CONNECT_ADMISSION_*):
a reconnect storm (an instance died and all its users come to this one at once) is admitted at the rate the
instance can take them while it goes on serving the users it holds; the rest get 503 + Retry-After at the
engine.io handshake, before any token check, and come back later with jitter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

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


@dataclass
class ConnectBucket:
    """New connections per second this instance admits: `rate` a second, `burst` at once. A zero rate admits all."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(max(self.burst, 1))

    def take(self, now: float | None = None) -> float:
        """0 when admitted (a token taken), else the seconds until a token is due (nothing taken)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        self.tokens = min(float(max(self.burst, 1)), self.tokens + max(now - self.stamp, 0.0) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> int:
        """Whole seconds for Retry-After: at least 1."""
        return max(1, math.ceil(wait))
