"""`python -m stack fault begin|end ACTION`: the faults the chaos scenarios inject into the running local stack.

- kill-instance: SIGKILL to one service instance (no drain, its sockets just drop), held down until `end`
  starts it again;
- restart-redis: SIGKILL to the stack's own Redis, held down until `end` starts it again, empty (it keeps
  nothing on disk): fan-out, rate limits and the cache are gone for a while, then come back;
- stop-postgres: the stack's own PostgreSQL stopped (fast shutdown: every connection is cut) until `end`. When
  the stack uses a PostgreSQL it does not own, the server is never touched: the service's database refuses new
  connections (ALLOW_CONNECTIONS false) and its sessions are terminated instead, so the service sees the same
  outage.

supervisord restarts a process that dies, unless it was asked to stop it: a killed process is frozen, then
stopped through supervisord, then killed. The machine's shared Redis is never touched: a stack on
it cannot run restart-redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import xmlrpc.client
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from stack import control, render
from stack.config import StackConfig
from stack.errors import StackError

ACTIONS = ("kill-instance", "restart-redis", "stop-postgres")
NOTICE_TIMEOUT = 15.0


def fault(config: StackConfig, verb: str, action: str, instance: int) -> str:
    """Begin or end a fault; returns what was done, one line."""
    if not control.running(config):
        raise StackError(f"the stack in {config.dir} is not up")
    state = control.saved_state(config)
    if action == "kill-instance":
        if not 1 <= instance <= config.replicas:
            raise StackError(f"--instance {instance}: the stack runs instances 1..{config.replicas}")
        return _kill_or_start(config, f"sut-{instance}", verb)
    if action == "restart-redis":
        if not state.get("own_redis"):
            raise StackError("restart-redis needs the stack's own Redis, and this stack uses the one at REDIS_URL "
                             "(never restarted: others may share it). Point REDIS_URL at a free loopback port "
                             "and `make down up` to have the stack start its own")
        return _kill_or_start(config, "redis", verb)
    if action == "stop-postgres":
        if state.get("own_postgres"):
            return _stop_or_start(config, "postgres", verb)
        return _cut_or_restore(config.database_url, verb)
    raise StackError(f"unknown fault {action!r}: one of {', '.join(ACTIONS)}")


def _program(config: StackConfig, name: str) -> render.Program:
    state = control.saved_state(config)
    the_plan = render.plan(config, own_postgres=bool(state.get("own_postgres")),
                           own_redis=bool(state.get("own_redis")))
    for program in the_plan.programs:
        if program.name == name:
            return program
    raise StackError(f"the stack has no {name}")


def _kill_or_start(config: StackConfig, name: str, verb: str) -> str:
    program = _program(config, name)
    server = control.rpc(config).supervisor
    if verb == "end":
        return _start(config, program)
    info = server.getProcessInfo(name)
    if info["statename"] != "RUNNING":
        raise StackError(f"{program.what} is not running ({info['statename']})")
    pid = int(info["pid"])
    # supervisord would restart a process that dies, so it is told to stop it first; frozen (SIGSTOP) before,
    # the process never runs its SIGTERM handler (no drain, nothing sent): SIGKILL ends it as kill -9 alone would
    os.kill(pid, signal.SIGSTOP)
    try:
        server.stopProcess(name, False)
    finally:
        os.kill(pid, signal.SIGKILL)
    _wait_stopped(server, name)
    return f"killed {program.what} (pid {info['pid']}); held down"


def _stop_or_start(config: StackConfig, name: str, verb: str) -> str:
    program = _program(config, name)
    if verb == "end":
        return _start(config, program)
    _stop(control.rpc(config).supervisor, name)
    return f"stopped {program.what}"


def _wait_stopped(server: Any, name: str) -> None:
    deadline = time.monotonic() + NOTICE_TIMEOUT
    while time.monotonic() < deadline:
        state = server.getProcessInfo(name)["statename"]
        if state == "STOPPED":
            return
        time.sleep(0.02)
    raise StackError(f"supervisord did not see {name} stop ({state})")


def _stop(server: Any, name: str) -> None:
    try:
        server.stopProcess(name, True)
    except xmlrpc.client.Fault as exc:
        if "NOT_RUNNING" not in exc.faultString:
            raise StackError(f"could not stop {name}: {exc.faultString}") from None


def _start(config: StackConfig, program: render.Program) -> str:
    started = time.monotonic()
    try:
        control.rpc(config).supervisor.startProcess(program.name, False)
    except xmlrpc.client.Fault as exc:
        if "ALREADY_STARTED" not in exc.faultString:
            raise StackError(f"{program.what} did not start: {exc.faultString}") from None
    control.wait_ready(config, program)
    return f"started {program.what}; ready after {time.monotonic() - started:.1f} s"


def _cut_or_restore(url: str, verb: str) -> str:
    database = urlsplit(url).path.lstrip("/") or "postgres"
    if database in ("postgres", "template0", "template1"):
        raise StackError(f"stop-postgres cuts the service's own database, and DATABASE_URL names {database!r}")
    return asyncio.run(_cut(url, database, allow=verb == "end"))


async def _cut(url: str, database: str, *, allow: bool) -> str:
    admin_url = urlsplit(url)._replace(path="/postgres").geturl()
    try:
        conn = await asyncpg.connect(admin_url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StackError(f"cannot reach PostgreSQL to {'restore' if allow else 'cut'} {database}: {exc}") from None
    try:
        quoted = '"' + database.replace('"', '""') + '"'
        await conn.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS {'true' if allow else 'false'}")
        if allow:
            return f"database {database} accepts connections again"
        ended = await conn.fetchval("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = $1 AND pid <> pg_backend_pid()) t", database)
        return f"database {database} refuses connections; {ended} sessions terminated"
    finally:
        await conn.close()
