"""The harness's Locust entry point: `locust -f loadtests/locustfile.py` (headless through
`python -m scenarios run NAME`, or the web UI by hand; the CHATLOAD_* variables of loadtests/config.py say
which scenario, secret and targets).

The scenario decides how many users of each persona run (fixed counts), the shape runs them until the last send,
the grace period and the pairs' final `sync` are over. Every process records full-resolution histograms; workers
send them with their regular reports, the master writes them to the run folder and exports the loadgen_* series.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from typing import Any

import gevent
from locust import LoadTestShape, argument_parser, between, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from prometheus_client import CollectorRegistry, start_http_server

from loadtests import chat, gctune, rest
from loadtests.aggregate import Aggregate
from loadtests.breach import breaches
from loadtests.config import RUN, Config, ConfigError
from scenarios.model import ScenarioError

log = logging.getLogger("loadtests")
REPORT_INTERVAL = 3.0
FINAL_SYNC_LIMIT = 60.0   # seconds after the grace period the pairs get for their final sync

try:
    CONFIG = Config.from_env()
except (ConfigError, ScenarioError) as exc:
    sys.stderr.write(f"loadtests: {exc}\n")
    raise SystemExit(2) from exc

GC_PAUSES = gctune.install(CONFIG.gc_threshold)
# Locust's worker, on every spawn message of a ramp, rebuilds its whole argument parser once per option the master
# sent (`default_args_dict()` inside a comprehension's condition): py-spy put 40 % of a worker's CPU there while
# 20,000 users ramped. The defaults are the same every time, so they are computed once.
argument_parser.default_args_dict = functools.cache(argument_parser.default_args_dict)
SCENARIO = CONFIG.scenario
STAGES = SCENARIO.resolved_stages()
PAIRS = max(s.pairs for s in STAGES)
REST_USERS = max(s.rest_users for s in STAGES)
UPLOAD_USERS = max(s.upload_users for s in STAGES)
_CHAT = SCENARIO.personas.chat
TOTAL_USERS = PAIRS + REST_USERS + UPLOAD_USERS
# With a persona connect rate (the scenarios sized in connected users), Locust spawns every user before the run's
# clock starts, unconnected, and the connect pacer spaces the first connects at that rate: spawning 10,000 pairs at
# the connect rate ran through the first stage's plateau of `users-held` (80 s) and took its share of the CPU the
# stage was judged on. Without one, Locust's spawn is the ramp: everyone in about 5 s, the clock running.
PRESPAWN = _CHAT is not None and bool(_CHAT.connect_rate)
SPAWN_RATE = max(100.0, TOTAL_USERS / 10.0) if PRESPAWN else max(10.0, TOTAL_USERS / 5.0)


class ChatPairUser(chat.ChatPair):
    abstract = PAIRS == 0
    fixed_count = PAIRS
    config = CONFIG


class RestQueryUser(rest.RestUser):
    abstract = REST_USERS == 0
    fixed_count = REST_USERS
    config = CONFIG
    if SCENARIO.personas.rest is not None:
        wait_time = between(*SCENARIO.personas.rest.wait)


class PhotoUser(rest.UploadUser):
    abstract = UPLOAD_USERS == 0
    fixed_count = UPLOAD_USERS
    config = CONFIG
    if SCENARIO.personas.upload is not None:
        wait_time = between(*SCENARIO.personas.upload.wait)


class ScenarioShape(LoadTestShape):
    """Every user from the start (pairs a stage does not use stay parked, unconnected); the run ends when every
    pair has done its final sync after the grace period, or FINAL_SYNC_LIMIT later."""

    def tick(self) -> tuple[int, float] | None:
        if _started["t0"]:
            now, drained = time.time(), RUN.send_end() + SCENARIO.grace
            if now >= drained + FINAL_SYNC_LIMIT:
                return None
            if now >= drained + REPORT_INTERVAL and (AGG is None or AGG.finalized() >= PAIRS):
                return None
        return TOTAL_USERS, SPAWN_RATE


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
AGG: Aggregate | None = None
_started: dict[str, Any] = {"t0": 0.0, "environment": None}
_stopped: dict[str, Any] = {"early": False, "reason": ""}
STOP_MESSAGE = "chatload_stop_sending"
START_MESSAGE = "chatload_start"    # the master's t0, to its workers, once every user is spawned (PRESPAWN)


def _payload(worker: int) -> dict[str, Any]:
    return {"intervals": chat.RECORDER.flush(worker), "checker": chat.CHECKER.totals(),
            "finalized": RUN.pairs_finalized, "started": RUN.pairs_started,
            "process": {"at": round(time.time(), 3), "connections": chat.open_connections(), "rss_bytes": _rss(),
                        "gc_seconds": round(GC_PAUSES.total, 6),
                        "gc_longest_seconds": round(GC_PAUSES.take_longest(), 6)}}


def _rss() -> int:
    """This process's resident memory in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _timeline(end: float, *, final: bool) -> dict[str, Any]:
    """What the shape did; at the end, a run stopped before its last send (Ctrl-C) has its sends end there."""
    t0 = _started["t0"]
    send_end = min(RUN.send_end(), end) if final else RUN.send_end()
    return {"run_id": CONFIG.run_id, "t0": round(t0, 3), "warmup_end": round(t0 + SCENARIO.warmup, 3),
            "send_end": round(send_end, 3), "end": round(end, 3), "stopped_early": _stopped["early"],
            "stop_reason": _stopped["reason"],
            "stages": [_stage_entry(s, t0, send_end) for s in STAGES]}


