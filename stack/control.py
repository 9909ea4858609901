"""Bring the local stack up and down under supervisord, and say how it is.

`up` is idempotent: with the stack already up on the same settings it only starts what is stopped. Processes
start in stages, each one ready (its health answering) before the next: storage (PostgreSQL and Redis when the
stack runs its own, S3), then the database is created, migrated and seeded, then the service's instances, then
nginx, Prometheus, Alertmanager and the exporters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from supervisor.xmlrpc import SupervisorTransport

from stack import render
from stack.config import PORT_DEFAULTS, StackConfig, require
from stack.errors import StackError

READY_TIMEOUT = 60.0
SEED_ARGS = ["--customers", "500", "--artists", "100", "--conversations", "2000", "--messages", "50000"]
STATE_FILE = "stack.json"
LEGACY = ("sut", "s3")        # pid files of the bash local stack this package replaced


def rpc(config: StackConfig) -> Any:
    transport = SupervisorTransport(None, None, f"unix://{config.dir / 'supervisor.sock'}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def supervisord_pid(config: StackConfig) -> int | None:
    """supervisord's pid when it runs for this state folder, else None (a pid file left by a crash or a reboot,
    whose pid another process may have taken since, is no supervisord of ours)."""
    try:
        pid = int((config.dir / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    command = _cmdline(pid)
    return pid if "supervisord" in command and str(config.dir / "supervisord.conf") in command else None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running(config: StackConfig) -> bool:
    if supervisord_pid(config) is None:
        return False
    try:
        rpc(config).supervisor.getState()
    except (OSError, xmlrpc.client.Fault):
        return False
    return True


def saved_state(config: StackConfig) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((config.dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state


# --- probes
def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def http_ok(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            code: int = resp.status
    except (OSError, urllib.error.HTTPError):
        return False
    return 200 <= code < 300


def redis_ok(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            reply: bytes = s.recv(16)
            return reply.startswith(b"+PONG")
    except OSError:
        return False


def postgres_ok(host: str, port: int) -> bool:
    done = subprocess.run([require("pg_isready"), "-q", "-h", host, "-p", str(port), "-t", "2"], check=False)
    return done.returncode == 0


def healthy(program: render.Program) -> bool:
    kind, _, url = program.probe.partition(":")
    if kind == "http":
        return http_ok(url)
    assert program.port is not None
    if kind == "redis":
        return redis_ok("127.0.0.1", program.port)
    if kind == "postgres":
        return postgres_ok("127.0.0.1", program.port)
    return port_open(program.port)


def database_answers(url: str) -> bool:
    parts = urlsplit(url)
    return postgres_ok(parts.hostname or "127.0.0.1", parts.port or 5432)


def redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    return redis_ok(parts.hostname or "127.0.0.1", parts.port or 6379)


# --- up
def up(config: StackConfig, *, seed: bool = True, out: Any = sys.stdout) -> render.Plan:
    stop_legacy(config, out)
    is_up = running(config)
    state = saved_state(config) if is_up else {}
    if is_up:
        _same_settings(config, state, out)
        own_postgres, own_redis = bool(state.get("own_postgres")), bool(state.get("own_redis"))
    else:
        own_postgres = _needs_own("DATABASE_URL", config.database_url, database_answers)
        own_redis = _needs_own("REDIS_URL", config.redis_url, redis_answers)
    the_plan = render.plan(config, own_postgres=own_postgres, own_redis=own_redis)
    if is_up:
        # what supervisord runs was fixed when it started: a binary installed since joins at the next `up`
        started = state.get("programs")
        if isinstance(started, list):
            late = {p.name: "installed after the stack started: `make down`, then `make up`"
                    for p in the_plan.programs if p.name not in started}
            the_plan = render.Plan([p for p in the_plan.programs if p.name in started],
                                   {**state.get("skipped", {}), **late})
        print(f"the stack in {config.dir} is up already: starting what is stopped", file=out)
    else:
        for program in the_plan.programs:
            if program.port is not None and port_open(program.port):
                raise StackError(f"port {program.port} ({program.what}) is taken by another process: stop it, or "
                                 f"move it ({_port_variable(program)})")
        if config.kept:   # a tuning setting of an earlier `FOO=... make run` stays until taken out of the file
            print("  settings kept from " + str(config.dir / "env") + " (an earlier up; delete the line to drop it): "
                  + ", ".join(f"{k}={config.service_env[k]}" for k in config.kept), file=out)
        render.write_all(config, the_plan)
        if own_postgres:
            _initdb(config)
        _start_supervisord(config)
        (config.dir / STATE_FILE).write_text(json.dumps({
            "own_postgres": own_postgres, "own_redis": own_redis, **_settings(config),
            "skipped": the_plan.skipped, "programs": [p.name for p in the_plan.programs]}, indent=1) + "\n")
    for name, why in the_plan.skipped.items():
        print(f"  not started: {name}: {why}", file=out)
    try:
        for stage in (0, 1, 2):
            if stage == 1:
                prepare_database(config, seed=seed, out=out)
            _start_stage(config, [p for p in the_plan.programs if p.stage == stage], out)
    except StackError as exc:
        raise StackError(f"{exc}. The stack is partly up: `make down` stops it") from None
    return the_plan


def _settings(config: StackConfig) -> dict[str, Any]:
    """What a running stack is built on (a change needs a restart), and a digest of each service setting (to
    name the ones a running stack does not have, without keeping their values here)."""
    digests = {k: hashlib.sha256(v.encode()).hexdigest()[:16] for k, v in config.service_env.items()
               if k != "BUILD_COMMIT"}
    return {"replicas": config.replicas, "ports": config.ports, "database_url": _redact(config.database_url),
            "redis_url": config.redis_url, "settings": digests}


def _same_settings(config: StackConfig, state: dict[str, Any], out: Any) -> None:
    wanted = _settings(config)
    differ = [key for key in ("replicas", "ports", "database_url", "redis_url") if state.get(key) != wanted[key]]
    if differ:
        raise StackError(f"the stack in {config.dir} is up with another {', '.join(differ)}: `make down` first")
    running_settings = state.get("settings", {})
    changed = sorted(k for k in set(wanted["settings"]) | set(running_settings)
                     if wanted["settings"].get(k) != running_settings.get(k))
    if changed:
        print(f"  not applied to the running stack: {', '.join(changed)} (`make down`, then `make up`)", file=out)


def _needs_own(name: str, url: str, answers: Callable[[str], bool]) -> bool:
    if answers(url):
        return False
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise StackError(f"{name} ({_redact(url)}) does not answer, and the stack starts its own only on loopback")
    return True


def _port_variable(program: render.Program) -> str:
    key = "sut" if program.name.startswith("sut-") else {"nginx": "lb"}.get(program.name, program.name)
    if key in PORT_DEFAULTS:
        return PORT_DEFAULTS[key][0] + "=..."
    return "DATABASE_URL=..." if key == "postgres" else "REDIS_URL=..."


def _initdb(config: StackConfig) -> None:
    folder = config.dir / "postgres"
    data = folder / "data"
    if (data / "PG_VERSION").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    command = [require("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
    if os.geteuid() == 0:          # PostgreSQL refuses to run as root: its folder belongs to the postgres user
        try:
            shutil.chown(folder, "postgres", "postgres")
        except LookupError:
            raise StackError("PostgreSQL refuses to run as root and there is no postgres user to run it as: "
                             "apt-get install postgresql-15, or point DATABASE_URL at a running server") from None
        if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(folder)], check=False).returncode:
            raise StackError(f"the postgres user cannot enter {folder} (a folder above it is closed to other "
                             "users): move the stack with STACK_DIR=/var/tmp/chatload-stack, or point DATABASE_URL "
                             "at a running server")
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(f"initdb failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")


def _start_supervisord(config: StackConfig) -> None:
    config.logs.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([config.python, "-m", "supervisor.supervisord", "-c", str(config.dir / "supervisord.conf")],
                          capture_output=True, text=True, check=False,
                          env=render.process_env(config, dict(os.environ)))
    if done.returncode != 0:
        raise StackError(f"supervisord did not start: {(done.stderr or done.stdout).strip().splitlines()[0]}")
    deadline = time.monotonic() + 15
    while not running(config):
        if time.monotonic() > deadline:
            raise StackError(f"supervisord did not start; see {config.logs / 'supervisord.log'}")
        time.sleep(0.1)


def _start_stage(config: StackConfig, programs: list[render.Program], out: Any) -> None:
    server = rpc(config).supervisor
    for program in programs:
        info = server.getProcessInfo(program.name)
        if info["statename"] != "RUNNING":
            try:
                server.startProcess(program.name, False)
            except xmlrpc.client.Fault as exc:
                if "ALREADY_STARTED" not in exc.faultString:
                    raise StackError(f"{program.what} did not start ({exc.faultString}); "
                                     f"see {config.logs / (program.name + '.log')}") from None
    for program in programs:
        wait_ready(config, program)
        print(f"  up: {program.what:<32} {_address(program)}", file=out)


def wait_ready(config: StackConfig, program: render.Program) -> None:
    server = rpc(config).supervisor
    deadline = time.monotonic() + READY_TIMEOUT
    while True:     # answering, and RUNNING for supervisord (up for its startsecs), so `status` agrees at once
        state = server.getProcessInfo(program.name)["statename"]
        if state == "RUNNING" and healthy(program):
            return
        if state in ("FATAL", "EXITED", "STOPPED") or time.monotonic() > deadline:
            raise StackError(f"{program.what} did not come up ({state}): {_last_line(config, program.name)} "
                             f"(see {config.logs / (program.name + '.log')})")
        time.sleep(0.2)


def _last_line(config: StackConfig, name: str) -> str:
    try:
        lines = [line for line in (config.logs / f"{name}.log").read_text(errors="replace").splitlines() if line]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "an empty log"


def _address(program: render.Program) -> str:
    kind, _, url = program.probe.partition(":")
    return url if kind == "http" else f"127.0.0.1:{program.port}"


def prepare_database(config: StackConfig, *, seed: bool, out: Any) -> None:
    """Create the service's database when missing, migrate it, create the bucket, seed a first volume."""
    try:
        asyncio.run(_create_database(config.database_url))
    except (OSError, asyncpg.PostgresError) as exc:
        raise StackError(f"cannot create or reach the database of {_redact(config.database_url)}: {exc}") from None
    env = {**os.environ, **config.service_env}
    for step in (["migrate", "up"], ["init-storage"]):
        done = subprocess.run([config.python, "-m", "sut", *step], env=env, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise StackError(f"python -m sut {' '.join(step)} failed: {(done.stderr or done.stdout).strip()}")
    if seed and _count(config.database_url) == 0:
        print("  seeding a first volume (python -m sut seed " + " ".join(SEED_ARGS) + ")", file=out)
        done = subprocess.run([config.python, "-m", "sut", "seed", *SEED_ARGS, "--no-progress"], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"python -m sut seed failed: {done.stderr.strip()}")


async def _create_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
    finally:
        await admin.close()


def _count(url: str) -> int:
    try:
        return asyncio.run(_count_conversations(url))
    except (OSError, asyncpg.PostgresError) as exc:
        raise StackError(f"cannot count the conversations of {_redact(url)}: {exc}") from None


async def _count_conversations(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM conversations")
        return count
    finally:
        await conn.close()


# --- down
def down(config: StackConfig, *, out: Any = sys.stdout) -> bool:
    """Stop every process of the stack; True when something was running."""
    stopped_legacy = stop_legacy(config, out)
    pid = supervisord_pid(config)
    if pid is None:
        if not stopped_legacy:
            print(f"the stack in {config.dir} is not running", file=out)
        return stopped_legacy
    state = saved_state(config)
    try:
        rpc(config).supervisor.shutdown()
    except (OSError, xmlrpc.client.Fault):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while supervisord_pid(config) is not None:
        if time.monotonic() > deadline:
            raise StackError(f"supervisord (pid {pid}) did not stop in 90 s; see {config.logs / 'supervisord.log'}")
        time.sleep(0.2)
    print(f"stopped: {', '.join(state.get('programs', [])) or 'the stack'}", file=out)
    return True


def stop_legacy(config: StackConfig, out: Any) -> bool:
    """Stop what the earlier bash local stack (scripts/local.sh) left running in the same folder."""
    stopped = False
    marks = {"sut": " -m sut serve", "s3": " -m moto.server"}
    for name in LEGACY:
        path = config.dir / f"{name}.pid"
        if not path.exists():
            continue
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text().strip())
            if marks[name] in _cmdline(pid):          # not a pid some other process took since
                os.kill(pid, signal.SIGTERM)
                print(f"stopped {name} (started by the earlier local stack)", file=out)
                stopped = True
        path.unlink(missing_ok=True)
    return stopped


# --- status and logs
def status(config: StackConfig, *, out: Any = sys.stdout) -> int:
    """A table of the stack's processes with their health; 0 when all are running and healthy."""
    if not running(config):
        print(f"the stack in {config.dir} is down (make up)", file=out)
        return 3
    state = saved_state(config)
    if "replicas" in state and "ports" in state:    # the running stack's, whatever this shell's STACK_* say
        config = dataclasses.replace(config, replicas=state["replicas"], ports=state["ports"])
    the_plan = render.plan(config, own_postgres=state.get("own_postgres", False),
                           own_redis=state.get("own_redis", False))
    infos = {info["name"]: info for info in rpc(config).supervisor.getAllProcessInfo()}
    rows = [("PROCESS", "STATE", "PID", "UPTIME", "HEALTH", "ADDRESS")]
    ok = True
    for program in the_plan.programs:
        info = infos.get(program.name, {})
        up_for = int(info.get("now", 0) - info.get("start", 0)) if info.get("statename") == "RUNNING" else 0
        health = "ok" if info.get("statename") == "RUNNING" and healthy(program) else "FAILING"
        ok = ok and health == "ok"
        rows.append((program.name, info.get("statename", "?"), str(info.get("pid") or "-"), _uptime(up_for), health,
                     _address(program)))
    if not state.get("own_postgres"):
        rows.append(("(postgres)", "external", "-", "-", "ok" if database_answers(config.database_url)
                     else "FAILING", _redact(config.database_url)))
    if not state.get("own_redis"):
        rows.append(("(redis)", "external", "-", "-", "ok" if redis_answers(config.redis_url) else "FAILING",
                     config.redis_url))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)
    for name, why in state.get("skipped", {}).items():
        print(f"not part of this stack: {name}: {why}", file=out)
    return 0 if ok else 1


def _uptime(seconds: int) -> str:
    if seconds <= 0:
        return "-"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def log_files(config: StackConfig, names: list[str]) -> list[Path]:
    state = saved_state(config)
    known = state.get("programs", [])
    if not known:
        raise StackError(f"the stack in {config.dir} has not been up yet: no logs (make up)")
    if not names:
        names = known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StackError(f"no such process: {', '.join(unknown)} (the stack's: {', '.join(known) or 'none yet'})")
    return [config.logs / f"{name}.log" for name in names]


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url
