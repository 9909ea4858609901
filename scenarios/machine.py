"""The machine's CPU by part while a run lasts: `machine.jsonl` in the run folder.

When the load generator, the service instances, PostgreSQL, Redis, nginx and the monitoring share one machine
(the local stack), what bounds a run is often not one part but the machine: a generator taking a third of the
cores leaves the instances less than they would have alone. Every `EVERY` seconds a thread reads each process's
CPU time (psutil, /proc) and writes one line of cores used per part over the interval, beside the machine's busy
cores (/proc/stat) and its CPU count:

    {"at": 1796647693.2, "interval": 2.0, "cpus": 2, "busy": 1.93,
     "cores": {"load generator": 0.61, "service 127.0.0.1:5240": 0.47, "postgres": 0.31, ...}}

Parts: the load generator is the runner's own process and everything under it (the Locust master and workers);
a service instance is the process listening on its URL's port (and its children); then PostgreSQL, Redis, nginx,
monitoring (Prometheus, Alertmanager, exporters) by process name, and the rest as `other`. A remote instance has
no process here: its part is absent, and the machine's figures are this machine's only.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psutil

MACHINE_FILE = "machine.jsonl"
EVERY = 2.0
YOUNG = 30.0   # seconds: a process this young and not yet known is asked again (an instance still booting)
GENERATOR = "load generator"
BY_NAME = (("postgres", "postgres"), ("redis-server", "redis"), ("nginx", "nginx"), ("prometheus", "monitoring"),
           ("alertmanager", "monitoring"), ("_exporter", "monitoring"))


def _local_ports(instances: list[str]) -> dict[int, str]:
    """{port: part name} of the instances whose host is this machine's loopback."""
    ports = {}
    for url in instances:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname in ("127.0.0.1", "localhost", "::1") or (parts.hostname or "").startswith("127."):
            ports[parts.port or (443 if parts.scheme == "https" else 80)] = f"service {parts.hostname}:{parts.port}"
    return ports


class CpuByPart:
    """Samples in a thread from `start()` to `stop()`; `generator_seconds` is the generator tree's CPU meanwhile
    (workers included, which a process's children rusage misses while the master has not reaped them)."""

    def __init__(self, run_dir: Path, instances: list[str], *, every: float = EVERY, root: int | None = None) -> None:
        self.path = Path(run_dir) / MACHINE_FILE
        self.every = every
        self.root = os.getpid() if root is None else root
        self.ports = _local_ports(instances)
        self.generator_seconds = 0.0
        self._parts: dict[tuple[int, float], str] = {}    # (pid, create time) -> part, decided once per process
        self._cpu: dict[tuple[int, float], float] = {}    # CPU seconds at the previous sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-by-part", daemon=True)
        self._last: tuple[float, float, float] | None = None   # (time, busy seconds, total seconds) of /proc/stat

    def start(self) -> CpuByPart:
        self.sample(write=False)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sample()
            except Exception:  # best effort: a sample that fails must not end a run
                continue

    def sample(self, write: bool = True) -> dict[str, Any] | None:
        """Read every process once; append the interval since the previous sample to machine.jsonl."""
        now = time.time()
        times = psutil.cpu_times()
        total = sum(times)
        busy = total - times.idle - getattr(times, "iowait", 0.0)
        procs: dict[tuple[int, float], tuple[int, str, int, float]] = {}
        for proc in psutil.process_iter(["ppid", "name", "create_time", "cpu_times"]):
            info = proc.info
            if info.get("cpu_times") is None or info.get("create_time") is None:
                continue
            seconds = info["cpu_times"].user + info["cpu_times"].system
            procs[(proc.pid, info["create_time"])] = (info["ppid"] or 0, info["name"] or "", proc.pid, seconds)
        parent = {pid: ppid for (pid, _), (ppid, _, _, _) in procs.items()}
        cores: dict[str, float] = {}
        for key, (_, name, pid, seconds) in procs.items():
            part = self._parts.get(key)
            if part is None:
                part = self._classify(pid, name, parent)
                if part != "other" or now - key[1] > YOUNG:
                    self._parts[key] = part
            before = self._cpu.get(key)
            self._cpu[key] = seconds
            # a process new since the last sample counts from its start: at most one interval of it is missed
            spent = seconds - before if before is not None else (seconds if self._last else 0.0)
            cores[part] = cores.get(part, 0.0) + max(spent, 0.0)
        for key in set(self._cpu) - set(procs):
            del self._cpu[key]
            self._parts.pop(key, None)
        self.generator_seconds += cores.get(GENERATOR, 0.0) if self._last else 0.0
        last, self._last = self._last, (now, busy, total)
        if last is None or not write:
            return None
        interval = now - last[0]
        if interval <= 0:
            return None
        cpus = psutil.cpu_count() or 1
        line = {"at": round(now, 3), "interval": round(interval, 3), "cpus": cpus,
                "busy": round((busy - last[1]) / max(total - last[2], 1e-9) * cpus, 3),
                "cores": {part: round(spent / interval, 3) for part, spent in sorted(cores.items()) if spent > 0}}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
        return line

    def _classify(self, pid: int, name: str, parent: dict[int, int]) -> str:
        seen = 0
        ancestor = pid
        while ancestor and seen < 64:   # the generator: the runner and what it started
            if ancestor == self.root:
                return GENERATOR
            ancestor, seen = parent.get(ancestor, 0), seen + 1
        for fragment, part in BY_NAME:
            if fragment in name:
                return part
        for candidate in (pid, parent.get(pid, 0)):   # an instance, or a worker process of one
            if candidate and (found := self._instance(candidate)) is not None:
                return found
        return "other"

    def _instance(self, pid: int) -> str | None:
        """The instance listening in process `pid`: asked only of a Python process or one whose command line
        names an instance's port (reading a process's sockets parses the machine's whole TCP table)."""
        if not self.ports:
            return None
        try:
            proc = psutil.Process(pid)
            command = " ".join(proc.cmdline())
            if not proc.name().startswith("python") and not any(str(port) in command for port in self.ports):
                return None
            listening = {c.laddr.port for c in proc.net_connections(kind="inet")
                         if c.status == psutil.CONN_LISTEN}
        except (psutil.Error, OSError):
            return None
        return next((part for port, part in self.ports.items() if port in listening), None)