def _stage_entry(stage: Any, t0: float, send_end: float) -> dict[str, Any]:
    """A stage as it ran: cut at the end of the sends; start and end null when the run stopped before it began."""
    start = t0 + stage.offset
    ran = start < send_end
    return {"index": stage.index, "start": round(start, 3) if ran else None,
            "end": round(min(start + stage.duration, send_end), 3) if ran else None, "settle": stage.settle,
            "messages_per_second": stage.messages_per_second, "pairs": stage.pairs, "users": stage.users,
            "rest_users": stage.rest_users,
            "upload_users": stage.upload_users}


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global AGG
    _started["environment"] = environment
    runner = environment.runner
    if runner is not None:
        runner.register_message(STOP_MESSAGE, _on_stop_message)
        runner.register_message(START_MESSAGE, _on_start_message)
    if not isinstance(runner, MasterRunner):
        environment.events.request.add_listener(_on_request)
    if isinstance(runner, WorkerRunner):
        environment.events.report_to_master.add_listener(
            lambda client_id, data: data.update(chatload=_payload(runner.worker_index)))
        return

    def cpu() -> dict[str, float]:
        if isinstance(runner, MasterRunner):
            return {str(runner.get_worker_index(c.id)): c.cpu_usage / 100.0 for c in runner.clients.values()}
        return {"0": getattr(runner, "current_cpu_usage", 0.0) / 100.0}

    AGG = Aggregate(CONFIG.run_id, CONFIG.run_dir, users=lambda: runner.user_count if runner else 0,
                    requests=lambda: [(e.name, e.method, e.num_requests, e.num_failures)
                                      for e in environment.stats.entries.values()],
                    cpu=cpu)
    if CONFIG.metrics_port:
        registry = CollectorRegistry()
        registry.register(AGG)
        try:
            start_http_server(CONFIG.metrics_port, CONFIG.metrics_host, registry)
        except OSError as exc:
            log.error("load generator metrics: cannot listen on %s:%s: %s", CONFIG.metrics_host,
                      CONFIG.metrics_port, exc)
    if isinstance(runner, MasterRunner):
        environment.events.worker_report.add_listener(
            lambda client_id, data: AGG.add_report(client_id, data.get("chatload") or {}) if AGG else None)
    else:
        gevent.spawn(_local_reports)


def _local_reports() -> None:
    while True:
        gevent.sleep(REPORT_INTERVAL)
        if AGG is not None:
            AGG.add_report("local", _payload(0))


def _on_request(request_type: str, name: str, response_time: float, exception: BaseException | None,
                **_: Any) -> None:
    chat.RECORDER.record(request_type, name, response_time / 1000.0, failed=exception is not None)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if not PRESPAWN:
        _start_clock(environment, time.time())


