"""What a load-generator process knows: the scenario, the targets, the run, the id space. Read from the
environment (the runner sets it; the same variables work for a hand-started `locust -f loadtests/locustfile.py`
and for workers on other machines):

| variable | default | meaning |
| --- | --- | --- |
| `CHATLOAD_SCENARIO` | `smoke` | scenario name or YAML path |
| `CHATLOAD_JWT_SECRET` (or `JWT_SECRET`) | required | the service's HS256 secret: users mint their own tokens |
| `CHATLOAD_TARGETS` | Locust's `--host` | comma-separated service URLs; pair ends are spread over them |
| `CHATLOAD_RUN_ID` | `<UTC time>-<scenario>` | the `run_id` label of every load-generator series |
| `CHATLOAD_RUN_DIR` | none | where the master writes hist/, checker.json, timeline.json |
| `CHATLOAD_METRICS_PORT` | `9646` | the master's Prometheus endpoint (0: none) |
| `CHATLOAD_METRICS_HOST` | `127.0.0.1` | its listen address |
| `CHATLOAD_METRICS_LINGER` | `0` | seconds the master serves its final figures after the run (for a last scrape) |
| `CHATLOAD_PAIR_STRIDE` | `1` | the number of worker processes: pair indexes interleave across them |
| `CHATLOAD_ID_BASE` | `7000000000` | first user id of the harness's own users (far from seeded ones) |
| `CHATLOAD_SOURCE_ADDRESSES` | none | local addresses (127.0.0.x, comma-separated) the clients bind to, by user |
| `CHATLOAD_GC_THRESHOLD` | `50000,20,10` | the process's `gc.set_threshold` (loadtests/gctune.py says why) |
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from gevent.event import Event

from loadtests.gctune import DEFAULT_THRESHOLD, parse_threshold
from scenarios.model import Scenario, load_scenario

ACK_TIMEOUT = 10.0          # seconds before an unanswered send counts as failed (and is retried)
SEND_TRIES = 5              # tries of one send (same client_message_id), with backoff, before it counts as failed
RETRY_BACKOFF = (0.5, 8.0)  # seconds: the first retry's delay, doubling per try, and its cap (longer Retry-After wins)
RECONNECT_BACKOFF = (1.0, 16.0)  # seconds: a failed connect's backoff ceiling, doubling per failure, and its cap
LAG_WARNING = 0.1           # seconds late against the open-model schedule before the generator warns


class ConfigError(Exception):
    """A missing or bad CHATLOAD_* setting: one line, shown to the user."""


@dataclass(frozen=True)
class Config:
    scenario: Scenario
    jwt_secret: str
    targets: tuple[str, ...]
    run_id: str
    run_dir: Path | None
    metrics_port: int
    metrics_host: str
    pair_stride: int
    id_base: int
    metrics_linger: float = 0.0
    source_addresses: tuple[str, ...] = ()
    gc_threshold: tuple[int, int, int] = DEFAULT_THRESHOLD

    @classmethod
    def from_env(cls, host: str | None = None) -> Config:
        env = os.environ
        # a run folder's copy is named scenario.yaml: its name is the scenario's, not the file's
        scenario = load_scenario(env.get("CHATLOAD_SCENARIO", "smoke"), check_name=False)
        secret = env.get("CHATLOAD_JWT_SECRET") or env.get("JWT_SECRET") or ""
        if not secret:
            raise ConfigError("CHATLOAD_JWT_SECRET (or JWT_SECRET) must hold the service's JWT secret")
        raw_targets = env.get("CHATLOAD_TARGETS") or host or ""
        targets = tuple(t.strip().rstrip("/") for t in raw_targets.split(",") if t.strip())
        run_id = env.get("CHATLOAD_RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + scenario.name
        run_dir = Path(env["CHATLOAD_RUN_DIR"]) if env.get("CHATLOAD_RUN_DIR") else None
        try:
            port = int(env.get("CHATLOAD_METRICS_PORT", "9646"))
            stride = int(env.get("CHATLOAD_PAIR_STRIDE", "1"))
            base = int(env.get("CHATLOAD_ID_BASE", "7000000000"))
            linger = float(env.get("CHATLOAD_METRICS_LINGER", "0"))
        except ValueError as exc:
            raise ConfigError(f"CHATLOAD_* numbers: {exc}") from exc
        if stride < 1 or base < 1 or not 0 <= port < 65536 or not 0 <= linger <= 300:
            raise ConfigError("CHATLOAD_PAIR_STRIDE and CHATLOAD_ID_BASE must be >= 1, the port 0..65535, "
                              "CHATLOAD_METRICS_LINGER 0..300 s")
        sources = tuple(a.strip() for a in env.get("CHATLOAD_SOURCE_ADDRESSES", "").split(",") if a.strip())
        for address in sources:
            try:
                socket.inet_aton(address)
            except OSError:
                raise ConfigError(f"CHATLOAD_SOURCE_ADDRESSES: {address!r} is not an IPv4 address") from None
        try:
            threshold = parse_threshold(env.get("CHATLOAD_GC_THRESHOLD"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(scenario, secret, targets, run_id, run_dir, port, env.get("CHATLOAD_METRICS_HOST", "127.0.0.1"),
                   stride, base, linger, sources, threshold)

    # the harness's own users: pairs, REST users and upload users never share ids
    def pair_ids(self, index: int) -> tuple[int, int]:
        return self.id_base + 2 * index, self.id_base + 2 * index + 1

    def rest_ids(self, index: int, conversations: int) -> tuple[int, list[int]]:
        """A REST user is an artist with `conversations` customers."""
        artist = self.id_base + 100_000_000 + index * 1000
        return artist, [artist + 1 + k for k in range(conversations)]

    def upload_ids(self, index: int) -> tuple[int, int]:
        return self.id_base + 200_000_000 + 2 * index, self.id_base + 200_000_000 + 2 * index + 1

    def source_address(self, index: int) -> str | None:
        """The local address user `index` connects from (None: the system's choice)."""
        return self.source_addresses[index % len(self.source_addresses)] if self.source_addresses else None

    def target(self, index: int, fallback: str) -> str:
        return self.targets[index % len(self.targets)] if self.targets else fallback


@dataclass
class RunState:
    """Per process: when this process's test started and how far the chat users are."""

    t0: float = 0.0
    send_duration: float = 0.0
    send_end_override: float = 0.0      # set when a capacity run stops at a breach
    pairs_started: int = 0
    pairs_finalized: int = 0
    spawned: bool = False               # Locust has spawned every user this process will hold
    indexes: dict[str, int] = field(default_factory=dict)
    started: Event = field(default_factory=Event)   # set with t0: users wait on it, not in a polling loop

    def start(self, t0: float, send_duration: float) -> None:
        """The run's clock: the schedule of stages and sends counts from `t0`."""
        self.t0, self.send_duration = t0, send_duration
        self.started.set()

    def send_end(self) -> float:
        return self.send_end_override or self.t0 + self.send_duration

    def next_index(self, kind: str, worker_index: int, stride: int) -> int:
        """Deterministic, interleaved across workers: worker w of W gets w, w + W, w + 2W, ..."""
        local = self.indexes.get(kind, 0)
        self.indexes[kind] = local + 1
        return max(worker_index, 0) + local * stride


RUN = RunState()


def active_pairs(pairs: int, most_pairs: int, started: int, processes: int, *, spawned: bool) -> int:
    """How many of one process's pairs (its first, by rank) a stage of `pairs` out of the scenario's `most_pairs`
    makes active. Its share of the pairs it holds, counted as its part of the peak while Locust still spawns: a
    share of those started so far would connect a stage's users at a fraction of `connect_rate` (a quarter of it
    for a 5,000-user stage of 20,000), since the parked ones are spawned at the same rate."""
    if pairs >= most_pairs:
        return started
    held = started if spawned else max(started, -(-most_pairs // max(processes, 1)))
    return round(pairs * held / most_pairs) if most_pairs else 0


class Pacer:
    """Evenly spaced slots at `rate` a second (0: no pacing): `delay(n)` books n and says how long to wait for the
    last. A process paces its users' first connects with one, so a stage's new users connect at the persona's
    `connect_rate` (Locust has spawned every pair before the run's clock starts)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_slot = 0.0

    def delay(self, n: int, now: float) -> float:
        if not self.interval:
            return 0.0
        start = max(now, self.next_slot)
        self.next_slot = start + n * self.interval
        return max(self.next_slot - self.interval - now, 0.0)

