"""Command line: `python -m stack up | down | status | logs | run | backup | restore` (the Makefile's targets).

Exit codes: 0 done, 1 something is unhealthy (status) or the scenario breached an SLO (run: the runner's code),
2 a problem the user can fix (a port taken, a binary missing, bad settings), 3 the stack is down (status).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from stack import control, faults
from stack.config import ROOT, StackConfig
from stack.errors import StackError

_EPILOG = """\
examples:
  python -m stack up                      # 2 instances behind nginx, Prometheus, Alertmanager, exporters
  python -m stack up --replicas 3
  python -m stack status
  python -m stack logs sut-1 nginx
  python -m stack run smoke               # up if needed, then the scenario through the load balancer
  python -m stack run capacity -- --duration 2m --workers 2
  python -m stack backup
  python -m stack restore backups/messaging-20261126T101500Z.dump
  python -m stack run chaos-instance      # kill -9 instance 2 mid-run: nothing acked may be lost
  python -m stack down

Ports and the state folder move with STACK_* variables; the service's settings (DATABASE_URL, REDIS_URL,
JWT_SECRET, ...) come from the environment, then <dir>/env. See docs/operations.md."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stack", epilog=_EPILOG,
                                description="The local stack: the compose topology from native processes under "
                                            "supervisord (no Docker).",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    upp = sub.add_parser("up", help="start the stack (idempotent) and print its URLs")
    upp.add_argument("--replicas", type=int, default=None, metavar="N",
                     help="service instances behind nginx (default: STACK_REPLICAS or 2)")
    upp.add_argument("--no-seed", action="store_true", help="do not seed a first data volume into an empty database")
    sub.add_parser("down", help="stop every process of the stack")
    sub.add_parser("status", help="the stack's processes, their health and addresses")
    logs = sub.add_parser("logs", help="follow the processes' logs (all, or the ones named)")
    logs.add_argument("names", nargs="*", metavar="PROCESS", help="sut-1, nginx, prometheus, ... (default: all)")
    logs.add_argument("--no-follow", action="store_true", help="print the last lines and stop")
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines of each log to show first (default 40)")
    run = sub.add_parser("run", help="up if needed, run a scenario through the load balancer, print the report path")
    run.add_argument("scenario", nargs="?", default="smoke", metavar="SCENARIO", help="default: smoke")
    run.add_argument("runner_args", nargs=argparse.REMAINDER, metavar="-- ARGS",
                     help="more options for python -m scenarios run (after --)")
    backup = sub.add_parser("backup", help="pg_dump the service's database to <dir>/backups and the bucket")
    backup.add_argument("--out", type=Path, default=None, metavar="DIR", help="default: <dir>/backups")
    restore = sub.add_parser("restore", help="restore a backup into a fresh database")
    restore.add_argument("source", metavar="FILE", help="a local dump, s3://bucket/backups/NAME or backups/NAME")
    restore.add_argument("--into", default=None, metavar="DATABASE", help="default: <database>_restored")
    restore.add_argument("--replace", action="store_true", help="drop that database first if it exists")
    fault = sub.add_parser("fault", help="begin or end a chaos fault (the chaos scenarios call this; docs/chaos.md)")
    fault.add_argument("verb", choices=("begin", "end"))
    fault.add_argument("action", choices=faults.ACTIONS)
    fault.add_argument("--instance", type=int, default=2, metavar="N",
                       help="kill-instance: which instance (default: %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = StackConfig.load(replicas=getattr(args, "replicas", None))
        return _dispatch(args, config)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `python -m stack status | head`: no traceback, nothing more to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _dispatch(args: argparse.Namespace, config: StackConfig) -> int:
    if args.command == "up":
        control.up(config, seed=not args.no_seed)
        print_urls(config)
        return 0
    if args.command == "down":
        control.down(config)
        return 0
    if args.command == "status":
        code = control.status(config)
        if code != 3:
            print_urls(config)
        return code
    if args.command == "logs":
        files = control.log_files(config, args.names)
        command = ["tail", "-n", str(args.lines), *([] if args.no_follow else ["-F"]), *map(str, files)]
        return subprocess.call(command)
    if args.command == "run":
        return _run_scenario(config, args.scenario, [a for a in args.runner_args if a != "--"])
    if args.command == "fault":
        print(faults.fault(config, args.verb, args.action, args.instance))
        return 0
    from stack import backup

    env = {**os.environ, **config.service_env}
    if args.command == "backup":
        return backup.cli_backup(env, args.out or config.dir / "backups")
    return backup.cli_restore(env, args.source, args.into, args.replace)


def _run_scenario(config: StackConfig, scenario: str, extra: list[str]) -> int:
    the_plan = control.up(config)
    lb = "nginx" not in the_plan.skipped
    instances = ",".join(f"http://127.0.0.1:{port}" for port in config.sut_ports)
    command = [config.python, "-m", "scenarios", "run", scenario, "--env-file", str(config.dir / "env"),
               "--target", config.url("lb") if lb else instances, "--instances", instances,
               "--metrics-port", str(config.ports["locust"]),
               "--fault-command", shlex.join([config.python, "-m", "stack", "fault"])]
    if "prometheus" not in the_plan.skipped:
        command += ["--prometheus", config.url("prometheus")]
    if "alertmanager" not in the_plan.skipped:   # its webhooks go to the stack's alert sink
        command += ["--alert-sink", config.url("alert-sink")]
    print("$ python " + " ".join(command[1:] + extra), flush=True)
    code = _wait_for([*command, *extra])
    print_urls(config)
    return code


def _wait_for(command: list[str]) -> int:
    """Run the scenario runner to its end. Ctrl-C reaches it from the terminal (one process group) and it stops
    cleanly, undoing a fault in place; so this process ignores SIGINT meanwhile (subprocess.call would kill the
    runner 0.25 s after a Ctrl-C) and passes SIGTERM on."""
    proc = subprocess.Popen(command, cwd=ROOT)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.SIGTERM: signal.signal(signal.SIGTERM, forward)}
    try:
        return proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def print_urls(config: StackConfig) -> None:
    state = control.saved_state(config)
    skipped = state.get("skipped", {})
    lines = ["", "The stack is up (make down stops it):"]
    if "nginx" not in skipped:
        lines.append(f"  API (load balancer)  {config.url('lb')}/messaging/conversations   "
                     "(Authorization: Bearer <token>)")
    for i, port in enumerate(config.sut_ports):
        lines.append(f"  instance {i + 1:<11} http://127.0.0.1:{port}   (/health, /metrics, /openapi.json)")
    for name, label, path in (("prometheus", "Prometheus", "/alerts"), ("alertmanager", "Alertmanager", "/")):
        if name not in skipped:
            lines.append(f"  {label:<20} {config.url(name)}{path}")
    lines += [f"  S3 (moto)            {config.url('s3')}",
              f"  logs                 {config.logs}/   (make logs)",
              f"  load generator       {config.url('locust')}/metrics while a run lasts; runs/<time>-<scenario>/",
              "A token for customer 1 (seeded), valid 24 h:",
              f"  export TOKEN={_token(config)}"]
    print("\n".join(lines))


def _token(config: StackConfig) -> str:
    done = subprocess.run([config.python, "-m", "sut", "token", "--user", "1", "--role", "customer", "--ttl", "86400"],
                          env={**os.environ, **config.service_env}, capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"(python -m sut token failed: {done.stderr.strip()})"


if __name__ == "__main__":
    sys.exit(main())
