"""`python -m scenarios run NAME`: one scenario against a running service, end to end.

Checks the target is healthy, seeds the scenario's data volume when the database has less (through the service's
own CLI: a process boundary), runs Locust (headless or its web UI, N local worker processes) with the harness's
users and shape, prints progress from the load generator's metrics endpoint, exports the run window from
Prometheus when one answers, and has `reports` compute the verdict. Exit codes: 0 every SLO held, 1 an SLO
breached, 2 the harness failed (target down, bad scenario, Locust crashed or overran), 3 aborted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from scenarios import notifications, promexport
from scenarios.faults import FaultSchedule
from scenarios.machine import CpuByPart
from scenarios.model import Scenario, ScenarioError, load_scenario

EXIT_PASS, EXIT_FAIL, EXIT_ERROR, EXIT_ABORTED = 0, 1, 2, 3
LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtests" / "locustfile.py"
PROGRESS_EVERY = 5.0
USERS_PER_ADDRESS = 25_000   # of the ~28k ephemeral ports (32768-60999) one source address has per target
FD_HEADROOM = 1_000          # files a generator process needs besides its users' sockets
SERVICE_SAMPLES = ("websocket_connections_active", "process_resident_memory_bytes", "process_open_fds",
                   "socketio_connects_total")


class HarnessError(Exception):
    """The run cannot go on: one line for the user, exit code 2."""


def main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (HarnessError, ScenarioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    if args.duration:
        scenario = scenario.with_duration(args.duration)
    if args.rate:
        scenario = _with_peak_rate(scenario, args.rate)
    env_file = _read_env_file(args.env_file)
    secret = args.jwt_secret or os.environ.get("JWT_SECRET") or env_file.get("JWT_SECRET")
    if not secret:
        raise HarnessError("no JWT secret: pass --jwt-secret, set JWT_SECRET or give --env-file (.stack/env)")
    targets = [t.strip().rstrip("/") for t in args.target.split(",") if t.strip()]
    if not targets or any(not t.startswith(("http://", "https://")) for t in targets):
        raise HarnessError(f"--target {args.target!r}: one or more http(s):// URLs, comma-separated")
    if args.prometheus and not args.prometheus.startswith(("http://", "https://")):
        raise HarnessError(f"--prometheus {args.prometheus!r}: an http(s):// URL")
    instances = [t.strip().rstrip("/") for t in (args.instances or "").split(",") if t.strip()] or targets
    if any(not t.startswith(("http://", "https://")) for t in instances):
        raise HarnessError(f"--instances {args.instances!r}: one or more http(s):// URLs, comma-separated")
    fault_command = shlex.split(args.fault_command or "")
    if scenario.faults and not fault_command:
        raise HarnessError(f"{scenario.name} injects faults: run it on the local stack (python -m stack run "
                           f"{scenario.name}) or pass --fault-command")
    for target in dict.fromkeys(targets + instances):
        _check_health(target)
    if scenario.data is not None and not args.no_seed:
        _seed(scenario, args.database_url or os.environ.get("DATABASE_URL") or env_file.get("DATABASE_URL"))
    if not _port_free(args.metrics_port):
        raise HarnessError(f"port {args.metrics_port} is taken (a run or the local stack's Locust?): "
                           "pass --metrics-port")

    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + scenario.name
    run_dir = args.run_dir_root / run_id
    suffix = 1
    while run_dir.exists():                 # two runs started in the same second
        suffix += 1
        run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{scenario.name}-{suffix}"
        run_dir = args.run_dir_root / run_id
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise HarnessError(f"cannot create the run folder {run_dir}: {exc.strerror}") from exc
    (run_dir / "scenario.yaml").write_text(scenario.to_yaml())
    print(f"run {run_id}: {scenario.name} against {', '.join(targets)} "
          f"({_fmt_s(scenario.send_duration)} of sends, warm-up {_fmt_s(scenario.warmup)}); folder {run_dir}")

    sources = _source_addresses(getattr(args, "source_addresses", "none"), scenario)
    args.workers = _check_generator_files(scenario, args.workers)
    command = _locust_command(args, targets[0], run_dir)
    env = {**os.environ, "CHATLOAD_SCENARIO": str(run_dir / "scenario.yaml"), "CHATLOAD_JWT_SECRET": secret,
           "CHATLOAD_TARGETS": ",".join(targets), "CHATLOAD_RUN_ID": run_id, "CHATLOAD_RUN_DIR": str(run_dir),
           "CHATLOAD_METRICS_PORT": str(args.metrics_port),
           "CHATLOAD_PAIR_STRIDE": str(args.workers), "CHATLOAD_SOURCE_ADDRESSES": ",".join(sources)}
    if sources:
        print(f"socket.io clients bind to {len(sources)} source addresses ({sources[0]}..{sources[-1]})")
    linger = _final_scrape_wait(args.prometheus, args.metrics_port)
    if linger:
        env["CHATLOAD_METRICS_LINGER"] = f"{linger:g}"
        print(f"Prometheus scrapes the load generator: its final figures stay up {linger:g} s after the run")
    service_cpu = {t: _process_cpu(t) for t in instances}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if args.web:
        print("the Locust web UI: http://127.0.0.1:8089 (start the run there; Ctrl-C here when it is done)")
    started = time.time()
    faults = FaultSchedule(scenario.faults, fault_command, run_dir, instances) if scenario.faults else None
    if faults is not None:
        faults.start()
    machine = CpuByPart(run_dir, instances).start()
    try:
        status, locust_rc = _run_locust(command, env, run_dir, scenario, args.metrics_port, web=args.web,
                                        instances=instances)
    finally:
        machine.stop()
        if faults is not None:
            faults.stop()   # a fault still in place is undone, whatever ended the run
    aborted = status == "aborted"
    ended = time.time() - (0 if aborted else linger)  # the master's last seconds only served its final figures
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = max(ended - started, 1e-3)
    # the sampler's figure holds the workers, which the children's rusage misses while the master has not reaped
    # them; it also holds the linger, a second or two of an idle master
    generator = max(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, machine.generator_seconds)
    readings = {t: (before, _process_cpu(t)) for t, before in service_cpu.items()}
    service = {t: _cpu_over(before, after) for t, (before, after) in readings.items()}
    restarted = [t for t, (before, after) in readings.items() if before and after and before[1] != after[1]]
    cpu: dict[str, Any] = {"wall_seconds": round(wall, 3), "generator_seconds": round(generator, 3),
                           "service_seconds": service, **({"restarted": restarted} if restarted else {})}
    print(f"cpu over the run: load generator {generator / wall:.0%} of a core, "
          + ", ".join(f"service {t} " + (f"{s / wall:.0%}" if s is not None else
                                         "not known (it restarted)" if t in restarted else "not known")
                      for t, s in service.items()))

    if linger:
        time.sleep(max(linger, _rule_interval(args.prometheus) + 1))  # the alerts see them before the export
    promexport.export(args.prometheus, run_id, run_dir, started, time.time())
    notifications.collect(getattr(args, "alert_sink", None), promexport.prometheus_base(args.prometheus), run_dir,
                          started)
    _write_meta(run_dir, run_id, scenario, targets, instances, args, command, started, ended, locust_rc, aborted,
                cpu)
    if not (run_dir / "timeline.json").exists():
        raise HarnessError(f"Locust ended (exit {locust_rc}) without starting the test; see {run_dir}/locust.log")

    from reports.__main__ import verdict_table
    from reports.build import REPORT_FILE, build

    summary = build(run_dir)
    print(verdict_table(summary) if summary.get("scenario") else f"error: {summary.get('error')}")
    print(f"report: {run_dir / REPORT_FILE}")
    if status == "overran":
        print("error: the run overran its scenario and was stopped (see locust.log)", file=sys.stderr)
        return EXIT_ERROR
    if aborted:
        return EXIT_ABORTED
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(summary.get("verdict", "error"), EXIT_ERROR)


def _source_addresses(raw: str, scenario: Scenario) -> list[str]:
    """The addresses the clients bind to: given, none, or (auto) one 127.0.0.x per USERS_PER_ADDRESS users when
    the scenario holds more than one address reaches (all of 127.0.0.0/8 is loopback on Linux)."""
    raw = (raw or "none").strip()
    if raw == "none":
        return []
    if raw == "auto":
        count = -(-scenario.peak_users // USERS_PER_ADDRESS)
        return [f"127.0.0.{i}" for i in range(1, count + 1)] if count > 1 else []
    addresses = [a.strip() for a in raw.split(",") if a.strip()]
    for address in addresses:
        try:
            socket.inet_aton(address)
            with socket.socket() as probe:
                probe.bind((address, 0))
        except OSError as exc:
            raise HarnessError(f"--source-addresses: cannot bind to {address!r}: {exc}") from None
    return addresses


def _check_generator_files(scenario: Scenario, workers: int | None) -> int:
    """Each connected user is a file in a generator process: raise this process's soft open-file limit to the hard
    one (Locust's processes inherit it), pick the workers when not given (1, or as many as the users need), and
    refuse a run whose users per process cannot fit under it. Returns the workers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    users = scenario.peak_users
    need = max(1, -(-users // max(soft - FD_HEADROOM, 1)))
    if workers is None:
        if need > 1:
            print(f"{users:,} connected users: {need} generator processes (each holds at most "
                  f"{soft - FD_HEADROOM:,} under its open-file limit of {soft:,})")
        return need
    per_process = -(-users // workers)
    if per_process + FD_HEADROOM > soft:
        raise HarnessError(f"{scenario.name} holds {users:,} connected users: {per_process:,} per generator process "
                           f"does not fit under its open-file limit ({soft:,}); pass --workers {need} or more")
    return workers


def _with_peak_rate(scenario: Scenario, rate: float) -> Scenario:
    peak = scenario.peak_messages_per_second
    if rate <= 0 or peak <= 0:
        raise HarnessError(f"--rate must be > 0 and {scenario.name} must send messages")
    stages = [s.model_copy(update={"messages_per_second": round(r.messages_per_second * rate / peak, 3)})
              for s, r in zip(scenario.load.stages, scenario.resolved_stages(), strict=True)]
    return scenario.model_copy(update={"load": scenario.load.model_copy(update={"stages": stages})})


# --- before the run
def _read_env_file(path: Path | None) -> dict[str, str]:
    if path is None:
        default = Path(".stack/env")
        if not default.exists():
            return {}
        path = default
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise HarnessError(f"--env-file {path}: {exc.strerror}") from exc
    out = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def _check_health(target: str) -> None:
    url = f"{target}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise HarnessError(f"target {target} is not healthy: HTTP {exc.code} {exc.read()[:200]!r}") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise HarnessError(f"target {target} does not answer ({url}): {exc}") from exc
    if not isinstance(body, dict) or body.get("status") != "healthy":
        raise HarnessError(f"target {target} is not healthy: {body}")


def _seed(scenario: Scenario, database_url: str | None) -> None:
    """Top the database up to the scenario's background volume with `python -m sut seed`."""
    assert scenario.data is not None
    if not database_url:
        print("note: the data volume was not checked (no --database-url, DATABASE_URL or env file)")
        return
    have = _counts(database_url)
    want_c, want_m = scenario.data.conversations, scenario.data.messages
    need_c, need_m = max(want_c - have[0], 0), max(want_m - have[1], 0)
    if not need_c and not need_m:
        print(f"data: {have[0]:,} conversations, {have[1]:,} messages (enough for {scenario.name})")
        return
    need_c = max(need_c, 1)
    customers, artists = max(100, need_c // 5), max(20, need_c // 25)
    print(f"data: {have[0]:,} conversations, {have[1]:,} messages; seeding {need_c:,} + {need_m:,}")
    cmd = [sys.executable, "-m", "sut", "seed", "--customers", str(customers), "--artists", str(artists),
           "--conversations", str(need_c), "--messages", str(need_m)]
    done = subprocess.run(cmd, env={**os.environ, "DATABASE_URL": database_url}, check=False)
    if done.returncode != 0:
        raise HarnessError(f"seeding failed (exit {done.returncode}): {' '.join(cmd)}")


def _counts(database_url: str) -> tuple[int, int]:
    query = "SELECT (SELECT count(*) FROM conversations) || ' ' || (SELECT count(*) FROM messages)"
    try:
        out = subprocess.run(["psql", database_url, "-tAc", query], capture_output=True, text=True, timeout=120,
                             check=True).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise HarnessError(f"cannot count the data in {_redact(database_url)}: {exc}") from exc


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urllib.parse.urlunsplit(parts)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as the exporter binds: TIME_WAIT is no owner
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- the run
def _locust_command(args: argparse.Namespace, host: str, run_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host, "--csv", str(run_dir / "locust"),
           "--csv-full-history", "--stop-timeout", "60", "--loglevel", "INFO",
           "--exit-code-on-error", "0"]   # failed requests are the SLOs' business: a non-zero exit is a crash
    if args.web:
        cmd += ["--web-host", "127.0.0.1", "--web-port", "8089"]
    else:
        cmd += ["--headless", "--only-summary"]
    if args.workers > 1:
        cmd += ["--processes", str(args.workers)]
    return cmd


def _run_locust(command: list[str], env: dict[str, str], run_dir: Path, scenario: Scenario,
                metrics_port: int, *, web: bool = False, instances: list[str] | None = None) -> tuple[str, int]:
    """Run Locust to its end, printing progress. Returns ("ok" | "aborted" | "overran", Locust's exit code).
    Ctrl-C or SIGTERM stop it cleanly (aborted; with the web UI that is how the user ends it, not an abort). A
    run that overruns its scenario by 5 minutes is stopped (overran); Locust gets 2 minutes to stop, then is
    killed."""
    log = (run_dir / "locust.log").open("w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state: dict[str, Any] = {"status": "ok", "stopped_at": 0.0}

    def stop(signum: int, _frame: FrameType | None) -> None:
        if state["status"] == "ok" and not web:
            state["status"] = "aborted"
        state["stopped_at"] = state["stopped_at"] or time.time()
        print(f"\nstopping ({signal.Signals(signum).name}): Locust writes what it has, then the report is built")
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    limit = time.time() + scenario.send_duration + scenario.grace + 300   # the shape ends a run well before
    try:
        while proc.poll() is None:
            try:
                proc.wait(timeout=PROGRESS_EVERY)
            except subprocess.TimeoutExpired:
                try:
                    _sample_services(instances or [], run_dir)
                    _progress(metrics_port, scenario, run_dir)
                except Exception as exc:  # progress is best effort: never the reason a run stops
                    print(f"(progress unavailable: {type(exc).__name__})", flush=True)
            if time.time() > limit and state["status"] == "ok" and not web:
                print("the run overran its scenario by 5 minutes: stopping it")
                state["status"] = "overran"
                stop(signal.SIGTERM, None)
            if state["stopped_at"] and time.time() > float(state["stopped_at"]) + 120 and proc.poll() is None:
                print("Locust did not stop within 2 minutes: killing it")
                proc.kill()
        return str(state["status"]), proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.close()


def _progress(port: int, scenario: Scenario, run_dir: Path) -> None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return
    values: dict[str, float] = {}
    requests = failures = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name == "loadgen_requests_total":
                requests += sample.value
                if labels.get("name") == "message:send":
                    values["attempts"] = sample.value
            elif name == "loadgen_request_failures_total":
                failures += sample.value
            elif name == "loadgen_cpu_ratio":
                values["cpu"] = max(values.get("cpu", 0.0), sample.value)
            elif name in ("loadgen_users", "loadgen_messages_sent_total", "loadgen_messages_delivered_total",
                          "loadgen_messages_lost_total"):
                values[name] = sample.value
            elif name == "loadgen_connections":
                values["connections"] = values.get("connections", 0.0) + sample.value
            elif name == "loadgen_schedule_lag_seconds_bucket" and labels.get("le") in ("0.1", "+Inf"):
                values["lag_" + labels["le"]] = sample.value
    t0 = _t0(run_dir)
    elapsed = time.time() - t0 if t0 else 0.0
    late = values.get("lag_+Inf", 0.0) - values.get("lag_0.1", 0.0)
    # messages, each once; an attempt is every message:send request, a retry of a shed or unacked send included
    sent, attempts = values.get("loadgen_messages_sent_total", 0.0), values.get("attempts", 0.0)
    clock = (f"{elapsed:5.0f}/{scenario.send_duration + scenario.grace:.0f}s" if t0
             else "spawning")   # with a connect_rate every user is spawned before the run's clock starts
    print(f"[{clock}] users {values.get('loadgen_users', 0):.0f}"
          f"  connected {values.get('connections', 0):.0f}"
          f"  requests {requests:.0f}  failures {failures:.0f}  sent {sent:.0f}"
          + (f" ({attempts:.0f} attempts)" if attempts > sent else "")
          + f"  delivered {values.get('loadgen_messages_delivered_total', 0):.0f}"
          f"  lost {values.get('loadgen_messages_lost_total', 0):.0f}  generator cpu {values.get('cpu', 0):.0%}"
          + (f"  BEHIND: {late:.0f} sends >100 ms late" if late else ""), flush=True)


def _sample_services(instances: list[str], run_dir: Path) -> None:
    """One line per instance into service.jsonl: its connections, resident memory, open files and connects so far
    (the report's users held and bytes per connection; readable without a Prometheus)."""
    lines = []
    for target in instances:
        values: dict[str, Any] = {"instance": target, "at": round(time.time(), 3)}
        for sample in _samples_of(target, SERVICE_SAMPLES):
            if sample.name == "socketio_connects_total":
                values[f"connects_{sample.labels.get('status', '')}"] = sample.value
            else:
                values[sample.name] = sample.value
        if len(values) > 2:
            lines.append(json.dumps(values, separators=(",", ":")))
    if lines:
        with (run_dir / "service.jsonl").open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")


def _t0(run_dir: Path) -> float:
    try:
        return float(json.loads((run_dir / "timeline.json").read_text())["t0"])
    except (OSError, ValueError, KeyError):
        return 0.0


def _final_scrape_wait(url: str | None, metrics_port: int) -> float:
    """When a Prometheus scrapes this run's metrics port: one scrape interval and a second, so the master serves
    the checker's final counts (known only at the end) long enough to be scraped and alerted on. 0 otherwise."""
    for target in promexport.active_targets(promexport.prometheus_base(url)):
        if urllib.parse.urlsplit(target.get("scrapeUrl", "")).port == metrics_port:
            seconds = promexport.scrape_seconds({"scrapeInterval": "15s", **target})
            return 61.0 if seconds is None else min(seconds + 1, 61.0)   # None: a composite such as 1m30s
    return 0.0


def _rule_interval(url: str | None) -> float:
    """The longest evaluation interval of the Prometheus' rule groups (capped at a minute); 0 if unknown."""
    groups = (promexport.api(promexport.prometheus_base(url), "rules") or {}).get("groups", [])
    return min(max((float(g.get("interval", 0)) for g in groups), default=0.0), 60.0)


# --- after the run
def _samples(target: str, name: str) -> list[Any]:
    """The samples of one metric on the target's /metrics (empty when it does not answer)."""
    return _samples_of(target, (name,))


def _samples_of(target: str, names: tuple[str, ...]) -> list[Any]:
    try:
        with urllib.request.urlopen(f"{target}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return []
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name in names]


def _build_info(target: str) -> dict[str, str]:
    found = _samples(target, "build_info")
    return dict(found[0].labels) if found else {}


def _process_cpu(target: str) -> tuple[float, float] | None:
    """The service process's CPU seconds so far and its start time (process_cpu_seconds_total,
    process_start_time_seconds); None if it does not answer."""
    cpu, start = _samples(target, "process_cpu_seconds_total"), _samples(target, "process_start_time_seconds")
    return (float(cpu[0].value), float(start[0].value)) if cpu and start else None


def _cpu_over(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    """CPU seconds one process spent between two readings; None when they are not of one process: it restarted
    in between (its counter began again at 0), or did not answer at one end."""
    if before is None or after is None or before[1] != after[1] or after[0] < before[0]:
        return None
    return round(after[0] - before[0], 3)


def _write_meta(run_dir: Path, run_id: str, scenario: Scenario, targets: list[str], instances: list[str],
                args: argparse.Namespace,
                command: list[str], started: float, ended: float, locust_rc: int, aborted: bool,
                cpu: dict[str, Any]) -> None:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "unknown"

    meta = {"run_id": run_id, "scenario": scenario.name, "start": round(started, 3), "end": round(ended, 3),
            "target": ",".join(targets), "instances": instances, "build_info": _build_info(instances[0]),
            "harness_version": version("chatload"), "locust_version": version("locust"),
            "python_version": platform.python_version(),
            "machine": {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()},
            "workers": args.workers, "command": command, "exit_code": locust_rc,
            "aborted": aborted, "cpu": cpu, "alert_sink": getattr(args, "alert_sink", None)}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