@events.spawning_complete.add_listener
def _on_spawning_complete(**_: Any) -> None:
    environment = _started["environment"]
    runner = environment.runner
    RUN.spawned = True
    gctune.freeze()     # every pair this process holds is built: out of the collector's reach from now on
    if PRESPAWN and not _started["t0"] and not isinstance(runner, WorkerRunner):
        at = time.time()
        log.info("every user is spawned (%d): the run's clock starts", TOTAL_USERS)
        if isinstance(runner, MasterRunner):
            runner.send_message(START_MESSAGE, {"at": at})
        _start_clock(environment, at)


def _start_clock(environment: Environment, t0: float) -> None:
    """Stages, sends and the timeline count from `t0`: the test's start, or with PRESPAWN the end of the spawn."""
    _started["t0"] = t0
    RUN.start(t0, SCENARIO.send_duration)
    if AGG is not None and CONFIG.run_dir is not None:
        _write_timeline(time.time(), final=False)
    capacity = SCENARIO.capacity
    if AGG is not None and capacity is not None and capacity.stop_on_breach:
        gevent.spawn(_watch_plateaus, environment)


def _on_start_message(environment: Environment, msg: Any, **_: Any) -> None:
    if not _started["t0"]:
        _start_clock(environment, float(msg.data["at"]))


def _on_stop_message(environment: Environment, msg: Any, **_: Any) -> None:
    RUN.send_end_override = float(msg.data["at"])


def _watch_plateaus(environment: Environment) -> None:
    """Capacity runs: check each stage's plateau once its intervals are in; a breach ends the sends."""
    t0 = _started["t0"]
    for stage in STAGES[:-1]:        # the last stage ends the sends anyway
        end = t0 + stage.offset + stage.duration
        gevent.sleep(max(end + 2 * REPORT_INTERVAL - time.time(), 0))
        assert AGG is not None
        slos = [slo for slo in SCENARIO.slos if slo.stage in (None, stage.index)]
        plateau = [slo for slo in slos if not slo.whole_stage]     # connects are judged with the settle too
        broken = (breaches(plateau, AGG.window(t0 + stage.offset + stage.settle, end))
                  + breaches([slo for slo in slos if slo.whole_stage], AGG.window(t0 + stage.offset, end)))
        if broken:
            at = time.time()
            _stopped.update(early=True, reason=f"stage {stage.index} ({stage.messages_per_second:g} messages/s) "
                                               f"broke: {'; '.join(broken)}")
            log.warning("capacity: %s; the sends stop now", _stopped["reason"])
            if environment.runner is not None:
                environment.runner.send_message(STOP_MESSAGE, {"at": at})
            RUN.send_end_override = at
            return


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    _finish(environment)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    _finish(environment)
    if AGG is not None and CONFIG.metrics_port and CONFIG.metrics_linger > 0:
        # the checker's final counts exist only now: keep serving them until Prometheus has scraped them once
        log.info("serving the final figures on :%d for %.0f s", CONFIG.metrics_port, CONFIG.metrics_linger)
        time.sleep(CONFIG.metrics_linger)


def _finish(environment: Environment) -> None:
    if AGG is None:
        return
    if not isinstance(environment.runner, MasterRunner):
        AGG.add_report("local", _payload(0))
    if CONFIG.run_dir is not None and _started["t0"]:
        _write_timeline(time.time(), final=True)
    AGG.close()
    totals = AGG.checker_totals()
    log.info("delivery checker: %s", " ".join(f"{k}={v}" for k, v in totals.items()))
    if AGG.unfinished():
        log.warning("%d pairs did not finish their final sync: their losses are not counted (lost SLOs fail)",
                    AGG.unfinished())


def _write_timeline(end: float, *, final: bool) -> None:
    assert CONFIG.run_dir is not None
    CONFIG.run_dir.mkdir(parents=True, exist_ok=True)
    (CONFIG.run_dir / "timeline.json").write_text(json.dumps(_timeline(end, final=final), indent=1) + "\n")
