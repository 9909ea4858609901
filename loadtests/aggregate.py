"""The master's side: what the workers report, merged, written to the run folder and exported to Prometheus.

Each worker's report (about every 3 s) carries its interval histograms (`recorder.Recorder.flush`), its delivery
checker's running totals and how many of its pairs have finished. The master appends the intervals to
`hist/<slug>.jsonl`, adds them into fixed Prometheus buckets (so the exported histograms merge across workers and
runs like any Prometheus histogram), and serves, on :9646 while the run lasts, the series named in DESIGN.md,
every one labelled `run_id`: loadgen_users, loadgen_requests_total, loadgen_request_failures_total,
loadgen_request_duration_seconds, loadgen_message_delivery_seconds, loadgen_schedule_lag_seconds,
the checker's loadgen_messages_lost_total, loadgen_messages_duplicated_total, loadgen_messages_out_of_order_total,
loadgen_messages_redelivered_total, loadgen_messages_sent_total, loadgen_messages_acked_total,
loadgen_messages_delivered_total, loadgen_cpu_ratio, and per worker process the socket.io connections it holds
(loadgen_connections) and its resident memory (loadgen_resident_memory_bytes). Those two go to `generator.jsonl`
too, one line per report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from hdrh.histogram import HdrHistogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from loadtests.checker import merge
from loadtests.recorder import BUCKETS, LAG, new_histogram, slug

DELIVERY = ("WS", "message:new")


class _Buckets:
    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0

    def add(self, counts: list[int], total: float) -> None:
        for i, count in enumerate(counts):
            self.counts[i] += count
        self.total += total

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(BUCKETS, self.counts, strict=True):
            running += count
            out.append(("+Inf" if math.isinf(bound) else repr(bound), running))
        return out


class Aggregate(Collector):
    """Merged worker data of one run; also the Prometheus collector of the loadgen_* series."""

    def __init__(self, run_id: str, run_dir: Path | None, *,
                 users: Callable[[], int] = lambda: 0,
                 requests: Callable[[], list[tuple[str, str, int, int]]] = list,
                 cpu: Callable[[], dict[str, float]] = dict) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self._users, self._requests, self._cpu = users, requests, cpu
        self._buckets: dict[tuple[str, str], _Buckets] = {}
        self._checker: dict[str, dict[str, int]] = {}
        self._finalized: dict[str, int] = {}
        self._started: dict[str, int] = {}
        self._files: dict[str, IO[str]] = {}
        self._records: list[tuple[float, str, str, int, int, str]] = []   # (mid, method, name, count, failures, hdr)
        self._index: dict[str, dict[str, str]] = {}
        self._process: dict[str, dict[str, Any]] = {}
        self._process_log: IO[str] | None = None

    # --- what workers send
    def add_report(self, client_id: str, data: dict[str, Any]) -> None:
        for record in data.get("intervals", ()):
            self._add_interval(record)
        if "checker" in data:
            self._checker[client_id] = data["checker"]
        if "finalized" in data:
            self._finalized[client_id] = int(data["finalized"])
        if "started" in data:
            self._started[client_id] = int(data["started"])
        if isinstance(data.get("process"), dict):
            self._add_process(client_id, data["process"])

    def _add_process(self, client_id: str, process: dict[str, Any]) -> None:
        self._process[client_id] = process
        if self.run_dir is None:
            return
        if self._process_log is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._process_log = (self.run_dir / "generator.jsonl").open("a", encoding="utf-8")
        line = {"worker": client_id, "at": process.get("at"), "connections": process.get("connections"),
                "rss_bytes": process.get("rss_bytes"), "gc_seconds": process.get("gc_seconds"),
                "gc_longest_seconds": process.get("gc_longest_seconds")}
        self._process_log.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._process_log.flush()

    def _add_interval(self, record: dict[str, Any]) -> None:
        key = (record["method"], record["name"])
        self._records.append(((record["start"] + record["end"]) / 2, key[0], key[1], record["count"],
                              record["failures"], record["hdr"]))
        if record["hdr"]:
            self._buckets.setdefault(key, _Buckets()).add(record["buckets"], record["sum"])
        if self.run_dir is None:
            return
        name = slug(*key)
        out = self._files.get(name)
        if out is None:
            hist = self.run_dir / "hist"
            hist.mkdir(parents=True, exist_ok=True)
            out = self._files[name] = (hist / f"{name}.jsonl").open("a", encoding="utf-8")
            self._index[name] = {"method": key[0], "name": key[1]}
            (hist / "index.json").write_text(json.dumps(self._index, indent=1, sort_keys=True) + "\n")
        line = {k: record[k] for k in ("worker", "start", "end", "count", "failures", "hdr")}
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        out.flush()

    def window(self, start: float, end: float) -> dict[tuple[str, str], tuple[HdrHistogram, int, int]]:
        """Per request: (merged histogram, count, failures) of the intervals whose midpoint is in [start, end)."""
        out: dict[tuple[str, str], tuple[HdrHistogram, int, int]] = {}
        for mid, method, name, count, failures, hdr in self._records:
            if start <= mid < end:
                hist, total, failed = out.get((method, name)) or (new_histogram(), 0, 0)
                if hdr:
                    hist.add(HdrHistogram.decode(hdr))
                out[(method, name)] = (hist, total + count, failed + failures)
        return out

    def checker_totals(self) -> dict[str, int]:
        return merge(list(self._checker.values()))

    def finalized(self) -> int:
        return sum(self._finalized.values())

    def unfinished(self) -> int:
        """Pairs that started but did not do their final sync (the run ended first): losses undeclared."""
        return max(sum(self._started.values()) - self.finalized(), 0)

    def close(self) -> None:
        for out in self._files.values():
            out.close()
        self._files.clear()
        if self._process_log is not None:
            self._process_log.close()
            self._process_log = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            totals: dict[str, int] = {**self.checker_totals(), "unfinished_pairs": self.unfinished()}
            (self.run_dir / "checker.json").write_text(json.dumps(totals, indent=1) + "\n")

    # --- Prometheus
    def collect(self) -> Iterator[Metric]:
        rid = self.run_id
        users = GaugeMetricFamily("loadgen_users", "Locust users running", labels=["run_id"])
        users.add_metric([rid], self._users())
        yield users
        total = CounterMetricFamily("loadgen_requests", "Requests by Locust name", labels=["run_id", "name", "method"])
        failed = CounterMetricFamily("loadgen_request_failures", "Failed requests by Locust name",
                                     labels=["run_id", "name", "method"])
        for name, method, count, failures in self._requests():
            total.add_metric([rid, name, method], count)
            failed.add_metric([rid, name, method], failures)
        yield total
        yield failed
        durations = HistogramMetricFamily("loadgen_request_duration_seconds",
                                          "Request latency seen by the load generator",
                                          labels=["run_id", "name", "method"])
        for (method, name), buckets in sorted(self._buckets.items()):
            if (method, name) not in (DELIVERY, LAG):
                durations.add_metric([rid, name, method], buckets.cumulative(), buckets.total)
        yield durations
        for (key, metric, doc) in ((DELIVERY, "loadgen_message_delivery_seconds",
                                    "Send to message:new at the receiver (one process clock)"),
                                   (LAG, "loadgen_schedule_lag_seconds",
                                    "How late open-model sends ran against their schedule")):
            family = HistogramMetricFamily(metric, doc, labels=["run_id"])
            buckets = self._buckets.get(key, _Buckets())
            family.add_metric([rid], buckets.cumulative(), buckets.total)
            yield family
        counts = self.checker_totals()
        for counter in ("lost", "duplicated", "out_of_order", "redelivered", "sent", "acked", "delivered"):
            checked = CounterMetricFamily(f"loadgen_messages_{counter}", f"Delivery checker: messages {counter}",
                                          labels=["run_id"])
            checked.add_metric([rid], counts[counter])
            yield checked
        cpu = GaugeMetricFamily("loadgen_cpu_ratio", "CPU of each load-generator process (1 = one core)",
                                labels=["run_id", "worker"])
        for worker, ratio in sorted(self._cpu().items()):
            cpu.add_metric([rid, worker], ratio)
        yield cpu
        connections = GaugeMetricFamily("loadgen_connections", "socket.io connections each generator process holds",
                                        labels=["run_id", "worker"])
        memory = GaugeMetricFamily("loadgen_resident_memory_bytes", "Resident memory of each generator process",
                                   labels=["run_id", "worker"])
        collector = CounterMetricFamily("loadgen_gc_pause_seconds", "Time each generator process stood still in "
                                        "garbage collections (a delivery timed across one is late by it)",
                                        labels=["run_id", "worker"])
        for worker, process in sorted(self._process.items()):
            connections.add_metric([rid, worker], float(process.get("connections") or 0))
            memory.add_metric([rid, worker], float(process.get("rss_bytes") or 0))
            collector.add_metric([rid, worker], float(process.get("gc_seconds") or 0))
        yield connections
        yield memory
        yield collector
