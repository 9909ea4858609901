"""Fault injection during a run: the scenario's `faults`, begun and undone on schedule by a fault command, with
the instances' health watched from each fault's start until they all answer healthy again. Writes faults.json.

The runner knows nothing of processes: the command does the work (`python -m stack fault` on the local stack,
which `python -m stack run` passes). It is called as `COMMAND begin|end ACTION --instance N` and must exit 0
once the fault is in place or undone. A fault begun is always undone, also when the run stops early.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scenarios.model import Fault

FAULTS_FILE = "faults.json"
COMMAND_TIMEOUT = 90.0      # stopping PostgreSQL waits for its shutdown; starting it, for its recovery
HEALTH_EVERY = 0.5
HEALTH_TIMEOUT = 1.0
BACK_WITHIN = 120.0         # after the fault is undone: how long the instances get to answer healthy again
UNDO_TRIES = 3              # an undo that fails is tried again, 2 s apart: a fault must not outlive the run


@dataclass
class Step:
    """One call of the fault command."""

    at: float
    rc: int | None
    output: str


@dataclass
class Outage:
    """An instance's /health not answering 200 during a fault: from the first miss to the first 200 after it."""

    instance: str
    start: float
    end: float | None = None
    last: str = ""


@dataclass
class FaultRun:
    """A fault as it ran; times are epoch seconds."""

    action: str
    instance: int
    planned_at: float
    duration: float
    begin: Step | None = None
    end: Step | None = None
    healthy_at: float | None = None
    outages: list[Outage] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultSchedule(threading.Thread):
    """Runs the faults in order once the run's t0 is in timeline.json; `stop()` undoes whatever is in place."""

    def __init__(self, faults: list[Fault], command: list[str], run_dir: Path, instances: list[str],
                 *, log: Any = print) -> None:
        super().__init__(name="faults", daemon=True)
        self.faults = sorted(faults, key=lambda f: f.at)
        self.command = command
        self.run_dir = run_dir
        self.instances = instances
        self.log = log
        self.runs: list[FaultRun] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def stop(self, timeout: float = COMMAND_TIMEOUT * (UNDO_TRIES + 1) + BACK_WITHIN) -> None:
        """Undo what is in place and wait for the thread (its undo calls and the health watch are bounded)."""
        self._stopping.set()
        self.join(timeout)
        if self.is_alive():
            self.log("fault: the fault thread did not finish: check the stack (python -m stack status)")

    def run(self) -> None:
        t0 = self._wait_for_t0()
        try:
            for fault in self.faults:
                if t0 is None or self._stopping.is_set():
                    return
                self._one(fault, t0)
        finally:
            self._undo_all()
            self._write()

    # --- one fault
    def _one(self, fault: Fault, t0: float) -> None:
        entry = FaultRun(fault.action, fault.instance, planned_at=t0 + fault.at, duration=fault.duration)
        with self._lock:
            self.runs.append(entry)
        if not self._sleep_until(entry.planned_at):
            self.runs.remove(entry)
            return
        self.log(f"fault: {fault.action} begins ({self._describe(fault)})")
        entry.begin = self._call("begin", entry)
        self._write()
        if entry.begin.rc != 0:
            self.log(f"fault: {fault.action} could not begin (exit {entry.begin.rc}): {entry.begin.output[-300:]}")
        self._watch(entry, until=entry.begin.at + fault.duration, stop_when_healthy=False)
        self._finish(entry)
        self._watch(entry, until=time.time() + BACK_WITHIN, stop_when_healthy=True)
        back = "never" if entry.healthy_at is None else f"{entry.healthy_at - entry.end.at:.1f} s" if entry.end else "?"
        self.log(f"fault: {fault.action} undone; instances healthy again after {back}")
        self._write()

    def _finish(self, entry: FaultRun) -> None:
        if entry.end is not None or entry.begin is None:
            return
        for attempt in range(UNDO_TRIES):
            if attempt:
                time.sleep(2.0)
            entry.end = self._call("end", entry)
            if entry.end.rc == 0:
                return
            self.log(f"fault: {entry.action} could not be undone (exit {entry.end.rc}): {entry.end.output[-300:]}")
        self.log(f"fault: {entry.action} is still in place: undo it with the fault command's 'end'")

    def _undo_all(self) -> None:
        for entry in list(self.runs):
            self._finish(entry)

    def _call(self, verb: str, entry: FaultRun) -> Step:
        at = time.time()
        try:
            # a session of its own: a Ctrl-C meant for the run must not kill an undo half-way
            done = subprocess.run([*self.command, verb, entry.action, "--instance", str(entry.instance)],
                                  capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
                                  start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Step(at, None, f"{type(exc).__name__}: {exc}")
        return Step(at, done.returncode, (done.stdout + done.stderr).strip()[-2000:])

    # --- health
    def _watch(self, entry: FaultRun, *, until: float, stop_when_healthy: bool) -> None:
        """Poll every instance's /health until `until` (or, when asked, until all answer healthy)."""
        open_outages: dict[str, Outage] = {o.instance: o for o in entry.outages if o.end is None}
        while True:
            now = time.time()
            states = {url: _health(url) for url in self.instances}
            for url, state in states.items():
                outage = open_outages.get(url)
                if state is None and outage is not None:
                    outage.end = now
                    del open_outages[url]
                elif state is not None:
                    if outage is None:
                        outage = open_outages[url] = Outage(url, now)
                        entry.outages.append(outage)
                    outage.last = state
            if stop_when_healthy and not open_outages:
                entry.healthy_at = now
                return
            if now >= until or (self._stopping.is_set() and not stop_when_healthy):
                return
            time.sleep(HEALTH_EVERY)

    # --- plumbing
    def _wait_for_t0(self) -> float | None:
        while not self._stopping.is_set():
            try:
                return float(json.loads((self.run_dir / "timeline.json").read_text())["t0"])
            except (OSError, ValueError, KeyError, TypeError):
                time.sleep(0.2)
        return None

    def _sleep_until(self, t: float) -> bool:
        """False when the run stopped first."""
        return not self._stopping.wait(max(t - time.time(), 0.0))

    def _describe(self, fault: Fault) -> str:
        what = f"instance {fault.instance}" if fault.action == "kill-instance" else "the dependency"
        return f"{what}, for {fault.duration:g} s"

    def _write(self) -> None:
        with self._lock:
            data = [entry.as_dict() for entry in self.runs if entry.begin is not None]
        (self.run_dir / FAULTS_FILE).write_text(json.dumps({"faults": data}, indent=1) + "\n")


def _health(url: str) -> str | None:
    """None when /health answers 200, else what it said instead."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=HEALTH_TIMEOUT) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
